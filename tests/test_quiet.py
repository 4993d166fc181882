"""helpers._quiet: each known piece of library noise, raised the way its
library raises it, stays off the page; any other warning still reaches it."""
from __future__ import annotations

import importlib
import logging
import warnings

import numpy as np
import pytest

import helpers  # noqa: F401  (installs the filters, as a chapter's import does)
from helpers import _quiet


@pytest.fixture
def caught():
    """Warnings as a reader's kernel shows them: every one, each time (not
    once per place), with only the book's filters in front."""
    with warnings.catch_warnings(record=True) as log:
        warnings.resetwarnings()
        warnings.simplefilter("always")
        _quiet.install()
        yield log


def _texts(log) -> list[str]:
    return [str(w.message) for w in log]


@pytest.fixture(scope="module")
def tiny_model():
    import keras

    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(3)(inputs))


def test_shaps_tensorflow_version_notice_is_dropped(caught, tiny_model):
    import shap

    shap.DeepExplainer(tiny_model, np.zeros((2, 4), np.float32))
    assert not [t for t in _texts(caught) if "Your TensorFlow version" in t]


def test_keras_one_element_list_notice_is_dropped(caught, tiny_model):
    tiny_model([np.zeros((1, 4), np.float32)])  # what shap does: a list of one
    assert not [t for t in _texts(caught) if "The structure of `inputs`" in t]


def test_a_real_input_structure_mismatch_still_warns(caught):
    """Two tensors where one is expected: the same Keras warning, kept."""
    message = ("The structure of `inputs` doesn't match the expected structure.\n"
               "Expected: keras_tensor\nReceived: inputs=['Tensor(shape=(1, 4))', "
               "'Tensor(shape=(1, 4))']")
    warnings.warn_explicit(message, UserWarning, "functional.py", 253,
                           module="keras.src.models.functional")
    assert _texts(caught) == [message]


def test_shap_colour_map_deprecations_are_dropped(caught):
    import shap.plots.colors._colors as colors

    importlib.reload(colors)  # runs the module-level calls that warn
    assert not [t for t in _texts(caught) if "function will be deprecated" in t]


def test_an_unrelated_user_warning_still_reaches_the_reader(caught):
    warnings.warn("the anchor did not reach the precision asked for", UserWarning)
    # The filtered texts, but raised by the book's own code, are kept too.
    warnings.warn("Your TensorFlow version is newer than 2.4.0 and so graph support "
                  "has been removed", UserWarning)
    assert len(caught) == 2


class _Recorder(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def tf_log():
    logger = logging.getLogger("tensorflow")
    recorder = _Recorder()
    logger.addHandler(recorder)
    yield recorder.messages
    logger.removeHandler(recorder)


class TFDeep:
    """shap's pattern: a new `@tf.function grad_graph` per explainer and class."""

    def phi_symbolic(self):
        import tensorflow as tf

        @tf.function
        def grad_graph(x):
            return x * 2.0

        return grad_graph


def _retrace(make, times: int = 8) -> None:
    import tensorflow as tf

    for _ in range(times):
        make()(tf.constant([1.0]))


def test_retracing_by_design_is_dropped(tf_log):
    _retrace(TFDeep().phi_symbolic)
    assert not [m for m in tf_log if "retracing" in m]


def test_other_retracing_still_warns(tf_log):
    def build():
        import tensorflow as tf

        @tf.function
        def my_step(x):
            return x + 1.0

        return my_step

    _retrace(build)
    assert [m for m in tf_log if "build.<locals>.my_step" in m and "retracing" in m]


def test_install_is_idempotent():
    _quiet.install()  # pytest drops import-time filters after collection
    before = len(warnings.filters), len(logging.getLogger("tensorflow").filters)
    _quiet.install()
    _quiet.install()
    assert (len(warnings.filters), len(logging.getLogger("tensorflow").filters)) == before


def test_filters_are_narrow():
    """No blanket ignore: every filter names a message and a module."""
    for message, category, module in _quiet.WARNINGS:
        assert len(message) > 20 and module and category is not Warning
