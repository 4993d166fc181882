"""External files (`sources.csv`): from a mirror when ``XAI_BOOK_MIRROR`` names
one, else from their canonical URLs through ``keras.utils.get_file``."""
from __future__ import annotations

import functools
import gzip
import hashlib
import io
import os
import tarfile
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

MIRROR_ENV = "XAI_BOOK_MIRROR"
CACHE_ENV = "XAI_BOOK_CACHE"

SOURCES_FILE = Path(__file__).with_name("sources.csv")


class Source(NamedTuple):
    """One external file the book reads: where it comes from, and its checks.

    `url` is the canonical public source (inside the archive at `url` when
    `member` is set); `sha256` checks what comes from it. `mirror` is the
    file's path in an offline mirror, checked against `mirror_sha256` (other
    bytes where `note` says so).
    """

    key: str
    url: str
    sha256: str
    mirror: str
    mirror_sha256: str
    member: str
    note: str


@functools.cache
def sources() -> dict[str, Source]:
    """The table of every external file the book reads (`helpers/sources.csv`)."""
    import csv

    with open(SOURCES_FILE, newline="") as f:
        return {row["key"]: Source(**row) for row in csv.DictReader(f)}


CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer",
                "dog", "frog", "horse", "ship", "truck"],
}
DATASETS = tuple(CLASS_NAMES)

Split = tuple[np.ndarray, np.ndarray]


class DataUnavailableError(RuntimeError):
    """Neither the mirror nor Keras's download could deliver a file."""


class ChecksumError(RuntimeError):
    """A mirror file does not match its published SHA-256."""


def _check_name(name: str) -> str:
    if name not in CLASS_NAMES:
        raise ValueError(f"name must be one of {list(DATASETS)}, got {name!r}")
    return name


def class_names(name: str) -> list[str]:
    """The class names of dataset `name`, in label order."""
    return list(CLASS_NAMES[_check_name(name)])


def mirror_root() -> Path | None:
    """The mirror folder named by XAI_BOOK_MIRROR, or None when unset."""
    value = os.environ.get(MIRROR_ENV)
    if not value:
        return None
    root = Path(value).expanduser().resolve()
    if not root.is_dir():
        raise DataUnavailableError(
            f"{MIRROR_ENV}={value!r} is not a folder (looked at {root}). Point "
            "it at a folder laid out like ../shared (data/..., models/...), "
            "preferably as an absolute path, or unset it.")
    return root


def cache_dir(*parts: str) -> Path:
    """A folder under the cache (XAI_BOOK_CACHE, default ~/.cache/xai-book)."""
    value = os.environ.get(CACHE_ENV)
    if value:
        root = Path(value).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))
        root = Path(xdg) / "xai-book"
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temporary path beside `dest`, renamed to `dest` on success."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=dest.parent, prefix=f".{dest.stem}.", suffix=dest.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)


def sha256(path: Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def mirror_file(relpath: str) -> Path | None:
    """The checked mirror copy of `relpath`; None if no mirror or no file."""
    root = mirror_root()
    if root is None or not (root / relpath).is_file():
        return None
    path = root / relpath
    expected = next((src.mirror_sha256 for src in sources().values()
                     if src.mirror == relpath), None)
    if expected and sha256(path) != expected:
        raise ChecksumError(
            f"{path} does not match its SHA-256 ({expected[:12]}...): the "
            "mirror copy is damaged. Restore it from the original mirror.")
    return path


def _source(key: str) -> Source:
    if key not in sources():
        raise ValueError(f"key must be one of the {len(sources())} files of "
                         f"{SOURCES_FILE.name}, got {key!r}")
    return sources()[key]


def _download(src: Source, cache_subdir: str = "datasets") -> Path:
    """`keras.utils.get_file` of the canonical URL: hash-checked, in Keras's cache."""
    import keras

    root = mirror_root()
    try:
        return Path(keras.utils.get_file(
            fname=Path(src.url).name, origin=src.url, cache_subdir=cache_subdir,
            file_hash=src.sha256 or None))
    except Exception as error:  # Keras raises bare Exception offline
        looked = (f"{root / src.mirror} is not there" if root and src.mirror
                  else f"{MIRROR_ENV} is set to a folder without it" if root
                  else f"no mirror ({MIRROR_ENV} is unset)")
        raise DataUnavailableError(
            f"Cannot load {src.key!r} from {src.url} ({type(error).__name__}: "
            f"{error}); {looked}. Fix: connect to the internet once (Keras keeps "
            f"the file in its cache), or set {MIRROR_ENV} to a folder that holds "
            f"{src.mirror or 'it'}.") from None


def fetch(key: str, cache_subdir: str = "datasets") -> Path:
    """The local path of external file `key` (a row of `sources()`): the
    mirror's checked copy when a mirror holds it, else the canonical download."""
    src = _source(key)
    if src.member:
        raise ValueError(f"key {key!r} is a member of an archive: use fetch_bytes")
    local = mirror_file(src.mirror) if src.mirror else None
    return local or _download(src, cache_subdir)


def fetch_bytes(key: str) -> bytes:
    """The bytes of external file `key`, from the mirror, the canonical file, or
    the canonical archive that holds it, checked against their SHA-256."""
    src = _source(key)
    local = mirror_file(src.mirror) if src.mirror else None
    if local is not None:
        return local.read_bytes()
    if not src.member:
        return fetch(key).read_bytes()
    import zipfile

    archive = next(a for a in sources().values() if a.url == src.url and not a.member)
    with zipfile.ZipFile(_download(archive)) as z:
        data = z.read(src.member)
    if hashlib.sha256(data).hexdigest() != src.sha256:
        raise ChecksumError(f"{src.member} in {src.url} does not match its SHA-256 "
                            f"({src.sha256[:12]}...)")
    return data


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


# --- ImageNet: class index and photos --------------------------------------

SKIMAGE_PHOTOS = {  # scikit-image's sample photos, standing in for COCO scenes
    "chelsea": "cat", "coffee": "coffee cup", "astronaut": "astronaut",
    "rocket": "rocket", "stereo_motorcycle": "motorcycle",
}


class Photo(NamedTuple):
    """A real photo: RGB uint8 pixels, its ImageNet label if known, its source."""

    name: str
    image: np.ndarray
    label: int | None
    source: str


def imagenet_class_index() -> list[tuple[str, str]]:
    """`(wordnet_id, name)` of the 1,000 ImageNet classes, in Keras's order.

    Keras's own file, fetched once into Keras's cache (from the mirror when
    one is set), so `keras.applications.*.decode_predictions` works offline.
    """
    import json

    src = _source("imagenet_class_index")
    local = mirror_file(src.mirror)
    if local is None:
        path = _download(src, cache_subdir="models")
    else:  # copied into Keras's cache, where decode_predictions looks for it
        home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
        path = home / "models" / Path(src.url).name
        if not path.is_file() or sha256(path) != src.sha256:
            import shutil

            with atomic_path(path) as tmp:
                shutil.copyfile(local, tmp)
    index = json.loads(Path(path).read_text())
    return [tuple(index[str(i)]) for i in range(len(index))]


def _read_rgb(path: Path | io.BytesIO) -> np.ndarray:
    """An image file (a path, or its bytes in a BytesIO) as RGB uint8 pixels."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def photos(groups: tuple[str, ...] = ("skimage", "val20", "imagenet50")) -> list[Photo]:
    """Real photos with their ImageNet label where one is known: scikit-image's
    samples, the 20 ImageNet validation photos of `val20`, SHAP's `imagenet50`."""
    unknown = set(groups) - {"skimage", "val20", "imagenet50"}
    if unknown:
        raise ValueError(f"groups must be among 'skimage', 'val20', 'imagenet50', "
                         f"got {sorted(unknown)}")
    import skimage.data

    found = []
    if "skimage" in groups:
        found += [Photo(name, getattr(skimage.data, name)()[..., :3]
                        if name != "stereo_motorcycle"
                        else skimage.data.stereo_motorcycle()[0], None,
                        f"scikit-image ({what})")
                  for name, what in SKIMAGE_PHOTOS.items()]
    wnids = ({wnid: i for i, (wnid, _) in enumerate(imagenet_class_index())}
             if "imagenet50" in groups else {})
    for group in ("val20", "imagenet50"):
        if group not in groups:
            continue
        for key in sorted(k for k in sources() if k.startswith(f"{group}/")):
            image = _read_rgb(io.BytesIO(fetch_bytes(key)))
            stem = Path(key).stem
            if group == "val20":  # imagenet_NN_CLASS.jpg
                label = int(stem.rsplit("_", 1)[1])
            else:  # sim_WNID_N.jpg: only 7 of the WordNet ids are ImageNet classes
                label = wnids.get(stem.split("_")[1])
            found.append(Photo(stem, image, label, f"ImageNet {group}"))
    return found


def fit_photo(image: np.ndarray, size: int = 224) -> np.ndarray:
    """Centre-crop an RGB photo to a square and resize it to `size` pixels."""
    from skimage.transform import resize

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be an RGB photo of shape (H, W, 3), got {image.shape}")
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = image[top:top + side, left:left + side]
    if side == size:
        return square.astype(np.uint8)
    out = resize(square, (size, size), preserve_range=True, anti_aliasing=True)
    return out.round().clip(0, 255).astype(np.uint8)


# The photos the three ImageNet chapters explain, so they can be compared.
BOOK_PHOTOS = ("chelsea", "coffee", "stereo_motorcycle", "imagenet_07_609",
               "imagenet_00_243")


def book_photos() -> list[Photo]:
    """The chapters' photos (those of BOOK_PHOTOS that this machine has)."""
    by_name = {p.name: p for p in photos(("skimage", "val20"))}
    return [by_name[name] for name in BOOK_PHOTOS if name in by_name]


def imagenet_names() -> list[str]:
    """The 1,000 ImageNet class names, in Keras's order."""
    return [name for _, name in imagenet_class_index()]


def images_from_folder(path: str | Path, size: int = 224
                       ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A reader's own photos: `(images uint8 (n, size, size, 3), labels, class_names)`.

    Class sub-folders give the labels (in sorted order); photos directly in
    `path` get the label -1.
    """
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"path must be a folder of images, got {str(path)!r}")
    suffixes = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in suffixes)
    if not files:
        raise ValueError(f"path {str(path)!r} holds no images ({sorted(suffixes)})")
    names = sorted({p.parent.name for p in files if p.parent != root})
    labels = np.array([names.index(p.parent.name) if p.parent != root else -1
                       for p in files])
    images = np.stack([fit_photo(_read_rgb(p), size) for p in files])
    return images, labels, names
