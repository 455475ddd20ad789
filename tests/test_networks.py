"""The paper's layers against hand computations and the distributions they are meant to draw
from: the two weight initialisations (Kolmogorov-Smirnov against scipy.stats), the normalised
gradients of the paper code's optimizer and two Adam steps on them worked out by hand, and the
two-input block's broadcast of x over samples of z2 (equal to repeating x)."""
from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from vae_lib.networks import Linear, TwoInputMLP
from vae_lib.optimizers import AdamNormGrad, normalize_gradients


def test_glorot_weights_are_uniform_with_the_glorot_limit_and_zero_biases():
    keras.utils.set_random_seed(0)
    layer = Linear(300, init="glorot")
    layer.build((None, 784))
    limit = math.sqrt(6 / (784 + 300))
    w = layer.kernel.numpy().ravel()
    assert np.abs(w).max() <= limit
    assert stats.kstest(w, stats.uniform(-limit, 2 * limit).cdf).pvalue > 1e-3
    assert not layer.bias.numpy().any()


def test_a_gated_layers_blocks_are_drawn_as_the_separate_layers_they_stand_for():
    """Two blocks of 300 from 784 inputs: each block's Glorot limit uses its own fan-out (300), not
    the kernel's 600 columns."""
    keras.utils.set_random_seed(1)
    layer = Linear(600, init="glorot", blocks=2)
    layer.build((None, 784))
    w = layer.kernel.numpy().ravel()
    limit = math.sqrt(6 / (784 + 300))
    assert stats.kstest(w, stats.uniform(-limit, 2 * limit).cdf).pvalue > 1e-3


def test_he_weights_are_normal_with_variance_two_over_fan_in_and_biases_as_pytorchs():
    """The paper code's he_init: W ~ N(0, 2 / fan_in); biases ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    keras.utils.set_random_seed(2)
    layer = Linear(3000, init="he")
    layer.build((None, 300))
    w, b = layer.kernel.numpy().ravel(), layer.bias.numpy()
    assert stats.kstest(w, stats.norm(0, math.sqrt(2 / 300)).cdf).pvalue > 1e-3
    bound = 1 / math.sqrt(300)
    assert np.abs(b).max() <= bound
    assert stats.kstest(b, stats.uniform(-bound, 2 * bound).cdf).pvalue > 1e-3


def test_normalised_gradients_and_two_adamnormgrad_steps_by_hand():
    """g = (3, 4): normalised (0.6, 0.8) (norm 5, + 1e-7). Two steps, the second's raw gradient
    100 times the first's: normalised, both are (0.6, 0.8), so Adam sees a constant gradient and
    (after bias correction, m_hat = g_hat and v_hat = g_hat^2) moves each weight by lr per step.
    Plain Adam on the raw gradients does not (its second step differs), so the normalisation is
    what the result shows."""
    g = tf.constant([3.0, 4.0])
    normed, = normalize_gradients([g])
    np.testing.assert_allclose(normed.numpy(), [3 / (5 + 1e-7), 4 / (5 + 1e-7)], rtol=1e-6)
    start = np.array([1.0, -2.0])
    moved = {}
    for name, kind in (("normgrad", AdamNormGrad), ("adam", keras.optimizers.Adam)):
        w = tf.Variable(start.astype(np.float32))
        opt = kind(learning_rate=0.01, epsilon=1e-8)
        for scale in (1.0, 100.0):
            opt.apply_gradients([(g * scale, w)])
        moved[name] = w.numpy() - start
    np.testing.assert_allclose(moved["normgrad"], [-0.02, -0.02], rtol=1e-4)
    assert not np.allclose(moved["adam"], [-0.02, -0.02], rtol=1e-2)


def test_the_two_input_block_broadcasts_x_over_samples_as_if_x_were_repeated():
    """x (B, D) against z2 samples (S, B, Z): the block runs x's layer once per image and broadcasts
    it; the result equals the block applied to x repeated S times."""
    keras.utils.set_random_seed(3)
    block = TwoInputMLP(hidden_units=16)
    x = tf.random.normal((4, 10))
    z2 = tf.random.normal((3, 4, 5))
    broadcast = block([x, z2])
    repeated = block([tf.repeat(x[None], 3, axis=0), z2])
    assert broadcast.shape == (3, 4, 16)
    np.testing.assert_allclose(broadcast.numpy(), repeated.numpy(), rtol=1e-5, atol=1e-6)
    for s in range(3):  # and each sample's slice is the block on that sample's (x, z2)
        np.testing.assert_allclose(block([x, z2[s]]).numpy(), broadcast[s].numpy(), rtol=1e-5, atol=1e-6)
