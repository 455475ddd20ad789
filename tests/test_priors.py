"""Priors: mixture densities against scipy.stats, pseudo-inputs, sampling, the joint encoder pass,
errors."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats
from scipy.special import logsumexp

from helpers import paper_model
from vae_lib.errors import ConfigError
from vae_lib.priors import MixtureOfGaussians, StandardNormal, VampPrior

INPUT_DIM, LATENT = 784, 40


def _scipy_mixture_logpdf(z, means, logvars):
    """log (1/K) sum_k multivariate_normal(m_k, diag(exp(lv_k))).logpdf(z), float64."""
    comps = np.stack([stats.multivariate_normal(m, np.diag(np.exp(lv))).logpdf(z)
                      for m, lv in zip(means, logvars)], axis=-1)
    return logsumexp(comps, axis=-1) - np.log(len(means))


def _in(var, variables):
    return any(var is v for v in variables)


@pytest.fixture(scope="module")
def mnist_train(datasets):
    return datasets["static_mnist"].train[:3000]


def _vamp_model(K=12, seed=0, **kwargs):
    return paper_model("vae", "vampprior", INPUT_DIM, num_components=K, seed=seed, **kwargs)


def test_vampprior_log_prob_is_mixture_of_encoder_posteriors():
    """VampPrior p(z) = (1/K) sum_k q(z|u_k): reference built with scipy from the encoder's outputs
    on the pseudo-inputs, clipped to [0, 1] in numpy (raw values set partly outside [0, 1])."""
    model = _vamp_model(K=12)
    prior = model.prior
    rng = np.random.default_rng(0)
    raw = rng.uniform(-0.5, 1.5, size=(12, INPUT_DIM)).astype(np.float32)
    prior.pseudo_inputs_raw.assign(raw)
    means, logvars = (t.numpy().astype(np.float64) for t in model.encoder(np.clip(raw, 0, 1)))
    assert np.ptp(means) > 0.05  # the components differ, so a wrong mixing would show
    z = np.concatenate([means[:3] + 0.1 * rng.normal(size=(3, LATENT)), rng.normal(size=(5, LATENT))])
    got = prior.log_prob(tf.constant(z, tf.float32), model.prior_params()).numpy()
    np.testing.assert_allclose(got, _scipy_mixture_logpdf(z, means, logvars), rtol=1e-5, atol=1e-3)


def test_vampprior_density_needs_the_models_parameters():
    """The VampPrior holds no encoder: asked for its density without the model's parameters it says
    where they come from, instead of scoring something else."""
    model = _vamp_model(K=3)
    with pytest.raises(ConfigError, match="model.prior_params"):
        model.prior.log_prob(tf.zeros([2, LATENT]))


def test_mog_log_prob_matches_scipy_mixture():
    model = paper_model("vae", "mog", INPUT_DIM, num_components=9, seed=1)
    prior = model.prior
    assert isinstance(prior, MixtureOfGaussians)
    rng = np.random.default_rng(1)
    prior.logvars.assign(rng.uniform(-3, 1, size=(9, LATENT)).astype(np.float32))
    means = np.asarray(prior.means.numpy(), np.float64)
    logvars = np.asarray(prior.logvars.numpy(), np.float64)
    z = np.concatenate([means[:4] + 0.2 * rng.normal(size=(4, LATENT)), rng.normal(size=(4, LATENT))])
    got = prior.log_prob(tf.constant(z, tf.float32)).numpy()
    np.testing.assert_allclose(got, _scipy_mixture_logpdf(z, means, logvars), rtol=1e-5, atol=1e-3)
    assert _in(prior.means, model.trainable_variables) and _in(prior.logvars, model.trainable_variables)


def test_standard_prior_matches_scipy():
    prior = StandardNormal()
    z = np.random.default_rng(2).normal(size=(5, 6))
    expected = stats.multivariate_normal(np.zeros(6), np.eye(6)).logpdf(z)
    np.testing.assert_allclose(prior.log_prob(tf.constant(z)).numpy(), expected, rtol=1e-12)
    assert prior.has_closed_form_kl


def test_pseudo_inputs_are_the_clipped_live_parameter_after_training_steps():
    """The pseudo-inputs are hardtanh(raw) of the parameter as it is now: after a large gradient
    step that pushes raw values outside [0, 1], pseudo_inputs() equals np.clip of the updated
    parameter (the gradient reaches the parameter through the clip where it is inside [0, 1])."""
    model = _vamp_model(K=6)
    prior = model.prior
    raw = np.random.default_rng(3).uniform(0.2, 0.8, size=(6, INPUT_DIM)).astype(np.float32)
    prior.pseudo_inputs_raw.assign(raw)
    np.testing.assert_array_equal(prior.pseudo_inputs().numpy(), raw)
    opt = keras.optimizers.SGD(1e4)
    z = tf.random.stateless_normal([16, LATENT], seed=[1, 2])
    with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(prior.log_prob(z, model.prior_params()))
    grad = tape.gradient(loss, prior.pseudo_inputs_raw)
    assert np.any(grad.numpy() != 0)
    opt.apply_gradients([(grad, prior.pseudo_inputs_raw)])
    moved = prior.pseudo_inputs_raw.numpy()
    assert (moved < 0).any() and (moved > 1).any(), "the step must leave [0, 1] for the test to mean something"
    np.testing.assert_array_equal(prior.pseudo_inputs().numpy(), np.clip(moved, 0, 1))


def test_vampprior_data_uses_fixed_training_images(mnist_train):
    """vampprior_data: each pseudo-input is one of the training images (distinct ones), and they are
    not trainable unless asked; asked, they start at the same images plus N(0, 0.01^2) noise (as
    the paper's code initialises them), clipped to [0, 1], and are trainable."""
    model = paper_model("vae", "vampprior_data", INPUT_DIM, num_components=25,
                        train_images=mnist_train, seed=4)
    prior = model.prior
    u = prior.pseudo_inputs().numpy()
    assert u.shape == (25, INPUT_DIM)
    index = {row.tobytes(): i for i, row in enumerate(mnist_train)}
    hits = [index.get(row.tobytes()) for row in u]
    assert None not in hits, "a pseudo-input is not a training image"
    assert len(set(hits)) == 25
    assert not _in(prior.pseudo_inputs_raw, model.trainable_variables)
    assert _in(prior.pseudo_inputs_raw, model.weights)  # still saved with the model

    trainable = paper_model("vae", "vampprior_data", INPUT_DIM, num_components=25,
                            train_images=mnist_train, seed=4, trainable_pseudo_inputs=True)
    assert _in(trainable.prior.pseudo_inputs_raw, trainable.trainable_variables)
    noise = trainable.prior.pseudo_inputs_raw.numpy() - u  # the same images for the same seed
    assert noise.std() == pytest.approx(0.01, rel=0.05) and abs(noise.mean()) < 1e-3


def test_vampprior_pseudo_inputs_trainable_by_default():
    model = _vamp_model(K=5)
    assert _in(model.prior.pseudo_inputs_raw, model.trainable_variables)
    frozen_inputs = _vamp_model(K=5, trainable_pseudo_inputs=False)
    assert not _in(frozen_inputs.prior.pseudo_inputs_raw, frozen_inputs.trainable_variables)


def test_vampprior_initial_pseudo_inputs_follow_their_initializer():
    """Promise: runs start from the paper's pseudo-input initialisation (mean and std per dataset,
    e.g. N(0.5, 0.02) for Caltech 101 and Frey Faces, given as the initializer): random initial
    pseudo-inputs have the requested mean and std (before clipping), and the default is the paper's
    for MNIST, N(0.05, 0.01)."""
    for initializer, (mean, std) in [(keras.initializers.RandomNormal(0.5, 0.02), (0.5, 0.02)),
                                     (None, (0.05, 0.01))]:
        prior = VampPrior(50, initializer)
        prior.build_inputs((INPUT_DIM,))
        raw = prior.pseudo_inputs_raw.numpy()
        assert raw.shape == (50, INPUT_DIM)
        assert raw.mean() == pytest.approx(mean, abs=1e-3)
        assert raw.std() == pytest.approx(std, rel=0.02)


def _mixture_moments(means, logvars):
    mean = means.mean(0)
    second = (np.exp(logvars) + means**2).mean(0)
    return mean, second - mean**2


@pytest.mark.parametrize("kind", ["mog", "vampprior"])
def test_sample_shape_reproducibility_and_distribution(kind):
    """sample(n, seed): shape (n, D), same seed -> same draws, other seed -> other draws; the mean
    and variance per dimension match the mixture's moments within 5 SE, and dimension 0 passes a
    Kolmogorov-Smirnov test against the mixture CDF built with scipy.stats.norm."""
    if kind == "mog":
        model = paper_model("vae", "mog", INPUT_DIM, num_components=7, seed=5)
        model.prior.means.assign(3 * model.prior.means.numpy())
        model.prior.logvars.assign(np.random.default_rng(5).uniform(-2, 0.5, (7, LATENT)).astype(np.float32))
    else:
        model = _vamp_model(K=7, seed=5)
        model.prior.pseudo_inputs_raw.assign(
            np.random.default_rng(5).uniform(0, 1, (7, INPUT_DIM)).astype(np.float32))
    prior, params = model.prior, model.prior_params()
    means, logvars = (t.numpy().astype(np.float64) for t in params)
    n = 100_000
    a = prior.sample(n, tf.constant([3, 4]), params).numpy()
    b = prior.sample(n, tf.constant([3, 4]), params).numpy()
    c = prior.sample(n, tf.constant([3, 5]), params).numpy()
    assert a.shape == (n, LATENT)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a[:100], c[:100])

    mean, var = _mixture_moments(means, logvars)
    se_mean = np.sqrt(var / n)
    centered = (a - a.mean(0)) ** 2
    se_var = centered.std(0) / np.sqrt(n)
    assert np.all(np.abs(a.mean(0) - mean) < 5 * se_mean)
    assert np.all(np.abs(a.var(0) - var) < 5 * se_var)

    def mixture_cdf(x):
        return stats.norm.cdf(x[:, None], means[:, 0], np.exp(0.5 * logvars[:, 0])).mean(1)

    assert stats.kstest(a[:20_000, 0], mixture_cdf).pvalue > 1e-3


def test_standard_normal_sample():
    prior = StandardNormal()
    prior.build((None, 4))
    a = prior.sample(50_000, tf.constant([0, 1])).numpy()
    assert a.shape == (50_000, 4)
    np.testing.assert_array_equal(a, prior.sample(50_000, tf.constant([0, 1])).numpy())
    assert stats.kstest(a[:, 0], "norm").pvalue > 1e-3


def test_mog_starts_moment_matched_to_standard_normal():
    """The MoG's initial mixture has mean 0 and variance 1 per dimension (as N(0, I), the standard
    prior it is compared with), within the sampling error of K=500 random means."""
    prior = MixtureOfGaussians(500)
    prior.build((None, LATENT))
    means, logvars = (t.numpy().astype(np.float64) for t in prior.params())
    mean, var = _mixture_moments(means, logvars)
    assert np.all(np.abs(mean) < 5 * np.sqrt(0.5 / 500))
    assert np.all(np.abs(var - 1.0) < 5 * 0.5 * np.sqrt(2 / 500))


@pytest.mark.parametrize("model_name", ["vae", "hvae"])
@pytest.mark.parametrize("kind", ["standard", "vampprior", "mog"])
def test_joint_encoder_pass_equals_separate_encoding(kind, model_name):
    """encode_with_prior (the VampPrior's one joint encoder pass over batch + pseudo-inputs) gives
    the top encoder's q(z|x), the prior's own density and the same gradients as separate calls."""
    model = paper_model(model_name, kind, INPUT_DIM, num_components=8, seed=3)
    x = tf.constant(np.random.default_rng(1).random((6, INPUT_DIM)) < 0.3, tf.float32)
    z = tf.random.stateless_normal([6, LATENT], seed=[1, 2])
    variables = model.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        mean, logvar, params = model.encode_with_prior(x)
        joint = tf.reduce_sum(mean) + tf.reduce_sum(logvar) + tf.reduce_sum(model.prior.log_prob(z, params))
        ref_mean, ref_logvar = model.top_encoder(x)
        separate = (tf.reduce_sum(ref_mean) + tf.reduce_sum(ref_logvar)
                    + tf.reduce_sum(model.prior.log_prob(z, model.prior_params())))
    np.testing.assert_allclose(mean.numpy(), ref_mean.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(logvar.numpy(), ref_logvar.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.prior.log_prob(z, params).numpy(),
                               model.prior.log_prob(z, model.prior_params()).numpy(), rtol=1e-5, atol=1e-4)
    for g_joint, g_sep in zip(tape.gradient(joint, variables), tape.gradient(separate, variables)):
        assert (g_joint is None) == (g_sep is None)  # None: the decoder, not used here
        if g_joint is not None:
            np.testing.assert_allclose(g_joint.numpy(), g_sep.numpy(), rtol=1e-4, atol=1e-4)
    if kind == "vampprior":
        assert _in(model.prior.pseudo_inputs_raw, variables)


@pytest.mark.parametrize("name", ["vamp", "Standard", "", "gaussian"])
def test_unknown_prior_name_is_refused_with_the_names(name):
    """Names are the reproduction's (its settings and command line); an unknown one lists them."""
    from vae_lib.pipeline.config import RunConfig
    from vae_lib.pipeline.registry import PRIORS

    with pytest.raises(ConfigError, match="Unknown prior.*" + ", ".join(PRIORS)):
        RunConfig(prior=name)


@pytest.mark.parametrize("k", [0, -1])
def test_mixture_priors_need_a_positive_number_of_components(k):
    for make in (VampPrior, MixtureOfGaussians,
                 lambda k: VampPrior.from_data(np.zeros((10, INPUT_DIM), np.float32), k)):
        with pytest.raises(ConfigError, match=f"number of components must be a whole number of at least 1, got {k}"):
            make(k)


def test_vampprior_from_data_needs_enough_images():
    with pytest.raises(ConfigError, match="needs at least 20 images .*has 5"):
        VampPrior.from_data(np.zeros((5, INPUT_DIM), np.float32), 20)


@pytest.mark.parametrize("model_name", ["vae", "hvae"])
def test_the_vampprior_adds_only_its_pseudo_inputs_to_the_model(model_name):
    """Promise: a checkpoint holds each weight once, and a loop that collects the prior's variables
    gets no one else's. The VampPrior holds no encoder: model.weights lists the encoder's variables
    once, and the prior adds exactly one, its pseudo-inputs, which is all of its own variables."""
    model = paper_model(model_name, "vampprior", INPUT_DIM, num_components=3)
    standard = paper_model(model_name, "standard", INPUT_DIM)
    assert isinstance(model.prior, VampPrior)
    ids = [id(v) for v in model.weights]
    assert len(ids) == len(set(ids)) == len(standard.weights) + 1
    assert model.prior.trainable_variables == [model.prior.pseudo_inputs_raw]
    assert [id(v) for v in model.prior.weights] == [id(model.prior.pseudo_inputs_raw)]


@pytest.mark.parametrize("likelihood", ["bernoulli", "discretized_logistic"])
def test_mixed_bfloat16_layers_give_float32_densities_close_to_float32(likelihood):
    """Under Keras' mixed_bfloat16 policy (used by benchmarks/bf16_probe.py) the layers compute in
    bfloat16 but every density is float32, and the ELBO terms of the same weights stay within
    bfloat16 rounding of the float32 model's."""
    import keras

    x = tf.constant(np.random.default_rng(0).integers(0, 256, (50, 64)) / 255.0, tf.float32)
    if likelihood == "bernoulli":
        x = tf.round(x)
    reference = paper_model("vae", "vampprior", 64, likelihood, hidden_units=300, seed=3)
    try:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        mixed = paper_model("vae", "vampprior", 64, likelihood, hidden_units=300, seed=3)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    mixed.set_weights(reference.get_weights())
    seed = tf.constant([0, 1], tf.int64)
    got = [t.numpy() for t in mixed.elbo_terms(x, seed)]
    want = [t.numpy() for t in reference.elbo_terms(x, seed)]
    for g, w in zip(got, want):
        assert g.dtype == np.float32 and np.all(np.isfinite(g))
        np.testing.assert_allclose(g, w, rtol=0.05, atol=0.5)
        assert not np.array_equal(g, w)  # the layers really did compute in bfloat16
