"""What a model call costs on this machine, for the chapters' estimates and budgets."""
from __future__ import annotations

import hashlib
import json
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from .data import atomic_path, cache_dir

class CallCost(NamedTuple):
    """Seconds per image on this machine: a forward pass, a forward + backward."""

    forward: float
    gradient: float


ARCHITECTURES_224 = {
    "vgg19": lambda: keras.applications.VGG19(weights=None),
    "mobilenet": lambda: keras.applications.MobileNet(alpha=0.75, weights=None),
}


def call_cost(name: str, batch: int = 8) -> CallCost:
    """Per-image cost of ImageNet model `name` ("vgg19" or "mobilenet") on this
    machine, compiled, at `batch` images a call. Random weights do the same
    arithmetic as ImageNet's, so VGG19's cost is known without its weights.
    Measured once per machine and cached."""
    from . import machine
    from .bench import _best
    from .engine import forward, score_gradients

    if name not in ARCHITECTURES_224:
        raise ValueError(f"name must be one of {list(ARCHITECTURES_224)}, got {name!r}")
    key = hashlib.sha256(f"{machine()} {batch}".encode()).hexdigest()[:12]
    path = cache_dir("costs") / f"{name}-{key}.json"
    if path.exists():
        return CallCost(**json.loads(path.read_text()))
    model = ARCHITECTURES_224[name]()
    x = tf.constant(np.random.default_rng(0).random((batch, 224, 224, 3), np.float32))
    targets = tf.zeros(batch, tf.int64)
    run, grad = forward(model), score_gradients(model)
    # bench's timer: a first call (which compiles), then the best of two.
    cost = CallCost(_best(lambda: run(x), repeats=2) / batch,
                    _best(lambda: grad(x, targets), repeats=2) / batch)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(cost._asdict()))
    return cost


def samples_within(wanted: int, seconds: float, per_sample: float,
                   step: int = 100) -> int:
    """`wanted` samples, or fewer (a multiple of `step`, at least `step`) when
    they would take longer than `seconds` at `per_sample` seconds each."""
    if wanted < 1 or seconds <= 0 or per_sample <= 0:
        raise ValueError("wanted, seconds and per_sample must be positive")
    affordable = int(seconds / per_sample) // step * step
    return max(step, min(wanted, affordable))
