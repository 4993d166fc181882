"""Our methods against independent implementations (issue 12).

References, each written or maintained apart from `helpers`:

* PAIR's `saliency` library (`saliency.core`, numpy; we give it a
  `call_model_function` of our own that runs the model layer by layer and
  computes the logits from the last Dense layer's weights, so it shares no
  code with `helpers.engine`): vanilla gradients, Integrated Gradients,
  Grad-CAM, SmoothGrad.
* Grad-CAM++ from the paper's equations (Chattopadhay et al. 2018, Eq. 10 and
  the weights of Eq. 9): the second and third derivatives of Y = exp(S) taken
  by nested `tf.GradientTape`s, not the closed form our method uses. That
  reference is itself checked against `tf-keras-vis`'s `GradcamPlusPlus`.
* RISE as the paper's code makes its masks (skimage resize of a random grid,
  random crop) and sums them, written here in numpy: exact on the same random
  draws, statistical agreement on independent ones.

Xplique (GradCAMPP, Rise) cannot run here: every release pins TensorFlow
(2.0.2: tensorflow<=2.20, numpy>=2; 1.x: tensorflow 2.15, keras 2).

Every comparison also checks that a deliberately wrong variant (another
score, another quadrature rule, another target...) fails the same
tolerance, so the tolerance can fail.
"""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import helpers
from helpers.data import preprocess
from helpers.engine import Engine
from helpers.methods.base import Context


def pair():
    """PAIR's `saliency.core` (PyPI `saliency`), or skip the test."""
    return pytest.importorskip("saliency.core")


def correlation(a, b) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def rank_correlation(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(np.ravel(a), np.ravel(b))[0])


def scale(maps: np.ndarray) -> np.ndarray:
    """Each map divided by its largest magnitude (a zero map stays zero)."""
    top = np.abs(maps).max(axis=tuple(range(1, maps.ndim)), keepdims=True)
    return maps / np.where(top > 0, top, 1)


# --- models and images ------------------------------------------------------

@pytest.fixture(scope="module")
def rgb_net():
    """A functional colour CNN, random weights by seed, softmax Dense head."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="c1")(inputs)
    x = keras.layers.Conv2D(16, 3, activation="relu", name="c2")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(16, 3, activation="relu", name="c3")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="head")(x)
    model = keras.Model(inputs, outputs, name="rgb_net")
    images = np.random.default_rng(1).random((3, 32, 32, 3)).astype(np.float32)
    return model, images, np.array([0, 3, 7])


@pytest.fixture(scope="module")
def fashion_net(small_model, fashion):
    """The book's Sequential small_cnn, trained briefly, on FashionMNIST test
    images whose pixels span exactly [0, 1] (PAIR's noise scale is the image's
    own range)."""
    ((_, _), (x_test, _)), _ = fashion
    images = preprocess(x_test[:20])
    full = (images.min(axis=(1, 2, 3)) == 0) & (images.max(axis=(1, 2, 3)) == 1)
    images = images[full][:3]
    assert len(images) >= 2
    model = small_model.model
    return model, images, np.asarray(model(images)).argmax(1)


@pytest.fixture(params=["rgb_net", "fashion_net"])
def net(request):
    return request.getfixturevalue(request.param)


def convs(model: keras.Model) -> list[str]:
    return [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def last_conv(model: keras.Model) -> str:
    return convs(model)[-1]


# --- PAIR's call_model_function, independent of helpers.engine ---------------

def layer_by_layer(model: keras.Model, x, layer: str | None, score: str):
    """(target scores' input, the named layer's output or None, class scores):
    the model run one layer at a time, its logits from the head's weights."""
    head = model.layers[-1]
    h, maps = x, None
    for each in model.layers:
        if isinstance(each, keras.layers.InputLayer):
            continue
        if each is head:
            h = tf.matmul(h, head.kernel) + head.bias
            if score == "probability":
                h = tf.nn.softmax(h)
        else:
            h = each(h, training=False)
        if each.name == layer:
            maps = h
    return maps, h


def pair_model_function(model: keras.Model, layer: str | None = None, score: str = "logit"):
    """A `call_model_function` for `saliency.core`: gradients of the class
    `call_model_args["target"]` with respect to the input or to `layer`."""
    sc = pair()

    @tf.function(reduce_retracing=True)
    def gradients(x, target):
        with tf.GradientTape() as tape:
            tape.watch(x)
            maps, scores = layer_by_layer(model, x, layer, score)
            chosen = scores[:, target]
        return (maps if layer else x), tape.gradient(chosen, maps if layer else x)

    def call(x_batch, call_model_args=None, expected_keys=None):
        x = tf.convert_to_tensor(np.asarray(x_batch, np.float32))
        maps, grads = gradients(x, tf.constant(call_model_args["target"], tf.int32))
        if layer is None:
            return {sc.INPUT_OUTPUT_GRADIENTS: grads.numpy()}
        return {sc.CONVOLUTION_LAYER_VALUES: maps.numpy(),
                sc.CONVOLUTION_OUTPUT_GRADIENTS: grads.numpy()}

    return call


def abs_gradient():
    """PAIR's gradient mask as our "saliency" shows it: |gradient|, largest over
    channels (kept as one channel, so `GetSmoothedMask` can average it)."""

    class AbsGradient(pair().GradientSaliency):
        def GetMask(self, x_value, call_model_function, call_model_args=None):
            grads = super().GetMask(x_value, call_model_function, call_model_args)
            return np.abs(grads).max(-1, keepdims=True)

    return AbsGradient()


# --- vanilla gradients --------------------------------------------------------

def test_saliency_matches_pair_gradients(net):
    model, images, targets = net
    call = pair_model_function(model)
    ref = np.stack([abs_gradient().GetMask(image, call, {"target": t})[..., 0]
                    for image, t in zip(images, targets)])
    ours = helpers.explain(model, images, "saliency", targets).maps
    # Measured: max difference ~3e-8 of maps up to ~0.34 (float rounding).
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())
    # Can fail: the probability's gradient is another map (normalised maps
    # differ by up to ~0.5).
    wrong = helpers.explain(model, images, "saliency", targets, score="probability").maps
    assert not np.allclose(scale(wrong), scale(ref), atol=1e-3)


# --- Integrated Gradients ------------------------------------------------------

def test_integrated_gradients_matches_pair(net):
    """PAIR's IG averages the gradient at alphas linspace(0, 1, m + 1), both ends
    included, with weight 1 / (m + 1). Our "riemann_left" with m steps takes the
    same points but the last (alpha = 1), weight 1 / m. So, exactly,
    ours * m = PAIR(m + 1) * (m + 1) - (x - 0) * gradient(x), all of the right
    side PAIR's (its IG and its vanilla gradient)."""
    sc = pair()
    model, images, targets = net
    m = 16
    call = pair_model_function(model)
    ref = np.stack([
        ((m + 1) * sc.IntegratedGradients().GetMask(image, call, {"target": t},
                                                    x_steps=m + 1, batch_size=m + 1)
         - image * sc.GradientSaliency().GetMask(image, call, {"target": t})) / m
        for image, t in zip(images, targets)])
    result = helpers.explain(model, images, "integrated_gradients", targets, steps=m,
                             rule="riemann_left", baseline="black")
    ours = result.details["attributions"]  # per channel, like PAIR's
    # Measured: max difference ~1e-9 of attributions up to ~3e-3 (rgb_net),
    # ~3e-8 of ~0.27 (fashion_net).
    tolerance = 1e-4 * np.abs(ref).max()
    np.testing.assert_allclose(ours, ref, atol=tolerance)
    np.testing.assert_allclose(result.maps, ref.sum(-1), atol=3 * tolerance)
    # Can fail: "riemann_right" (the other end left out) misses the tolerance.
    right = helpers.explain(model, images, "integrated_gradients", targets, steps=m,
                            rule="riemann_right").details["attributions"]
    assert np.abs(right - ref).max() > 10 * tolerance


def test_integrated_gradients_default_converges_to_pair(rgb_net):
    """Our default (50-point Gauss-Legendre) against PAIR with 300 points."""
    sc = pair()
    model, images, targets = rgb_net
    call = pair_model_function(model)
    ref = np.stack([sc.IntegratedGradients().GetMask(image, call, {"target": t},
                                                     x_steps=300, batch_size=300)
                    for image, t in zip(images, targets)])
    ours = helpers.explain(model, images, "integrated_gradients", targets)
    # Measured: largest difference 0.3% of the largest attribution.
    assert np.abs(ours.details["attributions"] - ref).max() < 0.02 * np.abs(ref).max()
    # Can fail: the probability's attributions miss it.
    wrong = helpers.explain(model, images, "integrated_gradients", targets,
                            score="probability").details["attributions"]
    assert np.abs(scale(wrong) - scale(ref)).max() > 0.02


# --- Grad-CAM -------------------------------------------------------------------

def pair_gradcam(model, images, targets, layer, **options):
    sc = pair()
    call = pair_model_function(model, layer)
    return np.stack([sc.GradCam().GetMask(image, call, {"target": t}, three_dims=False,
                                          **options)
                     for image, t in zip(images, targets)])


def test_gradcam_matches_pair_at_the_layer(net):
    model, images, targets = net
    for layer in (convs(model)[-1], convs(model)[0]):
        # PAIR's map before its resize is not normalised: divide by its maximum.
        ref = pair_gradcam(model, images, targets, layer, should_resize=False)
        ref = ref / np.where(ref.max((1, 2), keepdims=True) > 0,
                             ref.max((1, 2), keepdims=True), 1)
        method = helpers.methods.get("gradcam")(layer=layer)
        method.check(model, images)
        ours = method.cams(Context(Engine(model), 0.0, 1.0), images, targets)
        # Measured: max difference ~4e-7.
        np.testing.assert_allclose(ours, ref, atol=1e-5)
        # Can fail: the probability's Grad-CAM differs.
        method = helpers.methods.get("gradcam")(layer=layer, score="probability")
        method.check(model, images)
        wrong = method.cams(Context(Engine(model), 0.0, 1.0), images, targets)
        assert np.abs(wrong - ref).max() > 1e-2


def test_gradcam_matches_pair_resized(net):
    """After the resize to the input: PAIR resizes with skimage (edges
    reflected), we with tf.image.resize (edges clamped); bilinear both, with
    pixel centres aligned the same way. So the maps agree except within one
    layer cell of the border."""
    model, images, targets = net
    layer = last_conv(model)
    ref = pair_gradcam(model, images, targets, layer)  # normalised, then resized
    ours = helpers.explain(model, images, "gradcam", targets).maps  # default layer
    h = model.get_layer(layer).output.shape[1]
    border = -(-images.shape[1] // h)
    inner = (slice(None), slice(border, -border), slice(border, -border))
    # Measured: interior max difference ~2e-7; at the border up to ~0.1.
    np.testing.assert_allclose(ours[inner], ref[inner], atol=1e-5)
    for a, b in zip(ours, ref):  # measured: 0.997-0.999 (all-zero maps skipped)
        assert a.std() == b.std() == 0 or correlation(a, b) > 0.99
    # Can fail: the probability's Grad-CAM differs inside too.
    wrong = helpers.explain(model, images, "gradcam", targets, score="probability").maps
    assert np.abs(wrong[inner] - ref[inner]).max() > 1e-2


# --- SmoothGrad -------------------------------------------------------------------

def test_smoothgrad_matches_pair_with_the_same_noise(fashion_net, monkeypatch):
    """PAIR draws its noise with np.random.normal(0, stdev, shape), one sample at
    a time; ours draws `samples` noise images from default_rng(seed), the same
    for every image. Replacing np.random.normal by a stream of our draws, for
    each image in turn (scaled by the stdev PAIR asks for), makes the noise
    identical, so the maps must be too: mean |gradient| (PAIR's magnitude=False
    with |.| in GetMask; its default magnitude=True averages squares)."""
    model, images, targets = fashion_net
    samples, seed = 8, 4
    call = pair_model_function(model)
    ours = helpers.explain(model, images, "smoothgrad", targets, samples=samples,
                           seed=seed, pixel_range=(0.0, 1.0)).maps
    noise = np.random.default_rng(seed).standard_normal((samples, *images.shape[1:]),
                                                          np.float32)

    def pair_on(stream):
        draws = iter(stream)
        monkeypatch.setattr(np.random, "normal",
                            lambda loc, scale, size: loc + np.float32(scale) * next(draws))
        maps = np.stack([abs_gradient().GetSmoothedMask(image, call, {"target": t},
                                                       stdev_spread=0.15, nsamples=samples,
                                                       magnitude=False)[..., 0]
                         for image, t in zip(images, targets)])
        monkeypatch.undo()
        return maps

    ref = pair_on(np.tile(noise, (len(images), 1, 1, 1)))
    # Measured: max difference ~6e-8 of maps up to ~0.25.
    np.testing.assert_allclose(ours, ref, atol=1e-4 * ref.max())
    # Can fail: one stream of draws over the batch (the order before the draws
    # were shared) gives every image but the first other noise: ~0.07-0.1 off.
    stream = pair_on(np.random.default_rng(seed).standard_normal(
        (len(images) * samples, *images.shape[1:]), np.float32))
    assert (np.abs(stream - ours).max(axis=(1, 2)) > 1e-2 * ref.max()).sum() == len(images) - 1
    # Can fail: twice the noise, on the same draws, misses the tolerance.
    wrong = helpers.explain(model, images, "smoothgrad", targets, samples=samples, seed=seed,
                            pixel_range=(0.0, 1.0), noise=0.3).maps
    assert np.abs(wrong - ref).max() > 1e-2 * ref.max()


def test_smoothgrad_agrees_with_pair_in_rank(fashion_net):
    """Independent noise (PAIR's own np.random draws): the maps' ranks agree."""
    model, images, targets = fashion_net
    images, targets, samples = images[:2], targets[:2], 100
    call = pair_model_function(model)
    state = np.random.get_state()
    np.random.seed(0)
    ref = np.stack([abs_gradient().GetSmoothedMask(image, call, {"target": t},
                                                  nsamples=samples, magnitude=False)[..., 0]
                    for image, t in zip(images, targets)])
    np.random.set_state(state)
    ours = helpers.explain(model, images, "smoothgrad", targets, samples=samples).maps
    # Measured with 100 samples: Spearman 0.975-0.987 (0.91-0.95 with 25).
    assert min(rank_correlation(a, b) for a, b in zip(ours, ref)) > 0.95
    # Can fail: SmoothGrad of the probability ranks 0.67-0.74 here (0.66-0.86
    # over six images; plain saliency 0.05-0.67).
    wrong = helpers.explain(model, images, "smoothgrad", targets, samples=samples,
                            base_options={"score": "probability"}).maps
    assert min(rank_correlation(a, b) for a, b in zip(wrong, ref)) < 0.95


# --- Grad-CAM++ -------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_net():
    """A ReLU CNN small enough for exact Hessians of its 8x8x4 conv maps; after
    the layer, max pooling and a ReLU Dense layer: S is piecewise linear in A."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="c1")(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="c2")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(16, activation="relu")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="head")(x)
    model = keras.Model(inputs, outputs, name="tiny_net")
    images = np.random.default_rng(4).random((3, 12, 12, 3)).astype(np.float32)
    return model, images, np.array([1, 5, 8])


def paper_gradcam_plus_plus(model, images, targets, layer, normalise_alphas=False):
    """Grad-CAM++ from the paper's Eq. 10 with Y = exp(S), S the logit:
    alpha = d2Y / (2 d2Y + sum_ab A_ab d3Y), w_k = sum_ij alpha ReLU(dY/dA),
    map = ReLU(sum_k w_k A_k) / max; d2Y and d3Y the diagonal second and third
    derivatives, by nested tapes (jacobians). `normalise_alphas`: divide each
    map's alphas by their sum, as the authors' released code and tf-keras-vis do."""
    names = [each.name for each in model.layers]
    below = keras.Model(model.inputs[0], model.get_layer(layer).output)
    above, head = model.layers[names.index(layer) + 1:-1], model.layers[-1]
    shape = tuple(below.output.shape[1:])
    n = int(np.prod(shape))

    @tf.function(input_signature=[tf.TensorSpec((1, *shape)), tf.TensorSpec((), tf.int32)])
    def derivatives(maps, target):
        with tf.GradientTape() as third:
            third.watch(maps)
            with tf.GradientTape() as second:
                second.watch(maps)
                with tf.GradientTape() as first:
                    first.watch(maps)
                    h = maps
                    for each in above:
                        h = each(h)
                    y = tf.exp((tf.matmul(h, head.kernel) + head.bias)[0, target])
                d1 = tf.reshape(first.gradient(y, maps), [n])
            d2 = tf.linalg.diag_part(tf.reshape(second.jacobian(d1, maps), (n, n)))
        d3 = tf.linalg.diag_part(tf.reshape(third.jacobian(d2, maps), (n, n)))
        return d1, d2, d3

    cams = []
    for image, target in zip(images, targets):
        maps = below(image[None])
        d1, d2, d3 = (np.reshape(d.numpy(), shape) for d in derivatives(maps, int(target)))
        a = maps.numpy()[0]
        denominator = 2 * d2 + a.sum((0, 1)) * d3
        alpha = np.divide(d2, denominator, out=np.zeros_like(d2), where=denominator != 0)
        if normalise_alphas:
            total = alpha.sum((0, 1))
            alpha = alpha / np.where(total != 0, total, 1)
        weights = (alpha * np.maximum(d1, 0)).sum((0, 1))
        cam = np.maximum((a * weights).sum(-1), 0)
        cams.append(cam / cam.max() if cam.max() > 0 else cam)
    return np.stack(cams)


def our_cams(method, model, images, targets, **options):
    chosen = helpers.methods.get(method)(**options)
    chosen.check(model, images)
    return chosen.cams(Context(Engine(model), 0.0, 1.0), images, targets)


def test_gradcam_plus_plus_matches_the_paper(tiny_net):
    model, images, targets = tiny_net
    ref = paper_gradcam_plus_plus(model, images, targets, "c2")
    ours = our_cams("gradcam_plus_plus", model, images, targets, layer="c2")
    # Measured: max difference ~1e-7.
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    assert (ref.max((1, 2)) == 1).all()  # no all-zero map makes this trivial
    # Can fail: the probability's maps (max difference ~0.3) and plain Grad-CAM
    # (~0.7) miss the tolerance.
    for method, options in (("gradcam_plus_plus", {"score": "probability"}),
                            ("gradcam", {})):
        wrong = our_cams(method, model, images, targets, layer="c2", **options)
        assert np.abs(wrong - ref).max() > 1e-2


def test_paper_reference_matches_tf_keras_vis(tiny_net):
    """The reference above checked against tf-keras-vis's GradcamPlusPlus. That
    one, like the authors' released code, divides each feature map's alphas by
    their sum (not in the paper's equations, nor in ours, Xplique's or
    pytorch-grad-cam's): with that one line the reference matches it."""
    pytest.importorskip("tf_keras_vis")
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    model, images, targets = tiny_net
    explainer = GradcamPlusPlus(model, model_modifier=ReplaceToLinear(), clone=True)
    theirs = np.asarray(explainer(CategoricalScore(list(targets)), images,
                                  penultimate_layer="c2", expand_cam=False,
                                  normalize_cam=False))
    # Its normalisation is (cam - min) / (max - min + 1e-7); ours, the paper's: / max.
    theirs = theirs / theirs.max((1, 2), keepdims=True)
    ref = paper_gradcam_plus_plus(model, images, targets, "c2", normalise_alphas=True)
    # Measured: max difference ~4e-7.
    np.testing.assert_allclose(theirs, ref, atol=1e-4)
    # Can fail: without the normalisation (the paper's, ours) the maps differ
    # (max difference ~0.18; correlation with ours still 0.97-0.997).
    paper = paper_gradcam_plus_plus(model, images, targets, "c2")
    assert np.abs(theirs - paper).max() > 1e-2


# --- RISE ---------------------------------------------------------------------------

def paper_masks(grids: np.ndarray, shifts: np.ndarray, size) -> np.ndarray:
    """RISE's masks as the authors' code makes them from its random numbers:
    each binary `cells` x `cells` grid resized bilinearly by skimage to
    (cells + 1) cell sizes, cropped at its shift (dy, dx)."""
    from skimage.transform import resize

    cells = grids.shape[1]
    cell = -(-np.asarray(size) // cells)
    return np.stack([
        resize(grid, (cells + 1) * cell, order=1, mode="reflect",
               anti_aliasing=False)[dy:dy + size[0], dx:dx + size[1]]
        for grid, (dy, dx) in zip(grids.astype(np.float32), shifts)]).astype(np.float32)


def paper_draws(n: int, size, cells: int, p_keep: float, rng):
    """The grids and shifts, drawn as the authors' code does (one shift per mask)."""
    cell = -(-np.asarray(size) // cells)
    grids = rng.random((n, cells, cells)) < p_keep
    return grids, np.stack([rng.integers(0, cell) for _ in range(n)])


def test_rise_masks_match_the_paper_on_the_same_draws():
    """Our masks from default_rng(seed), drawn in our order (grids, then all
    row shifts, then all column shifts), remade the paper's way: identical
    but within 2 pixels of the upsampled grid's edge, where skimage reflects
    and tf.image.resize clamps (both bilinear, same pixel centres)."""
    from helpers.methods.rise import rise_masks

    n, size, cells, p_keep, seed = 500, (28, 28), 7, 0.5, 9
    ours = rise_masks(n, size, cells, p_keep, seed)
    rng = np.random.default_rng(seed)
    grids = rng.random((n, cells, cells, 1))[..., 0] < p_keep
    shifts = np.stack([rng.integers(0, 4, n), rng.integers(0, 4, n)], 1)
    ref = paper_masks(grids, shifts, size)
    # Upsampled coordinates of each mask pixel: away from the edge of 32 (2..29)?
    rows = np.arange(size[0])[None, :] + shifts[:, :1]
    cols = np.arange(size[1])[None, :] + shifts[:, 1:]
    inner = (((rows >= 2) & (rows < 30))[:, :, None]
             & ((cols >= 2) & (cols < 30))[:, None, :])
    # Measured: inner max difference 0; at the edge up to ~0.6.
    np.testing.assert_allclose(ours[inner], ref[inner], atol=1e-5)
    assert inner.mean() > 0.8
    # Can fail: the masks of another seed differ.
    assert np.abs(rise_masks(n, size, cells, p_keep, seed + 1)[inner] - ref[inner]).max() > 0.5


def paper_rise(model, image, target, masks, p_keep) -> np.ndarray:
    """sum_i P(target | image * M_i) M_i / (N p_keep), black = 0."""
    predict = tf.function(lambda x: model(x, training=False))
    saliency = np.zeros(image.shape[:2])
    for start in range(0, len(masks), 1000):
        part = masks[start:start + 1000]
        probability = predict(image[None] * part[..., None]).numpy()[:, target]
        saliency += np.tensordot(probability, part, axes=1)
    return saliency / (len(masks) * p_keep)


def test_rise_matches_the_paper_on_our_masks(fashion_net):
    """The same masks (ours): the paper's sum, exactly."""
    from helpers.methods.rise import rise_masks

    model, images, targets = fashion_net
    masks = rise_masks(1000, images.shape[1:3], 7, 0.5, seed=5)
    ref = np.stack([paper_rise(model, image, t, masks, 0.5)
                    for image, t in zip(images, targets)])
    ours = helpers.explain(model, images, "rise", targets, n_masks=1000, seed=5,
                           pixel_range=(0.0, 1.0), batch_size=1000).maps
    # Measured: max difference ~6e-7 of maps ~0.7.
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    # Can fail: another black (-1, as for inputs in [-1, 1]) gives other maps.
    wrong = helpers.explain(model, images, "rise", targets, n_masks=1000, seed=5,
                            pixel_range=(-1.0, 1.0), batch_size=1000).maps
    assert np.abs(wrong - ref).max() > 1e-2


def test_rise_agrees_with_the_paper_statistically(fashion_net):
    """Independent masks (the paper's recipe and draws, another generator):
    the maps correlate. RISE's own noise bounds this: two independent runs of
    either correlate ~0.82 at 4000 masks, ~0.94 at 16000; ours against the
    reference at 12000, over 4 pairs of seeds and 3 images: 0.85-0.96."""
    model, images, targets = fashion_net
    images, targets, n = images[:2], targets[:2], 12000
    size = images.shape[1:3]
    masks = paper_masks(*paper_draws(n, size, 7, 0.5, np.random.default_rng(12)), size)
    ref = np.stack([paper_rise(model, image, t, masks, 0.5)
                    for image, t in zip(images, targets)])
    ours = helpers.explain(model, images, "rise", targets, n_masks=n, seed=0,
                           pixel_range=(0.0, 1.0), batch_size=1000).maps
    assert min(correlation(a, b) for a, b in zip(ours, ref)) > 0.8
    # Same scale, not only the same shape: the mean saliency is E[P(x * M)]
    # (measured: within 0.7%).
    np.testing.assert_allclose(ours.mean((1, 2)), ref.mean((1, 2)), rtol=0.02)
    # Can fail: the map of another class anti-correlates (~ -0.7).
    wrong = helpers.explain(model, images, "rise", (targets + 1) % 10, n_masks=n // 4,
                            pixel_range=(0.0, 1.0), batch_size=1000).maps
    assert max(correlation(a, b) for a, b in zip(wrong, ref)) < 0.8
