"""Explain a whole data set on Dask, the maps streamed to a Zarr store, resumable.

`explain_dataset(model, inputs, method, out="maps.zarr")` cuts `inputs` into
chunks and runs `helpers.explain` on each chunk as one task of a Dask cluster:
an embedded `LocalCluster` by default (a worker process per core, one
TensorFlow thread each), or an existing one (`client="tcp://host:8786"`, or a
`distributed.Client`), so the same call scales out. Each worker loads the
model once, from the bytes of its `.keras` file sent through the cluster (no
shared file system needed). The client writes each chunk's maps to the store
as it finishes; a rerun with the same arguments computes only the chunks not
written yet.

The store (a Zarr group) holds `maps` `(n, H, W)` float32 in chunks of
`(chunk, H, W)`, `targets` `(n,)` int64 and `done` `(n_chunks,)` bool, and
attributes recording what was explained (method, options, hashes of the
model, the inputs and the targets): a rerun refuses a store written by
another run.

The maps equal one `helpers.explain(model, inputs, method, ...)` over all the
inputs: the pixel range is computed once over all of them, and every method
explains each image independently of the others in its batch.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from ..engine import Engine, batch_limit
from ..methods import black_white, explain, get

__all__ = ["explain_dataset", "DatasetRun", "local_cluster", "default_chunk", "model_hash",
           "MAX_CHUNK", "WORKER_ENV"]

FORMAT = 1  # of the store's layout and attributes
MAX_CHUNK = 1000  # images per task at most (small images)
# Set in the embedded cluster's worker processes before TensorFlow starts:
# one TensorFlow thread per worker, a worker per core.
WORKER_ENV = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
              "TF_CPP_MIN_LOG_LEVEL": "3"}
# What must be equal for a rerun to resume a store.
IDENTITY = ("format", "method", "options", "model", "inputs", "targets", "pixel_range", "n",
            "chunk")


@dataclass
class DatasetRun:
    """What `explain_dataset` did: the store, and how many chunks it computed
    (`computed`) or found already written (`resumed`) in how many seconds
    (`setup_seconds` of them before the first task: checks, cluster start)."""

    store: object  # zarr.Group, opened read-only
    path: Path
    n: int
    chunk: int
    computed: int
    resumed: int
    images: int  # computed in this call
    seconds: float
    setup_seconds: float

    @property
    def maps(self):
        """The `(n, H, W)` maps (a zarr.Array; `[:]` reads them)."""
        return self.store["maps"]

    @property
    def targets(self):
        """The `(n,)` explained classes (a zarr.Array)."""
        return self.store["targets"]

    @property
    def images_per_second(self) -> float:
        """Images computed in this call per second of the whole call."""
        return self.images / self.seconds if self.seconds > 0 else float("nan")


def default_chunk(image_shape: tuple[int, ...]) -> int:
    """Images per task: one model call's worth (`engine.batch_limit`, ~8 MB of
    input, under Dask's 10 MB warning for a task's data), at most MAX_CHUNK."""
    return min(MAX_CHUNK, batch_limit(image_shape))


def local_cluster(workers: int | None = None):
    """The embedded cluster: `workers` processes (default: one per core) with
    one thread and one TensorFlow thread each. Close it (`with`) when done."""
    from distributed import LocalCluster

    # A free port for the scheduler's web server: the default, 8787, warns
    # when another cluster already holds it (`cluster.dashboard_link`).
    return LocalCluster(n_workers=workers or os.cpu_count(), threads_per_worker=1,
                        processes=True, dashboard_address=":0",
                        silence_logs=logging.ERROR, env=WORKER_ENV)


def model_hash(model: keras.Model) -> str:
    """SHA-256 of the model's class, config and weights (not of a saved file,
    whose zip entries carry timestamps)."""
    config = {"class": type(model).__name__, "config": model.get_config()}
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for weight in model.weights:
        value = np.asarray(weight)
        digest.update(f"{weight.path} {value.dtype} {value.shape}".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def _array_hash(value: np.ndarray) -> str:
    digest = hashlib.sha256(f"{value.dtype} {value.shape}".encode())
    digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def _jsonable(name: str, value):
    """`value` as JSON: arrays by shape and SHA-256, tuples as lists."""
    if isinstance(value, np.ndarray):
        return {"shape": list(value.shape), "dtype": str(value.dtype),
                "sha256": _array_hash(value)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(f"{name}[{k!r}]", v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(f"{name}[{i}]", v) for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"options: {name} must be a number, string, list, dict or array "
                     f"(recorded in the store), got {type(value).__name__}")


def _load_model(model) -> tuple[keras.Model, bytes]:
    """The model and the bytes of its `.keras` file (saved to a temporary one)."""
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if path.suffix != ".keras" or not path.is_file():
            raise ValueError(f"model must be a keras.Model or the path of a .keras file, "
                             f"got {str(model)!r}")
        return keras.saving.load_model(path), path.read_bytes()
    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a keras.Model or the path of a .keras file, "
                         f"got {type(model).__name__}")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        model.save(path)
        return model, path.read_bytes()


def _check_inputs(model: keras.Model, inputs):
    """`inputs` as an array (NumPy, memory-mapped or Zarr: read chunk by chunk)."""
    if not (hasattr(inputs, "shape") and hasattr(inputs, "dtype")):
        inputs = np.asarray(inputs)
    want = tuple(model.input_shape[1:])
    if len(inputs.shape) != 4 or inputs.shape[0] < 1 or tuple(inputs.shape[1:]) != want:
        raise ValueError(f"inputs must be a non-empty batch of shape (n, "
                         f"{', '.join(map(str, want))}) for this model, got {inputs.shape}")
    if not np.issubdtype(np.dtype(inputs.dtype), np.floating):
        raise ValueError(f"inputs must be floating point, already preprocessed for the "
                         f"model, got dtype {inputs.dtype}")
    return inputs


def _check_targets(targets, n: int, classes: int) -> np.ndarray | None:
    """Class indices, one per image, or None (each chunk's predicted classes)."""
    if targets is None:
        return None
    targets = np.asarray(targets)
    if targets.shape != (n,) or not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(f"targets must be {n} class indices (one per input), got "
                         f"shape {targets.shape} of dtype {targets.dtype}")
    if targets.min() < 0 or targets.max() >= classes:
        raise ValueError(f"targets must be in [0, {classes}), got values from "
                         f"{targets.min()} to {targets.max()}")
    return targets.astype(np.int64)


def _positive(name: str, value) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(
            value, (int, np.integer)) or value < 1):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _scan(inputs, chunk: int) -> tuple[str, float, float]:
    """One pass over `inputs` by chunks: their SHA-256 (as float32), lowest and
    highest value; refuses NaN or infinite pixels."""
    digest = hashlib.sha256(f"float32 {tuple(inputs.shape)}".encode())
    low, high = np.inf, -np.inf
    for start in range(0, inputs.shape[0], chunk):
        part = np.ascontiguousarray(inputs[start:start + chunk], np.float32)
        if not np.isfinite(part).all():
            raise ValueError("inputs must be finite: they contain NaN or infinite pixels")
        digest.update(part.tobytes())
        low, high = min(low, float(part.min())), max(high, float(part.max()))
    return digest.hexdigest(), low, high


def _check_out(out) -> Path:
    if out is None or not isinstance(out, (str, os.PathLike)):
        raise ValueError(f"out must be the path of a Zarr store (a folder), got {out!r}")
    path = Path(out).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise ValueError(f"out must be the path of a Zarr store (a folder), and {path} "
                         "is a file")
    return path


def _open_existing(path: Path, attrs: dict, adopt_chunk: bool) -> dict:
    """The arrays of the store at `path` if it was written by the same run
    (`adopt_chunk`: whatever its chunk); one clear error if not."""
    import zarr

    try:
        store = zarr.open_group(path, mode="r+")
        found = dict(store.attrs)
        arrays = {name: store[name] for name in ("maps", "targets", "done")}
    except Exception as error:  # not a Zarr group, or not one of ours
        raise ValueError(f"out: {path} exists and is not a store of explain_dataset "
                         f"({type(error).__name__}); pass another out, or delete it") from None
    if adopt_chunk and isinstance(found.get("chunk"), int) and found["chunk"] > 0:
        attrs["chunk"] = found["chunk"]
    differ = [key for key in IDENTITY if found.get(key) != attrs[key]]
    if differ:
        what = "; ".join(f"{key}: {_short(found.get(key))} there, {_short(attrs[key])} here"
                         for key in differ)
        raise ValueError(f"out: the store at {path} was written by another run ({what}); "
                         "pass another out, or delete it to start again")
    return arrays


def _short(value, width: int = 60) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= width else text[:width - 3] + "..."


def _create(path: Path, attrs: dict, image_shape: tuple[int, int]) -> dict:
    """A new store at `path`, built in a temporary folder beside it and renamed,
    so a store at `path` is always complete."""
    import zarr

    n, chunk = attrs["n"], attrs["chunk"]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        store = zarr.open_group(tmp, mode="w", attributes=attrs)
        store.create_array("maps", shape=(n, *image_shape), chunks=(chunk, *image_shape),
                           dtype="float32", fill_value=np.nan)
        store.create_array("targets", shape=(n,), chunks=(chunk,), dtype="int64",
                           fill_value=-1)
        store.create_array("done", shape=(-(-n // chunk),), chunks=(1,), dtype="bool",
                           fill_value=False)
        os.rename(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    store = zarr.open_group(path, mode="r+")
    return {name: store[name] for name in ("maps", "targets", "done")}


def _versions() -> dict:
    """Versions of what computed the maps (recorded, not compared)."""
    from importlib import metadata

    found = {}
    for name in ("xai-book-helpers", "keras", "tensorflow-cpu", "tensorflow", "dask", "zarr"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


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


def _check_client(client, workers) -> None:
    from distributed import Client

    if client is not None and not isinstance(client, (str, Client)):
        raise ValueError(f"client must be None (an embedded cluster), a scheduler address "
                         f"such as 'tcp://host:8786', or a distributed.Client, got "
                         f"{type(client).__name__}")
    _positive("workers", workers)
    if client is not None and workers is not None:
        raise ValueError("workers sets the size of the embedded cluster: pass it with "
                         "client=None, or size your cluster yourself")


def explain_dataset(model, inputs, method: str, targets=None, *, out, client=None,
                    workers: int | None = None, chunk: int | None = None,
                    batch_size: int | None = None, pixel_range=None, progress: bool = True,
                    **options) -> DatasetRun:
    """Explain every image of `inputs` with `method` on a Dask cluster into the
    Zarr store `out`; a rerun resumes from the chunks already written.

    `model`: a keras.Model or the path of a `.keras` file. `inputs`: a
    preprocessed batch `(n, H, W, C)` (NumPy, memory-mapped or Zarr). `targets`:
    the class explained per image (default: the predicted one). `client`: None
    (an embedded cluster of `workers` processes, default one per core), a
    scheduler address, or a `distributed.Client` (left open). `chunk`: images
    per task (default `default_chunk`: one model call's worth, at most 1,000;
    a rerun takes the store's). `batch_size`, `pixel_range` and `**options`
    as in `helpers.explain` (default pixel range: that of all the inputs).

    Everything is checked before any work: a bad argument, or a store at `out`
    written by another run, raises one ValueError and writes nothing.
    """
    start = time.perf_counter()
    cls = get(method)
    unknown = set(options) - set(cls.options())
    if unknown:
        raise ValueError(f"options {sorted(unknown)} are not taken by method {method!r}; it "
                         f"takes {sorted(cls.options()) or 'none'}")
    for name, value in (("chunk", chunk), ("batch_size", batch_size)):
        _positive(name, value)
    _check_client(client, workers)
    path = _check_out(out)
    model, model_bytes = _load_model(model)
    inputs = _check_inputs(model, inputs)
    targets = _check_targets(targets, inputs.shape[0], model.output_shape[-1])
    attrs, pixel_range = _attributes(cls(**options), model, inputs, targets, chunk,
                                     pixel_range)
    arrays = _open_existing(path, attrs, adopt_chunk=chunk is None) if path.exists() else None
    n, chunk = attrs["n"], attrs["chunk"]
    done = arrays["done"][:] if arrays else np.zeros(-(-n // chunk), bool)
    todo = np.flatnonzero(~done).tolist()
    setup, images = time.perf_counter() - start, 0
    if todo:
        _dry_run(model, inputs, method, targets, batch_size, pixel_range, cls, options)
        with _connect(client, min(workers or os.cpu_count() or 1, len(todo))) as dask:
            if arrays is None:
                arrays = _create(path, {**attrs, "versions": _versions()},
                                 tuple(inputs.shape[1:3]))
            setup = time.perf_counter() - start
            job = _Job(dask, arrays, inputs, method, targets, chunk, batch_size, pixel_range)
            images = job.run(todo, _Shared(attrs["model"], model_bytes, options), progress)
    import zarr

    return DatasetRun(zarr.open_group(path, mode="r"), path, n, chunk, len(todo),
                      len(done) - len(todo), images, time.perf_counter() - start, setup)


def _attributes(settings, model: keras.Model, inputs, targets, chunk: int | None,
                pixel_range) -> tuple[dict, tuple]:
    """What the store records of this call (JSON, as the store gives it back),
    and the pixel range every chunk gets: by default, that of all the inputs."""
    n = int(inputs.shape[0])
    chunk = min(chunk or default_chunk(inputs.shape[1:]), n)
    inputs_hash, low, high = _scan(inputs, chunk)
    pixel_range = black_white(pixel_range, np.asarray(inputs[:1], np.float32)
                              if pixel_range is not None else np.float32([low, high]))
    attrs = {"format": FORMAT, "method": settings.name, "n": n, "chunk": chunk,
             "options": _jsonable("options", {f: getattr(settings, f)
                                              for f in settings.options()}),
             "model": model_hash(model),
             "inputs": {"shape": list(inputs.shape), "sha256": inputs_hash},
             "targets": "predicted" if targets is None else _array_hash(targets),
             "pixel_range": [np.asarray(value).tolist() for value in pixel_range]}
    return json.loads(json.dumps(attrs)), pixel_range


def _dry_run(model, inputs, method, targets, batch_size, pixel_range, cls, options) -> None:
    """Explain the first image on the client, so a bad option fails here, not on
    a worker; for a method that explains the predicted class only, check the
    targets of every image."""
    explain(model, np.asarray(inputs[:1], np.float32), method,
            None if targets is None else targets[:1], batch_size=batch_size,
            pixel_range=pixel_range, progress=False, **options)
    if targets is None or cls.any_target:
        return
    engine, step = Engine(model, batch_size), default_chunk(inputs.shape[1:])
    predicted = np.concatenate([engine.predict(np.asarray(inputs[i:i + step], np.float32))
                                .argmax(-1) for i in range(0, inputs.shape[0], step)])
    other = np.flatnonzero(predicted != targets)
    if len(other):
        raise ValueError(f"targets: method {method!r} explains the model's predicted class "
                         f"only; images {other[:5].tolist()} have another target "
                         "(pass targets=None)")


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
