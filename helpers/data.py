"""Datasets: a mirror when ``XAI_BOOK_MIRROR`` names one, else Keras's loaders."""
from __future__ import annotations

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

# SHA-256 of the mirror's files (from its data/README.md).
MIRROR_SHA256 = {
    "data/mnist.npz":
        "06af5dfe73b70e3bc1c36439982b18a8d76803db9b544f6fdf838a37fbb01b64",
    "data/fashion-mnist/t10k-images-idx3-ubyte.gz":
        "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "data/fashion-mnist/t10k-labels-idx1-ubyte.gz":
        "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
    "data/fashion-mnist/train-images-idx3-ubyte.gz":
        "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "data/fashion-mnist/train-labels-idx1-ubyte.gz":
        "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "data/cifar10-jpg.tar.gz":
        "cec73be4de1061c172ee1e28c18c9e4b66ee0e3fcbd01bb291876cd4272f0970",
    "data/imagenet/imagenet_class_index.json":
        "a1e7a966a1f601d39e4b43e119b3e7dd4a2ad3ea08cf69847cbaf021013767bc",
    "models/mobilenet_v1_0.75_224_imagenet.keras":
        "dfe25223f327a0778e96d890c9bb5609765fc440875fb2814fde0116a70555ca",
}

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
    expected = MIRROR_SHA256.get(relpath)
    if expected is not None and sha256(path) != expected:
        raise ChecksumError(
            f"{path} does not match its SHA-256 ({expected[:12]}...): the "
            "mirror copy is damaged. Restore it from the original mirror.")
    return path


def _unavailable(name: str, relpath: str, error: Exception) -> None:
    root = mirror_root()
    looked = (f"{root / relpath} (not there)" if root
              else f"no mirror ({MIRROR_ENV} is unset)")
    raise DataUnavailableError(
        f"Cannot load {name!r}: looked for {looked}, and Keras could not "
        f"download it ({type(error).__name__}: {error}). Fix: connect to the "
        "internet once (Keras keeps the file in ~/.keras/datasets), or set "
        f"{MIRROR_ENV} to a folder that holds {relpath}.") from None


def _read_idx(path: Path) -> np.ndarray:
    """Read a gzipped IDX file (the MNIST family's format) without pickle."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big")
                  for i in range(ndim))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _mnist_from_mirror(path: Path) -> tuple[Split, Split]:
    with np.load(path, allow_pickle=False) as f:
        return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])


def _fashion_from_mirror(folder: Path) -> tuple[Split, Split]:
    parts = {}
    for split in ("train", "t10k"):
        parts[split] = (
            _read_idx(mirror_file(f"{folder}/{split}-images-idx3-ubyte.gz")),
            _read_idx(mirror_file(f"{folder}/{split}-labels-idx1-ubyte.gz")))
    return parts["train"], parts["t10k"]


def _cifar10_from_mirror(path: Path) -> tuple[Split, Split]:
    """Decode the mirror's JPEG tarball once, then load the cached arrays."""
    cached = cache_dir("data") / f"cifar10-jpg-{MIRROR_SHA256['data/cifar10-jpg.tar.gz'][:12]}.npz"
    if not cached.exists():
        from PIL import Image

        names = CLASS_NAMES["cifar10"]
        found: dict[str, list] = {"train": [], "test": []}
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                parts = Path(member.name).parts
                if not member.isfile() or len(parts) != 3:
                    continue
                split, label, fname = parts
                pixels = np.asarray(Image.open(
                    io.BytesIO(tar.extractfile(member).read())).convert("RGB"))
                found[split].append((names.index(label), fname, pixels))
        arrays = {}
        for split, items in found.items():
            items.sort(key=lambda item: item[:2])  # by class, then file name
            arrays[f"x_{split}"] = np.stack([item[2] for item in items])
            arrays[f"y_{split}"] = np.array([item[0] for item in items], np.uint8)
        with atomic_path(cached) as tmp:
            np.savez(tmp, **arrays)
    with np.load(cached, allow_pickle=False) as f:
        return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])


_MIRROR = {
    "mnist": ("data/mnist.npz", _mnist_from_mirror),
    "fashion_mnist": ("data/fashion-mnist/train-images-idx3-ubyte.gz",
                      lambda p: _fashion_from_mirror("data/fashion-mnist")),
    "cifar10": ("data/cifar10-jpg.tar.gz", _cifar10_from_mirror),
}


def source(name: str) -> str:
    """Where `load_dataset(name)` reads from: 'mirror' or 'keras'."""
    return "mirror" if mirror_file(_MIRROR[_check_name(name)][0]) else "keras"


def load_dataset(name: str) -> tuple[Split, Split]:
    """`(x_train, y_train), (x_test, y_test)` of `name` as uint8 arrays."""
    relpath, from_mirror = _MIRROR[_check_name(name)]
    path = mirror_file(relpath)
    if path is not None:
        (x_train, y_train), (x_test, y_test) = from_mirror(path)
    else:
        import keras

        try:
            (x_train, y_train), (x_test, y_test) = getattr(
                keras.datasets, name).load_data()
        except Exception as error:  # Keras raises bare Exception offline
            _unavailable(name, relpath, error)
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

CLASS_INDEX_URL = ("https://storage.googleapis.com/download.tensorflow.org/"
                   "data/imagenet_class_index.json")
CLASS_INDEX_MD5 = "c2c37ea517e94d9795004a39431a14cb"
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

    import keras

    local = mirror_file("data/imagenet/imagenet_class_index.json")
    origin = local.as_uri() if local else CLASS_INDEX_URL
    try:
        path = keras.utils.get_file("imagenet_class_index.json", origin,
                                    cache_subdir="models", file_hash=CLASS_INDEX_MD5)
    except Exception as error:  # Keras raises bare Exception offline
        _unavailable("imagenet_class_index", "data/imagenet/imagenet_class_index.json", error)
    index = json.loads(Path(path).read_text())
    return [tuple(index[str(i)]) for i in range(len(index))]


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def photos(sources: tuple[str, ...] = ("skimage", "val20", "imagenet50")) -> list[Photo]:
    """Real photos with their ImageNet label where one is known."""
    unknown = set(sources) - {"skimage", "val20", "imagenet50"}
    if unknown:
        raise ValueError(f"sources must be among 'skimage', 'val20', 'imagenet50', "
                         f"got {sorted(unknown)}")
    import skimage.data

    found = []
    if "skimage" in sources:
        found += [Photo(name, getattr(skimage.data, name)()[..., :3]
                        if name != "stereo_motorcycle"
                        else skimage.data.stereo_motorcycle()[0], None,
                        f"scikit-image ({what})")
                  for name, what in SKIMAGE_PHOTOS.items()]
    root = mirror_root()
    wnids = ({wnid: i for i, (wnid, _) in enumerate(imagenet_class_index())}
             if "imagenet50" in sources and root else {})
    for source in ("val20", "imagenet50"):
        if source not in sources:
            continue
        if root is None:
            import warnings

            warnings.warn(f"the {source!r} photos come from the data mirror; "
                          f"set {MIRROR_ENV} to include them", stacklevel=2)
            continue
        for path in sorted((root / "data" / "imagenet" / source).glob("*.jpg")):
            if source == "val20":  # imagenet_NN_CLASS.jpg
                label = int(path.stem.rsplit("_", 1)[1])
            else:  # sim_WNID_N.jpg: only 7 of the WordNet ids are ImageNet classes
                label = wnids.get(path.stem.split("_")[1])
            found.append(Photo(path.stem, _read_rgb(path), label, f"ImageNet {source}"))
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
