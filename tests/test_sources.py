"""Every external file: its table, the mirror route, and the reader's online
route, proved without a network by standing in for `keras.utils.get_file`."""
from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

import helpers
from helpers.data import (ChecksumError, DataUnavailableError, fetch_bytes,
                          imagenet_class_index, photos, sources)


def test_the_table_names_every_file_the_book_reads():
    table = sources()
    groups = [key.split("/")[0] for key in table]
    assert groups.count("val20") == 20 and groups.count("imagenet50") == 50
    assert {"mnist", "cifar10", "imagenet_class_index", "foolbox_wheel",
            "vgg19_weights", "mobilenet_weights"} <= set(table)
    assert groups.count("fashion_mnist") == 4
    for src in table.values():
        assert src.url.startswith("https://"), src.key
        assert len(src.sha256) == 64 or "no copy here to hash" in src.note, src.key
        if src.member:  # the archive that holds it is in the table too
            assert any(a.url == src.url and not a.member for a in table.values())


def test_the_mirror_matches_the_table(mirror):
    for src in sources().values():
        if src.mirror:
            data = (mirror / src.mirror).read_bytes()
            assert hashlib.sha256(data).hexdigest() == src.mirror_sha256, src.key


def _cifar_tarball(path: Path, rng) -> dict[str, np.ndarray]:
    """A small tarball in the layout of cifar-10-python.tar.gz."""
    arrays = {"train": [], "test": []}
    with tarfile.open(path, "w:gz") as tar:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            x = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
            y = rng.integers(0, 10, 2).tolist()
            arrays["test" if name == "test_batch" else "train"].append((x, y))
            batch = {b"data": x.transpose(0, 3, 1, 2).reshape(2, -1), b"labels": y}
            data = pickle.dumps(batch)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return {split: (np.concatenate([x for x, _ in parts]),
                    np.concatenate([y for _, y in parts]))
            for split, parts in arrays.items()}


@pytest.fixture
def internet(mirror, tmp_path, monkeypatch):
    """No mirror; `keras.utils.get_file` served from the mirror's bytes (an
    archive of the val20 photos stands in for foolbox's wheel, a small
    original-format tarball for CIFAR-10). Returns the URLs asked for."""
    table = sources()
    served = {src.url: mirror / src.mirror for src in table.values()
              if src.mirror and not src.member}
    wheel = tmp_path / "foolbox.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for src in table.values():
            if src.member:
                z.write(mirror / src.mirror, src.member)
    served[table["foolbox_wheel"].url] = wheel
    tarball = tmp_path / "cifar-10-python.tar.gz"
    expected = _cifar_tarball(tarball, np.random.default_rng(0))
    served[table["cifar10"].url] = tarball
    asked = []

    def get_file(fname, origin, cache_subdir="datasets", file_hash=None, **_):
        asked.append((origin, file_hash, cache_subdir))
        return str(served[origin])

    monkeypatch.delenv("XAI_BOOK_MIRROR", raising=False)
    monkeypatch.setattr(keras.utils, "get_file", get_file)
    return asked, expected


def test_the_online_route_asks_each_canonical_url(internet, mirror, monkeypatch):
    asked, cifar = internet
    table = sources()
    (x_train, y_train), (x_test, y_test) = helpers.load_dataset("cifar10")
    np.testing.assert_array_equal(x_train, cifar["train"][0])
    np.testing.assert_array_equal(y_test, cifar["test"][1])
    online = {name: helpers.load_dataset(name) for name in ("mnist", "fashion_mnist")}
    found = {p.name: p for p in photos(("val20", "imagenet50"))}
    assert len(found) == 70
    assert len(imagenet_class_index()) == 1000
    urls = {url for url, _, _ in asked}
    wanted = {src.url for key, src in table.items() if "weights" not in key}
    assert urls == wanted
    for url, file_hash, _ in asked:  # every download is hash-checked
        assert file_hash == next(s.sha256 for s in table.values() if s.url == url)
    # The same arrays and photos as through the mirror.
    monkeypatch.setenv("XAI_BOOK_MIRROR", str(mirror))
    for name, (train, test) in online.items():
        (mx_train, _), (_, my_test) = helpers.load_dataset(name)
        np.testing.assert_array_equal(train[0], mx_train)
        np.testing.assert_array_equal(test[1], my_test)
    for photo in photos(("val20", "imagenet50")):
        np.testing.assert_array_equal(found[photo.name].image, photo.image)
        assert found[photo.name].label == photo.label


def test_a_changed_photo_in_the_archive_is_a_checksum_error(internet, tmp_path,
                                                            monkeypatch):
    table = sources()
    src = table["val20/imagenet_00_243.jpg"]
    damaged = tmp_path / "damaged.whl"
    with zipfile.ZipFile(damaged, "w") as z:
        z.writestr(src.member, b"not the photo")
    monkeypatch.setattr(keras.utils, "get_file", lambda *a, **k: str(damaged))
    with pytest.raises(ChecksumError, match="imagenet_00_243.jpg in https://files"):
        fetch_bytes(src.key)


@pytest.mark.parametrize("key", ["cifar10", "imagenet50/sim_n01549053_4208.jpg"])
def test_no_mirror_and_no_network_names_the_file_its_url_and_the_mirror(
        monkeypatch, key):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.delenv("XAI_BOOK_MIRROR", raising=False)
    monkeypatch.setattr(keras.utils, "get_file", offline)
    src = sources()[key]
    with pytest.raises(DataUnavailableError) as error:
        if key == "cifar10":
            helpers.load_dataset(key)
        else:
            fetch_bytes(key)
    text = str(error.value)
    assert f"Cannot load {key!r} from {src.url}" in text
    assert "no mirror (XAI_BOOK_MIRROR is unset)" in text
    assert f"set XAI_BOOK_MIRROR to a folder that holds {src.mirror}" in text
