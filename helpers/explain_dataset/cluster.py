"""The Dask side of `explain_dataset`: the cluster, the tasks, the chunks written as they finish."""
from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import tempfile
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from ..methods import explain

# Set in the embedded cluster's worker processes before TensorFlow starts:
# one TensorFlow thread per worker, a worker per core.
WORKER_ENV = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
              "TF_CPP_MIN_LOG_LEVEL": "3"}


def local_cluster(workers: int | None = None):
    """The embedded cluster: `workers` processes (default: one per core) with
    one thread and one TensorFlow thread each. Close it (`with`) when done."""
    from distributed import LocalCluster

    # A free port for the scheduler's web server: the default, 8787, warns
    # when another cluster already holds it (`cluster.dashboard_link`).
    return LocalCluster(n_workers=workers or os.cpu_count(), threads_per_worker=1,
                        processes=True, dashboard_address=":0",
                        silence_logs=logging.ERROR, env=WORKER_ENV)


# --- On the workers ---------------------------------------------------------

_MODELS: dict[str, keras.Model] = {}
_MODELS_LOCK = threading.Lock()
_MODELS_KEPT = 4


@dataclass
class _Shared:
    """What every task of one run needs: the model file's bytes and the options."""

    model_key: str
    model_bytes: bytes
    options: dict


def _shared(model_key: str, model_bytes: bytes, options: dict) -> _Shared:
    """A task returning its arguments: the scheduler can rerun it if every worker
    holding them dies (scattered data could not be recovered)."""
    return _Shared(model_key, model_bytes, options)


def _worker_model(key: str, data: bytes) -> keras.Model:
    """The model of the `.keras` file `data`, loaded once per worker process."""
    with _MODELS_LOCK:
        if key not in _MODELS:
            if len(_MODELS) >= _MODELS_KEPT:
                _MODELS.pop(next(iter(_MODELS)))
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "model.keras"
                path.write_bytes(data)
                _MODELS[key] = keras.saving.load_model(path)
        return _MODELS[key]


def _explain_chunk(shared: _Shared, inputs: np.ndarray, method: str, targets,
                   batch_size, pixel_range) -> tuple[np.ndarray, np.ndarray]:
    """One task: `helpers.explain` on one chunk; its maps and targets."""
    model = _worker_model(shared.model_key, shared.model_bytes)
    result = explain(model, inputs, method, targets, batch_size=batch_size,
                     pixel_range=pixel_range, progress=False, **shared.options)
    return result.maps, result.targets


# --- On the client ----------------------------------------------------------

@contextmanager
def _connect(client, workers: int | None):
    """A `distributed.Client`: the one given, one to the address given, or one
    to a new embedded cluster; closes only what it opened."""
    from distributed import Client

    if isinstance(client, Client):
        yield client
    elif isinstance(client, str):
        with Client(client) as opened:
            yield opened
    else:
        with local_cluster(workers) as cluster, Client(cluster) as opened:
            yield opened


@dataclass
class _Job:
    """The chunks of one call on a cluster, written to the store as they finish."""

    dask: object  # distributed.Client
    arrays: dict
    inputs: object
    method: str
    targets: np.ndarray | None
    chunk: int
    batch_size: int | None
    pixel_range: tuple
    # Names this call's tasks on the cluster: never a key another call used
    # (a cancelled key submitted again can be found cancelled).
    token: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex[:16])

    def part(self, i: int) -> slice:
        """The images of chunk `i`."""
        return slice(i * self.chunk, min(self.inputs.shape[0], (i + 1) * self.chunk))

    def submit(self, shared, i: int):
        """Chunk `i` as a task."""
        part = self.part(i)
        return self.dask.submit(
            _explain_chunk, shared, np.asarray(self.inputs[part], np.float32), self.method,
            None if self.targets is None else self.targets[part], self.batch_size,
            self.pixel_range, key=f"explain_dataset-{self.token}-{i}")

    def size(self, i: int) -> int:
        """How many images chunk `i` holds."""
        return self.part(i).stop - self.part(i).start

    def run(self, todo: list[int], payload: _Shared, progress: bool) -> int:
        """Submit the chunks `todo`, a few per worker thread at a time (neither the
        client nor the cluster holds every input), and write each as it finishes:
        maps, targets, then `done` last (a chunk without it is recomputed).
        Returns the number of images explained."""
        import dask
        from distributed import as_completed
        from tqdm.auto import tqdm

        n = self.inputs.shape[0]
        # The model travels in the graph, so that the scheduler can rebuild it
        # if every worker holding it dies; it is meant to be large.
        with dask.config.set({"distributed.admin.large-graph-warning-threshold": "4GB"}):
            shared = self.dask.submit(_shared, payload.model_key, payload.model_bytes,
                                      payload.options, key=f"explain_dataset-{self.token}-model")
        window = 2 * max(1, sum(self.dask.nthreads().values()))
        pending = iter(todo)
        running = {self.submit(shared, i): i for i in itertools.islice(pending, window)}
        queue = as_completed(list(running))
        images = 0
        bar = tqdm(total=n, initial=n - sum(map(self.size, todo)), unit="image",
                   desc=f"explain_dataset {self.method}", disable=not progress, smoothing=0)
        try:
            for future in queue:
                i = running.pop(future)
                maps, explained = future.result()
                self.arrays["maps"][self.part(i)] = maps
                self.arrays["targets"][self.part(i)] = explained
                self.arrays["done"][i] = True
                images += self.size(i)
                bar.update(self.size(i))
                following = next(pending, None)
                if following is not None:
                    future = self.submit(shared, following)
                    running[future] = following
                    queue.add(future)
        finally:
            bar.close()
            self.dask.cancel([*running, shared])
        return images
