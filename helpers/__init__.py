"""Shared code of the book *Explaining Image Classifiers*.

Importing this package silences TensorFlow's start-up logs (noise, not
information) and exposes the helpers every chapter uses.
"""
from __future__ import annotations

import os
import random
from contextlib import contextmanager

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# alibi imports transformers; shap then probes it for TF models, which fails
# under Keras 3 unless transformers leaves its TensorFlow side alone.
os.environ.setdefault("USE_TF", "0")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # "no TensorFlow" notice


@contextmanager
def _quiet_stderr():
    """Send file descriptor 2 to /dev/null (TensorFlow's C++ start-up lines)."""
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


with _quiet_stderr():
    import tensorflow as tf  # noqa: F401  (imported once, quietly)
import keras  # noqa: E402
import numpy as np  # noqa: E402


from . import _quiet  # noqa: E402,F401  (filters for library noise)


def set_seed(seed: int = 0) -> None:
    """Fix Python's, NumPy's and Keras/TensorFlow's random seeds."""
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)


class Timer:
    """`with Timer() as t: ...`, then `t.seconds`."""

    def __enter__(self) -> "Timer":
        import time

        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        import time

        self.seconds = time.perf_counter() - self._start


def machine() -> str:
    """The hardware and software a timing was measured on, in one line."""
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{os.cpu_count()} CPU cores ({cpu}), no GPU, "
            f"TensorFlow {tf.__version__}, Keras {keras.__version__}")


from .data import class_names, load_dataset  # noqa: E402
from .models import train_or_load  # noqa: E402
from .methods import METHODS, Attribution, explain, label  # noqa: E402
from .explain_dataset import explain_dataset  # noqa: E402

__all__ = ["set_seed", "Timer", "machine", "explain", "label", "METHODS", "Attribution",
           "load_dataset", "class_names", "train_or_load", "explain_dataset"]
