"""The Zarr store of `explain_dataset`: its layout, the attributes that identify a run."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np

from ..engine import batch_limit
from ..methods import black_white

FORMAT = 1  # of the store's layout and attributes
MAX_CHUNK = 1000  # images per task at most (small images)
# What must be equal for a rerun to resume a store.
IDENTITY = ("format", "method", "options", "model", "inputs", "targets", "pixel_range", "n",
            "chunk")


def default_chunk(image_shape: tuple[int, ...]) -> int:
    """Images per task: one model call's worth (`engine.batch_limit`, ~8 MB of
    input, under Dask's 10 MB warning for a task's data), at most MAX_CHUNK."""
    return min(MAX_CHUNK, batch_limit(image_shape))


def model_hash(model: keras.Model) -> str:
    """SHA-256 of the model's class, config and weights (not of a saved file,
    whose zip entries carry timestamps). Weights count by position, not by path:
    Keras names a freshly built model's weights `model/layer/kernel` and the
    same model loaded from its file `layer/kernel`."""
    config = {"class": type(model).__name__, "config": model.get_config()}
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for position, weight in enumerate(model.weights):
        value = np.asarray(weight)
        digest.update(f"{position} {value.dtype} {value.shape}".encode())
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
