"""The datasets (MNIST, FashionMNIST, CIFAR-10) as arrays, from `sources.csv`'s
files (see helpers/sources.py), and the book's preprocessing and sampling."""
from __future__ import annotations

import gzip
import io
import tarfile
import tempfile
from pathlib import Path

import numpy as np

# Where files come from lives in helpers/sources.py; imported from here too.
from .sources import (CACHE_ENV, MIRROR_ENV, ChecksumError, DataUnavailableError,  # noqa: F401
                      Source, _download, _source, atomic_path, cache_dir, fetch,
                      fetch_bytes, mirror_file, mirror_root, sha256, sources)

CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer",
                "dog", "frog", "horse", "ship", "truck"],
}
DATASETS = tuple(CLASS_NAMES)

Split = tuple[np.ndarray, np.ndarray]


def _check_name(name: str) -> str:
    if name not in CLASS_NAMES:
        raise ValueError(f"name must be one of {list(DATASETS)}, got {name!r}")
    return name


def class_names(name: str) -> list[str]:
    """The class names of dataset `name`, in label order."""
    return list(CLASS_NAMES[_check_name(name)])


def _read_idx(path: Path) -> np.ndarray:
    """Read a gzipped IDX file (the MNIST family's format) without pickle."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big")
                  for i in range(ndim))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _mnist(path: Path) -> tuple[Split, Split]:
    with np.load(path, allow_pickle=False) as f:
        return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])


def _fashion_mnist() -> tuple[Split, Split]:
    parts = {}
    for split in ("train", "t10k"):
        parts[split] = tuple(_read_idx(fetch(f"fashion_mnist/{split}-{kind}-ubyte.gz"))
                             for kind in ("images-idx3", "labels-idx1"))
    return parts["train"], parts["t10k"]


def _cached_arrays(name: str, build) -> tuple[Split, Split]:
    """Arrays decoded once into the cache (`name`.npz), then loaded from it."""
    cached = cache_dir("data") / f"{name}.npz"
    if not cached.exists():
        with atomic_path(cached) as tmp:
            np.savez(tmp, **build())
    with np.load(cached, allow_pickle=False) as f:
        return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])


def _read_rgb(path: Path | io.BytesIO) -> np.ndarray:
    """An image file (a path, or its bytes in a BytesIO) as RGB uint8 pixels."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _cifar10_jpeg(path: Path) -> dict[str, np.ndarray]:
    """The mirror's JPEG tarball, decoded: by class, then file name."""
    names = CLASS_NAMES["cifar10"]
    found: dict[str, list] = {"train": [], "test": []}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) != 3:
                continue
            split, label, fname = parts
            pixels = _read_rgb(io.BytesIO(tar.extractfile(member).read()))
            found[split].append((names.index(label), fname, pixels))
    arrays = {}
    for split, items in found.items():
        items.sort(key=lambda item: item[:2])
        arrays[f"x_{split}"] = np.stack([item[2] for item in items])
        arrays[f"y_{split}"] = np.array([item[0] for item in items], np.uint8)
    return arrays


def _cifar10_batches(path: Path) -> dict[str, np.ndarray]:
    """The original `cifar-10-python.tar.gz`: pickled batches, read with
    Keras's restricted unpickler (numpy arrays only)."""
    from keras.src.datasets.cifar import load_batch

    parts: dict[str, list] = {"train": [], "test": []}
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(path, "r:gz") as tar:
            tar.extractall(tmp, filter="data")
        for batch in sorted(Path(tmp).rglob("*_batch*")):
            if batch.name == "batches.meta":
                continue
            x, y = load_batch(batch)
            parts["test" if batch.name == "test_batch" else "train"].append(
                (np.asarray(x).transpose(0, 2, 3, 1), np.asarray(y, np.uint8)))
    return {f"{k}_{split}": np.concatenate([p[i] for p in items])
            for split, items in parts.items() for i, k in enumerate(("x", "y"))}


def _cifar10() -> tuple[Split, Split]:
    src = _source("cifar10")
    local = mirror_file(src.mirror)
    if local is not None:
        return _cached_arrays(f"cifar10-jpg-{src.mirror_sha256[:12]}",
                              lambda: _cifar10_jpeg(local))
    path = fetch("cifar10")
    return _cached_arrays(f"cifar10-{src.sha256[:12]}", lambda: _cifar10_batches(path))


_LOADERS = {
    "mnist": ("mnist", lambda: _mnist(fetch("mnist"))),
    "fashion_mnist": ("fashion_mnist/train-images-idx3-ubyte.gz", _fashion_mnist),
    "cifar10": ("cifar10", _cifar10),
}


def source(name: str) -> str:
    """Where `load_dataset(name)` reads from: 'mirror' or 'download'."""
    src = _source(_LOADERS[_check_name(name)][0])
    return "mirror" if mirror_file(src.mirror) else "download"


def load_dataset(name: str) -> tuple[Split, Split]:
    """`(x_train, y_train), (x_test, y_test)` of `name` as uint8 arrays: from the
    mirror when one is set, else from the canonical files (see `sources()`)."""
    (x_train, y_train), (x_test, y_test) = _LOADERS[_check_name(name)][1]()
    return ((np.asarray(x_train, np.uint8), np.asarray(y_train, np.uint8).ravel()),
            (np.asarray(x_test, np.uint8), np.asarray(y_test, np.uint8).ravel()))


def preprocess(images: np.ndarray) -> np.ndarray:
    """uint8 images `(n, H, W)` or `(n, H, W, C)` to float32 in [0, 1], with a channel axis."""
    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise ValueError(
            f"images must be (n, H, W) or (n, H, W, C), got shape {images.shape}")
    if images.ndim == 3:
        images = images[..., None]
    return images.astype(np.float32) / 255.0


def sample(labels: np.ndarray, n: int, seed: int = 0,
           distinct: bool = False) -> np.ndarray:
    """Indices of `n` random examples; with `distinct`, of `n` different classes."""
    labels = np.asarray(labels)
    if n < 1 or n > len(labels):
        raise ValueError(f"n must be between 1 and {len(labels)}, got {n}")
    order = np.random.default_rng(seed).permutation(len(labels))
    if not distinct:
        return np.sort(order[:n])
    _, first = np.unique(labels[order], return_index=True)
    if n > len(first):
        raise ValueError(f"n must be at most {len(first)} classes, got {n}")
    return order[np.sort(first)[:n]]


# The photos live in helpers/photos.py; chapters import them from here too.
from .photos import (BOOK_PHOTOS, SKIMAGE_PHOTOS, Photo, book_photos, fit_photo,  # noqa: E402,F401
                     images_from_folder, imagenet_class_index, imagenet_names, photos)
