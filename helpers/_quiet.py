"""Filters for library messages that tell a reader of the book nothing.

Each filter names one message, by its text and by the library module (or
logger) that raises it, and says why a reader loses nothing without it.
Everything else, including every warning of the book's own code and any
new warning of these libraries, still reaches the page.

`install()` runs when `helpers` is imported; it is idempotent.
"""
from __future__ import annotations

import logging
import re
import warnings

# (message regex, category, module regex) for `warnings.filterwarnings`.
WARNINGS = [
    # shap.DeepExplainer on every TensorFlow >= 2.4: eager mode is the only
    # mode of TF 2, so the notice is true of every run and asks nothing.
    (r"Your TensorFlow version is newer than 2\.4\.0 and so graph support has been removed",
     UserWarning, r"shap\.explainers\._deep\.deep_tf"),
    # shap calls a one-input Keras model with a one-element list; Keras
    # unwraps it and warns. Only that exact case (a single expected tensor,
    # a list of one tensor received) is dropped: real mismatches still warn.
    (r"The structure of `inputs` doesn't match the expected structure\.\n"
     r"Expected: [^\[\]\n,]+\nReceived: inputs=\['Tensor\(shape=\([^)']*\)\)'\]\Z",
     UserWarning, r"keras\.src\.models\.functional"),
    # shap's colour maps, built at import with matplotlib calls it will
    # rename: shap's maintenance, not the reader's.
    (r"The set_(bad|over|under) function will be deprecated in a future version",
     PendingDeprecationWarning, r"shap\.plots\.colors\._colors"),
]

# Functions (by qualified name) whose tf.function retracing TensorFlow
# reports although it is by design, so a reader cannot act on it: shap
# builds a new `grad_graph` per explainer and output class; the book's
# helpers compile one graph per model (and layer), and the comparison's
# randomisation test makes a new model per layer.
RETRACED_BY_DESIGN = frozenset({
    "TFDeep.phi_symbolic.<locals>.grad_graph",  # shap.DeepExplainer
    "_TFGradient.gradient.<locals>.grad_graph",  # shap.GradientExplainer
    "score_gradients.<locals>.run", "forward.<locals>.<lambda>",  # helpers (old)
    "_compiled_gradients.<locals>.run", "_compiled_forward.<locals>.<lambda>",  # helpers
})
_RETRACING = re.compile(r"calls to <function (?P<name>\S+) at 0x[0-9a-fA-F]+> "
                        r"triggered tf\.function retracing")


class NoRetracingByDesign(logging.Filter):
    """Drops TensorFlow's retracing warning for `RETRACED_BY_DESIGN` only."""

    def filter(self, record: logging.LogRecord) -> bool:
        found = _RETRACING.search(record.getMessage())
        return not (found and found.group("name") in RETRACED_BY_DESIGN)


_FILTER = NoRetracingByDesign()


def install() -> None:
    """Add the filters (again after `warnings.resetwarnings()`, harmlessly twice)."""
    for message, category, module in WARNINGS:
        warnings.filterwarnings("ignore", message, category, module)
    logger = logging.getLogger("tensorflow")  # tf.get_logger(), absl or not
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)


install()
