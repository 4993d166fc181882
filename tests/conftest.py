"""Shared fixtures: a private cache per test session, a small trained model."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

import helpers

# The reader's model cache, as set before the tests replace it with their own.
READER_CACHE = os.environ.get("XAI_BOOK_CACHE")


def assert_most_pixels_close(actual: np.ndarray, expected: np.ndarray, *, rtol: float,
                             atol: float, share: float = 0.01) -> None:
    """All but `share` of the pixels within the tolerance, and no shape difference.

    Float round-off depends on the batch's size and on the number of threads
    (AMD EPYC and Intel Xeon, oneDNN) and can flip a unit sitting at 0 after a
    ReLU, which reroutes a raw gradient: measured on saliency, 24 of 4,704
    pixels of six images. The rest must agree."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    differ = ~np.isclose(actual, expected, rtol=rtol, atol=atol)
    assert differ.mean() <= share, (f"{differ.mean():.2%} of the pixels differ, "
                                    f"at most {np.abs(actual - expected).max():.3g}")


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    """A cache folder of this session's own, so tests never see the reader's."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def private_cache(session_cache, monkeypatch) -> Path:
    monkeypatch.setenv("XAI_BOOK_CACHE", str(session_cache))
    return session_cache


@pytest.fixture
def reader_cache(private_cache, monkeypatch):
    """The reader's own cache (the book build's trained models), for tests
    about the models the chapters use."""
    if READER_CACHE is None:
        monkeypatch.delenv("XAI_BOOK_CACHE")
    else:
        monkeypatch.setenv("XAI_BOOK_CACHE", READER_CACHE)


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The data mirror, for tests that are about the mirror itself."""
    value = os.environ.get("XAI_BOOK_MIRROR")
    if not value:
        pytest.skip("XAI_BOOK_MIRROR is not set")
    return Path(value)


@pytest.fixture(scope="session")
def small_model(session_cache):
    """A FashionMNIST CNN trained for two epochs on 3,000 images."""
    old = os.environ.get("XAI_BOOK_CACHE")
    os.environ["XAI_BOOK_CACHE"] = str(session_cache)
    try:
        return helpers.train_or_load("fashion_mnist", epochs=2, n_train=3000,
                                     verbose=0)
    finally:
        if old is None:
            del os.environ["XAI_BOOK_CACHE"]
        else:
            os.environ["XAI_BOOK_CACHE"] = old


@pytest.fixture(scope="session")
def fashion():
    """FashionMNIST arrays and class names."""
    return helpers.load_dataset("fashion_mnist"), helpers.class_names("fashion_mnist")


@pytest.fixture(scope="session")
def classifier():
    """The ImageNet MobileNet (from the mirror offline)."""
    from helpers.models import imagenet_classifier

    return imagenet_classifier(prefer=("mobilenet",))


def pytest_sessionstart(session):
    session.config.started = time.time()


def pytest_terminal_summary(terminalreporter, config):
    """The book build's per-chapter execution times and peak memory, if the book was
    built now (tests/test_book.py writes them)."""
    build = Path(__file__).resolve().parents[1] / "_build"
    fresh = [path for path in (build / "chapter_times.txt", build / "peak_memory.txt")
             if path.exists() and path.stat().st_mtime >= getattr(config, "started", 0)]
    if fresh:
        terminalreporter.write_sep("-", "book build")
    for path in fresh:
        terminalreporter.write_line(path.read_text().rstrip())
