"""ImageNet's class index and the book's photos (scikit-image's samples, the
val20 photos inside foolbox's wheel, SHAP's 50), each a row of `sources.csv`."""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .data import _read_rgb
from .sources import _download, _source, atomic_path, fetch_bytes, mirror_file, sha256, sources

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
