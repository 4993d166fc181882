"""Loaders: shapes, counts, the mirror's checksums, and the offline error."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import helpers
from helpers.data import (ChecksumError, DataUnavailableError, atomic_path,
                          preprocess, sample)

EXPECTED = {  # shape of one image, train and test counts per class
    "mnist": ((28, 28),
              [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
              [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]),
    "fashion_mnist": ((28, 28), [6000] * 10, [1000] * 10),
    "cifar10": ((32, 32, 3), [5000] * 10, [1000] * 10),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_loader_shapes_dtypes_and_counts(name):
    (x_train, y_train), (x_test, y_test) = helpers.load_dataset(name)
    shape, train_counts, test_counts = EXPECTED[name]
    assert x_train.shape == (sum(train_counts), *shape)
    assert x_test.shape == (sum(test_counts), *shape)
    for array in (x_train, y_train, x_test, y_test):
        assert array.dtype == np.uint8
    assert np.bincount(y_train).tolist() == train_counts
    assert np.bincount(y_test).tolist() == test_counts
    assert 0 < x_test.mean() < 255  # real pixels, not an empty array


def test_class_names():
    assert helpers.class_names("mnist") == list("0123456789")
    fashion = helpers.class_names("fashion_mnist")
    assert fashion[0] == "T-shirt/top" and fashion[9] == "Ankle boot"
    cifar = helpers.class_names("cifar10")
    assert cifar[0] == "airplane" and cifar[9] == "truck" and len(cifar) == 10


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(ValueError, match=r"name must be one of .*'mnist'.*got 'svhn'"):
        helpers.load_dataset("svhn")


def test_no_mirror_and_no_network_gives_one_clear_error(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("XAI_BOOK_MIRROR", "NO_PROXY", "no_proxy")}
    # An empty Keras cache and a proxy that refuses: no network, for certain.
    env.update(KERAS_HOME=str(tmp_path), HTTP_PROXY="http://127.0.0.1:9",
               HTTPS_PROXY="http://127.0.0.1:9", http_proxy="http://127.0.0.1:9",
               https_proxy="http://127.0.0.1:9")
    result = subprocess.run(
        [sys.executable, "-c", "import helpers; helpers.load_dataset('mnist')"],
        env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("helpers.sources.DataUnavailableError: Cannot load 'mnist'")
    assert "no mirror (XAI_BOOK_MIRROR is unset)" in last
    assert "connect to the internet once" in last
    assert "set XAI_BOOK_MIRROR to a folder that holds data/mnist.npz" in last
    assert "keras/src" not in result.stderr  # no traceback from inside Keras


def test_mirror_that_is_not_a_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("XAI_BOOK_MIRROR", str(tmp_path / "nowhere"))
    with pytest.raises(DataUnavailableError, match="is not a folder"):
        helpers.load_dataset("mnist")


@pytest.mark.parametrize("relpath, name", [("data/mnist.npz", "mnist"),
                                           ("data/cifar10-jpg.tar.gz", "cifar10")])
def test_changed_byte_is_a_checksum_error_and_leaves_no_cache(
        mirror, tmp_path, monkeypatch, relpath, name):
    damaged = tmp_path / "mirror" / relpath
    damaged.parent.mkdir(parents=True)
    shutil.copyfile(mirror / relpath, damaged)
    with open(damaged, "r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    cache = tmp_path / "cache"
    monkeypatch.setenv("XAI_BOOK_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("XAI_BOOK_CACHE", str(cache))
    with pytest.raises(ChecksumError, match=f"{relpath} does not match its SHA-256"):
        helpers.load_dataset(name)
    assert not [p for p in cache.rglob("*") if p.is_file()]


def test_atomic_path_leaves_nothing_when_interrupted(tmp_path):
    dest = tmp_path / "arrays.npz"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(dest) as tmp:
            np.savez(tmp, x=np.arange(3))
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with atomic_path(dest) as tmp:
        np.savez(tmp, x=np.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["arrays.npz"]


def test_preprocess_and_sample():
    images = np.full((4, 28, 28), 255, np.uint8)
    out = preprocess(images)
    assert out.shape == (4, 28, 28, 1) and out.dtype == np.float32 and out.max() == 1
    with pytest.raises(ValueError, match="images must be"):
        preprocess(np.zeros(5))
    labels = np.array([0, 0, 1, 1, 2, 2])
    pick = sample(labels, 3, seed=1, distinct=True)
    assert sorted(labels[pick]) == [0, 1, 2]
    assert (sample(labels, 3, seed=1, distinct=True) == pick).all()
    with pytest.raises(ValueError, match="n must be at most 3 classes"):
        sample(labels, 4, distinct=True)
