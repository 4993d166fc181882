"""`python -m helpers.selfcheck`: every method through `explain()` on a small
untrained CNN and random images, with no data and no network: proof that an
install (even the base `pip install .`) imports and runs them all."""
from __future__ import annotations

import sys

import numpy as np

from . import METHODS, explain, set_seed
from .methods import OPTIONS
from .models import small_cnn

SMALL = {  # settings that make each method take a second or less
    "integrated_gradients": {"steps": 8},
    "gradient_shap": {"nsamples": 8},
    "lime": {"num_samples": 50},
    "anchors": {"threshold": 0.9},
    "rise": {"n_masks": 100},
    "smoothgrad": {"samples": 4},
}


def main() -> int:
    """Run every method once; print a line each; exit 1 if any fails."""
    set_seed(0)
    model = small_cnn()
    rng = np.random.default_rng(0)
    images = rng.random((2, 28, 28, 1), dtype=np.float32)
    background = rng.random((8, 28, 28, 1), dtype=np.float32)
    failed = []
    for method in METHODS:
        options = dict(SMALL.get(method, {}))
        if "background" in OPTIONS[method]:
            options["background"] = background
        try:
            result = explain(model, images, method, **options)
            ok = result.maps.shape == (2, 28, 28) and np.isfinite(result.maps).all()
            print(f"{method:>22}: {'ok' if ok else 'bad maps'} ({result.seconds:.2f} s)")
        except Exception as error:  # report every method, then fail
            ok = False
            print(f"{method:>22}: {type(error).__name__}: {error}")
        if not ok:
            failed.append(method)
    print("every method runs" if not failed else f"failed: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
