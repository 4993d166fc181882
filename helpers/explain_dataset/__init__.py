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

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from ..engine import Engine
from ..methods import explain, get
from .cluster import WORKER_ENV, _connect, _Job, _Shared, local_cluster
from .store import (MAX_CHUNK, _attributes, _create, _open_existing, _versions, default_chunk,
                    model_hash)

__all__ = ["explain_dataset", "DatasetRun", "local_cluster", "default_chunk", "model_hash",
           "MAX_CHUNK", "WORKER_ENV"]


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


def _check_out(out) -> Path:
    if out is None or not isinstance(out, (str, os.PathLike)):
        raise ValueError(f"out must be the path of a Zarr store (a folder), got {out!r}")
    path = Path(out).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise ValueError(f"out must be the path of a Zarr store (a folder), and {path} "
                         "is a file")
    return path


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
