"""The paper's convolutional models, ConvHVAE and PixelHVAE: causal masks, autoregressive sampling
from the very conditionals the teacher-forced likelihood scores, importance sampling against the
ELBO, batch normalisation at evaluation, image shapes, save and load."""
from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

import vae_lib
from vae_lib.convnets import PixelCNNDecoder, causal_mask


def test_causal_masks_see_the_rows_above_and_the_pixels_to_the_left():
    a, b = causal_mask(3, 1, 1, "A")[..., 0, 0], causal_mask(3, 1, 1, "B")[..., 0, 0]
    np.testing.assert_array_equal(a, [[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(b, [[1, 1, 1], [1, 1, 0], [0, 0, 0]])
    with pytest.raises(ValueError, match="mask_type"):
        causal_mask(3, 1, 1, "C")


def _pixelcnn(shape=(5, 4, 1), params=1):
    keras.utils.set_random_seed(1)
    net = PixelCNNDecoder(shape, params, filters=8, num_layers=4)
    z = tf.random.stateless_normal([2, 3], seed=[0, 1])
    return net, z


def test_the_pixelcnn_is_causal_in_raster_order():
    """The parameters at pixel q do not change when x changes at q or at any later pixel (in raster
    order), and do change when an earlier pixel changes: the check can fail."""
    shape = (5, 4, 1)
    net, z = _pixelcnn(shape)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((2, *shape)) < 0.5, tf.float32)
    base = net([x, z, z]).numpy().reshape(2, -1)
    pixels = int(np.prod(shape))
    seen_earlier = 0
    for q in range(pixels):
        later = np.zeros(pixels, bool)
        later[q:] = True
        changed = np.where(later.reshape(1, *shape), 1.0 - x.numpy(), x.numpy())
        out = net([tf.constant(changed), z, z]).numpy().reshape(2, -1)
        np.testing.assert_allclose(out[:, q], base[:, q], atol=1e-6, err_msg=f"pixel {q} sees a later one")
        if q:
            earlier = x.numpy().reshape(2, -1).copy()
            earlier[:, q - 1] = 1.0 - earlier[:, q - 1]
            moved = net([tf.constant(earlier.reshape(2, *shape)), z, z]).numpy().reshape(2, -1)
            seen_earlier += np.any(np.abs(moved[:, q] - base[:, q]) > 1e-6)
    assert seen_earlier > pixels // 2, "the parameters depend on the pixels before them"


def _tiny_pixel_hvae(prior=None, shape=(2, 3, 1)):
    keras.utils.set_random_seed(0)
    model = vae_lib.PixelHVAE(prior or vae_lib.StandardNormal(), "bernoulli", data_shape=shape, latent_dim=2, seed=0)
    model.build((None, *shape))
    return model


def test_autoregressive_sampling_draws_from_the_conditionals_the_likelihood_scores():
    """A 2 x 3 binary image, fixed latents: the teacher-forced p(x|z1, z2) of the 64 possible images
    sums to 1, and 20000 images drawn pixel by pixel fall on them with those probabilities
    (chi-square)."""
    model = _tiny_pixel_hvae()
    images = np.array(list(itertools.product([0.0, 1.0], repeat=6)), np.float32).reshape(-1, 2, 3, 1)
    z1, z2 = tf.fill([64, 2], 0.3), tf.fill([64, 2], -0.7)
    log_p = model.likelihood.log_prob(tf.constant(images), model.p_x_params(z1, z2, tf.constant(images))).numpy()
    assert np.exp(log_p).sum() == pytest.approx(1.0, abs=1e-5)
    n = 20_000
    drawn, _ = model.draw_pixels(tf.fill([n, 2], 0.3), tf.fill([n, 2], -0.7), tf.constant([4, 2], tf.int64))
    codes = (drawn.numpy().reshape(n, 6) * (2 ** np.arange(5, -1, -1))).sum(1).astype(int)
    counts = np.bincount(codes, minlength=64)
    expected = n * np.exp(log_p)
    keep = expected > 5
    chi2 = ((counts[keep] - expected[keep]) ** 2 / expected[keep]).sum() + (
        (counts[~keep].sum() - expected[~keep].sum()) ** 2 / max(expected[~keep].sum(), 1e-9))
    assert stats.chi2.sf(chi2, keep.sum()) > 1e-3, (chi2, keep.sum())


def test_discretized_logistic_draws_fall_in_the_bins_with_their_probabilities():
    lik = vae_lib.DiscretizedLogistic(256)
    mean, log_scale = tf.fill([50_000], 0.3), tf.fill([50_000], -3.0)
    x = lik.draw((mean, log_scale), tf.constant([0, 5], tf.int64)).numpy()
    assert np.allclose(x * 255, np.round(x * 255)) and x.min() >= 0 and x.max() <= 1
    levels = np.arange(256) / 255
    probs = np.exp(lik.log_prob(tf.constant(levels[:, None], tf.float32),
                                (tf.fill([256, 1], 0.3), tf.fill([256, 1], -3.0))).numpy())
    counts = np.bincount(np.round(x * 255).astype(int), minlength=256)
    top = np.argsort(probs)[-10:]  # the likeliest bins
    assert np.all(np.abs(counts[top] / len(x) - probs[top]) < 4 * np.sqrt(probs[top] / len(x)) + 1e-4)


@pytest.mark.parametrize("kind", ["ConvHVAE", "PixelHVAE"])
@pytest.mark.parametrize("shape", [(28, 28, 1), (28, 20, 1)])
def test_shapes_flat_or_image_inputs(kind, shape):
    """28 x 28 (MNIST) and Frey's 28 x 20, images given flat (as the reproduction's datasets) or
    shaped: log-weights are (S, B), samples and the VampPrior's pseudo-inputs come in the inputs'
    shape, and the likelihood's parameters in the images' shape."""
    cls = getattr(vae_lib, kind)
    likelihood = "bernoulli" if shape[1] == 28 else "discretized_logistic"
    for flat in (True, False):
        keras.utils.set_random_seed(0)
        model = cls(vae_lib.VampPrior(3), likelihood, data_shape=shape, latent_dim=4, seed=0)
        inputs = (int(np.prod(shape)),) if flat else shape
        model.build((None, *inputs))
        x = tf.constant(np.random.default_rng(0).integers(0, 2, (2, *inputs)), tf.float32)
        assert model.log_weights(x, tf.constant([0, 1], tf.int64), 3).shape == (3, 2)
        assert model.prior.pseudo_inputs().shape == (3, *inputs)
        if kind == "ConvHVAE":
            assert model.sample(2).shape == (2, *inputs)


@pytest.mark.parametrize("kind", ["ConvHVAE", "PixelHVAE"])
def test_importance_sampling_is_above_the_elbo_and_the_iwae_bound_rises_with_k(kind):
    """A few fit steps on 8 x 8 binary images: per image, the mean of the S=100 estimate over draws
    lies above the mean ELBO, and L_1 < L_10 < L_100 on the images' average (standard errors from
    independent draws)."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = (rng.random((64, 8, 8, 1)) < np.linspace(0.1, 0.9, 64).reshape(1, 8, 8, 1)).astype(np.float32)
    model = getattr(vae_lib, kind)(vae_lib.VampPrior(4), "bernoulli", data_shape=(8, 8, 1), latent_dim=4, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(x, batch_size=32, epochs=3, verbose=0)
    images = x[:4]
    bounds = {}
    for k, reps in [(1, 200), (10, 40), (100, 8)]:  # (XLA would compile each k anew for these few draws)
        draws = vae_lib.iwae_bound(model, np.repeat(images, reps, 0), k, seed=k,
                                   jit_compile=False).reshape(4, reps).mean(0)
        bounds[k] = draws.mean(), draws.std(ddof=1) / np.sqrt(reps)
    (l1, s1), (l10, s10), (l100, s100) = bounds[1], bounds[10], bounds[100]
    assert l1 + 3 * np.hypot(s1, s10) < l10 < l100 + 3 * np.hypot(s10, s100)
    assert l1 + 3 * np.hypot(s1, s100) < l100
    elbo = vae_lib.elbo(model, np.repeat(images, 200, 0)).reshape(4, 200).mean(1)
    assert np.all(vae_lib.log_likelihood(model, images, num_samples=100, jit_compile=False) > elbo)


def test_batch_normalisation_uses_moving_averages_out_of_training():
    """After training steps have moved the PixelCNN's moving statistics, an image's log-weights
    are the same scored alone or beside other images (no batch statistics at evaluation), and
    fit updated the moving averages."""
    keras.utils.set_random_seed(0)
    x = (np.random.default_rng(1).random((32, 8, 8, 1)) < 0.4).astype(np.float32)
    model = vae_lib.PixelHVAE(vae_lib.StandardNormal(), data_shape=(8, 8, 1), latent_dim=3, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(x, batch_size=16, epochs=1, verbose=0)
    norm = model.p_x.norms[0]
    assert not np.allclose(norm.moving_mean.numpy(), 0.0), "training updates the moving statistics"
    seed = tf.constant([3, 3], tf.int64)
    alone = model.log_weights(tf.constant(x[:1]), seed, 5).numpy()[:, 0]
    crowd = model.log_weights(tf.constant(x[:8]), seed, 5).numpy()
    z_alone = model.p_x_params(tf.zeros([1, 3]), tf.zeros([1, 3]), tf.constant(x[:1]))
    z_crowd = model.p_x_params(tf.zeros([8, 3]), tf.zeros([8, 3]), tf.constant(x[:8]))
    np.testing.assert_allclose(z_alone.numpy()[0], z_crowd.numpy()[0], rtol=1e-5, atol=1e-5)
    assert alone.shape == (5,) and crowd.shape == (5, 8)


@pytest.mark.parametrize("kind", ["ConvHVAE", "PixelHVAE"])
def test_save_and_load(kind, tmp_path):
    keras.utils.set_random_seed(0)
    model = getattr(vae_lib, kind)(vae_lib.VampPrior(3), data_shape=(8, 8, 1), latent_dim=3, seed=2)
    x = (np.random.default_rng(1).random((6, 8, 8, 1)) < 0.4).astype(np.float32)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(x, batch_size=6, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    same = vae_lib.load_model(tmp_path / "m.keras")
    assert type(same) is type(model) and same.image_shape == (8, 8, 1)
    seed = tf.constant([1, 2], tf.int64)
    np.testing.assert_array_equal(same.log_weights(x, seed, 4).numpy(), model.log_weights(x, seed, 4).numpy())
