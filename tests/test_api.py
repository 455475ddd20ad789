"""The library as a practitioner meets it: public names, Keras-native training (compile, fit,
evaluate) on any encoder and decoder, one optimizer step per variable, the same step as the
paper-protocol trainer, save and load, and clear errors. The tests marked ``portable`` are written
in ``keras.ops`` and run again on JAX (tests/test_backends.py)."""
from __future__ import annotations

import math
import warnings

import keras
import numpy as np
import pytest
from keras import ops
from scipy import special

import vae_lib
from helpers import paper_model, run_and_see_if_tensorflow_loads
from vae_lib import backend
from vae_lib.errors import ConfigError
from vae_lib.seeds import stateless_seed

portable = pytest.mark.portable
as_numpy = ops.convert_to_numpy

D, Z = 12, 3


def _binary(n, shape=(D,), seed=0, p=0.3):
    return (np.random.default_rng(seed).random((n, *shape)) < p).astype(np.float32)


def test_import_changes_nothing_and_loads_no_tensorflow():
    """`import vae_lib` leaves os.environ and the umask as they were and loads no TensorFlow; its
    public names resolve (then TensorFlow loads) and are all listed in __all__; its modules are
    reached as attributes without an import of their own (vae_lib.priors.MixturePrior)."""
    code = ("import os\nbefore = (dict(os.environ), os.umask(0o022))\nos.umask(before[1])\n"
            "import vae_lib\nafter = (dict(os.environ), os.umask(0o022))\nos.umask(after[1])\n"
            "print(before == after)\nprint(vae_lib.schedule.kl_weight(1, 4))")
    printed, loaded = run_and_see_if_tensorflow_loads(code)
    assert printed == "True\n0.25" and not loaded
    for name in ["VAE", "HVAE", "StandardNormal", "VampPrior", "MixtureOfGaussians", "Bernoulli",
                 "DiscretizedLogistic", "log_likelihood", "iwae_bound", "elbo", "KLWarmup",
                 "PaperEarlyStopping", "AdamNormGrad"]:
        assert name in vae_lib.__all__ and getattr(vae_lib, name).__doc__
    with pytest.raises(AttributeError, match="no attribute 'Vae'"):
        vae_lib.Vae


class LinearGaussianEncoder(keras.layers.Layer):
    """x -> one tensor of 2Z numbers: x A + a (means, then log-variances)."""

    def build(self, input_shape):
        self.A = self.add_weight(shape=(input_shape[-1], 2 * Z), initializer=keras.initializers.RandomNormal(0, 0.3))
        self.a = self.add_weight(shape=(2 * Z,), initializer="zeros")

    def call(self, x):
        return ops.matmul(x, self.A) + self.a


@portable
def test_fit_loss_is_the_hand_computed_beta_weighted_negative_elbo():
    """One epoch of one batch: the loss fit logs is mean(-log p(x|z) + beta KL(q || N(0, I))) for
    z = mean + sigma * eps with eps the "train" stream's draw at step 0, computed here in numpy
    from the starting weights (a linear encoder and a Dense decoder), beta from KLWarmup."""
    x = _binary(16)
    decoder = keras.Sequential([keras.Input((Z,)), keras.layers.Dense(D)])
    model = vae_lib.VAE(LinearGaussianEncoder(), decoder, vae_lib.StandardNormal(), seed=5)
    model.build((None, D))
    A, a, W, b = (w.numpy().astype(np.float64) for w in model.trainable_variables)
    h = x @ A + a
    mean, logvar = h[:, :Z], h[:, Z:]
    eps = as_numpy(backend.normal((16, Z), stateless_seed(5, "train", 0)))  # the model's own draw
    z = mean + np.exp(logvar / 2) * eps
    logits = z @ W + b
    distortion = -(x * logits - np.logaddexp(0, logits)).sum(1)
    kl = 0.5 * (np.exp(logvar) + mean**2 - 1 - logvar).sum(1)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    logs = model.fit(x, batch_size=16, epochs=1, shuffle=False, verbose=0,
                     callbacks=[vae_lib.KLWarmup(4)]).history
    assert logs["kl_weight"] == [0.25]
    np.testing.assert_allclose(logs["distortion"][0], distortion.mean(), rtol=1e-5)
    np.testing.assert_allclose(logs["rate"][0], kl.mean(), rtol=1e-5)
    np.testing.assert_allclose(logs["loss"][0], (distortion + 0.25 * kl).mean(), rtol=1e-5)


# each model and each optimizer once: the optimizer's update does not depend on the model
@pytest.mark.parametrize("model_name, optimizer", [("vae", "adam"), ("hvae", "adamnormgrad")])
def test_fit_and_the_paper_protocol_trainer_take_the_same_step(model_name, optimizer):
    """Two copies of one paper model, one batch: a step of fit and a step of the Trainer give the
    same loss, distortion and rate and the same weights after it (same seed, batch and KL weight).
    Both run the model's gradient_step; this is what keeps them from drifting apart. (The two
    compiled graphs may sum a gradient in another order: Adam's first step, lr g / (|g| + eps),
    turns that rounding into a visible difference where |g| is near eps, so a few weights in ten
    thousand differ, by up to 2% of a step.)"""
    import tensorflow as tf

    from vae_lib.datasets import Dataset
    from vae_lib.pipeline.build import build_model
    from vae_lib.pipeline.config import make_config
    from vae_lib.pipeline.trainer import Trainer

    x = _binary(20, (28 * 28,), seed=1)
    data = Dataset("static_mnist", x, x, x, (28, 28), "bernoulli", (0.05, 0.01))
    config = make_config("static_mnist", "vampprior", "smoke", model=model_name, optimizer=optimizer,
                         batch_size=20, components=5, seed=2, learning_rate=1e-3)
    ours, theirs = build_model(config, data), build_model(config, data)
    trainer = Trainer(theirs, config, progress=False)
    losses = trainer.train_epoch(tf.constant(x), epoch=1, beta=0.5)
    kind = vae_lib.AdamNormGrad if optimizer == "adamnormgrad" else keras.optimizers.Adam
    ours.compile(optimizer=kind(1e-3, epsilon=1e-8), jit_compile=config.jit_compile)
    ours.kl_weight.assign(0.5)
    order = np.random.default_rng([config.seed, 1]).permutation(20)  # the Trainer's batch order
    logs = ours.fit(x[order], batch_size=20, epochs=1, shuffle=False, verbose=0).history
    # (the rate, under 1 nat here, is a difference of log-densities of tens of nats: their float32
    # rounding, which a graph's order of summation sets, is up to 1e-6 nats of it)
    np.testing.assert_allclose([logs[k][0] for k in ("loss", "distortion", "rate")], losses[0], rtol=1e-6,
                               atol=2e-6)
    diffs = np.concatenate([np.abs(a.numpy() - b.numpy()).ravel()
                            for a, b in zip(ours.trainable_variables, theirs.trainable_variables)])
    assert diffs.max() < 0.02 * 1e-3 and np.mean(diffs > 1e-7) < 1e-3


@pytest.mark.parametrize("model_name, prior", [
    ("vae", "standard"), pytest.param("vae", "vampprior", marks=portable), ("vae", "mog"),
    ("hvae", "standard"), ("hvae", "vampprior"), ("hvae", "mog")])
def test_every_variable_is_listed_once_and_moves_one_adam_step(model_name, prior):
    """Each trainable variable appears once in model.trainable_variables (the VampPrior shares the
    encoder, and lists only its pseudo-inputs), so one Adam step moves every weight by at most the
    learning rate: Adam's first step is lr * g / (|g| + eps), and a variable listed twice would be
    stepped twice."""
    lr = 1e-3
    model = paper_model(model_name, prior, D, hidden_units=8, num_components=4)
    variables = model.trainable_variables
    assert len({id(v) for v in variables}) == len(variables)
    assert len({v.path for v in variables}) == len(variables)
    before = [v.numpy() for v in variables]
    model.compile(optimizer=keras.optimizers.Adam(lr))
    model.fit(_binary(8), batch_size=8, epochs=1, verbose=0)
    steps = np.concatenate([np.abs(v.numpy() - b).ravel() for v, b in zip(variables, before)])
    assert steps.max() <= lr * (1 + 1e-4)
    assert np.median(steps) > 0.5 * lr  # (nearly) every weight took its one step


def _conv_vae(prior, shape=(28, 28, 1), likelihood="bernoulli"):
    """A small convolutional encoder and decoder, as keras.Sequential models: images in, one tensor
    of 2Z numbers out; z in, likelihood parameters of the image's shape out."""
    channels = shape[-1] * (2 if likelihood == "discretized_logistic" else 1)
    encoder = keras.Sequential([keras.Input(shape), keras.layers.Conv2D(8, 3, 2, padding="same", activation="relu"),
                                keras.layers.Flatten(), keras.layers.Dense(2 * Z)])
    decoder = keras.Sequential([keras.Input((Z,)), keras.layers.Dense(7 * (shape[1] // 4) * 8, activation="relu"),
                                keras.layers.Reshape((7, shape[1] // 4, 8)),
                                keras.layers.Conv2DTranspose(8, 3, 2, padding="same", activation="relu"),
                                keras.layers.Conv2DTranspose(channels, 3, 2, padding="same")])
    return vae_lib.VAE(encoder, decoder, prior, likelihood=likelihood, seed=3)


@pytest.mark.parametrize("prior", [lambda: vae_lib.VampPrior(6), vae_lib.StandardNormal])
def test_convolutional_models_through_fit_and_importance_sampling(prior):
    """Image-shaped inputs, a Sequential conv encoder returning 2Z numbers and a Sequential
    deconvolutional decoder, the VampPrior's pseudo-inputs shaped like the images: fit (XLA)
    lowers the loss, and per image the importance-sampled estimate with S=200 lies above the
    ELBO's mean over 200 draws, the IWAE bound rising with k."""
    keras.utils.set_random_seed(0)
    x = _binary(64, (28, 28, 1))
    model = _conv_vae(prior())
    model.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=True)
    logs = model.fit(x, batch_size=32, epochs=4, verbose=0).history
    assert logs["loss"][-1] < logs["loss"][0]
    if isinstance(model.prior, vae_lib.VampPrior):
        assert model.prior.pseudo_inputs().shape == (6, 28, 28, 1)
    images = x[:4]
    elbo = vae_lib.elbo(model, np.repeat(images, 200, 0)).reshape(4, 200)
    ll = vae_lib.log_likelihood(model, images, num_samples=200)
    assert np.all(ll > elbo.mean(1))
    bounds = {}  # L_k over the 4 images, pooled over independent draws: mean and standard error
    for k, reps in [(1, 400), (10, 100), (100, 25)]:
        draws = vae_lib.iwae_bound(model, np.repeat(images, reps, 0), k, seed=k).reshape(4, reps).mean(0)
        bounds[k] = draws.mean(), draws.std(ddof=1) / np.sqrt(reps)
    (l1, se1), (l10, se10), (l100, se100) = bounds[1], bounds[10], bounds[100]
    assert l1 + 3 * np.hypot(se1, se10) < l10 and l1 + 3 * np.hypot(se1, se100) < l100
    assert l10 < l100 + 3 * np.hypot(se10, se100)
    assert model.sample(5).shape == (5, 28, 28, 1) and model.predict(images, verbose=0).shape == (4, 28, 28, 1)


def test_frey_shaped_discretized_logistic_conv_model_scores_8_bit_images():
    """28 x 20 grey images under the discretized logistic, the decoder giving two channels per
    pixel: per image, the ELBO of a random-weight model equals -(distortion + rate) with the
    distortion computed here from the decoder's output by scipy's logistic CDF."""
    from scipy import stats

    x = np.random.default_rng(0).integers(0, 256, (3, 28, 20, 1)).astype(np.float32) / 255
    model = _conv_vae(vae_lib.StandardNormal(), (28, 20, 1), "discretized_logistic")
    model.build((None, 28, 20, 1))
    mean, _ = model.top_encoder(x)
    out = as_numpy(model.decoder(mean)).astype(np.float64)
    loc, log_scale = 1 / (1 + np.exp(-out[..., :1])), np.clip(out[..., 1:], -4.5, 0)
    edges = lambda k: stats.logistic.cdf((k - loc) / np.exp(log_scale))
    upper = np.where(x > 1 - 0.5 / 255, 1.0, edges(x + 0.5 / 255))
    lower = np.where(x < 0.5 / 255, 0.0, edges(x - 0.5 / 255))
    expected = np.log(upper - lower).reshape(3, -1).sum(1)
    got = model.likelihood.log_prob(ops.convert_to_tensor(x), model.likelihood.params(model.decoder(mean), (28, 20, 1)))
    np.testing.assert_allclose(as_numpy(got), expected, rtol=1e-4)


@pytest.mark.parametrize("model_name, prior", [
    ("vae", "standard"), ("vae", "vampprior"), ("vae", "vampprior_data"), ("vae", "mog"), ("hvae", "standard"),
    pytest.param("hvae", "vampprior", marks=portable), ("hvae", "vampprior_data"), ("hvae", "mog")])
def test_save_and_load_give_identical_log_weights(model_name, prior, tmp_path):
    """model.save and keras.saving.load_model: the same class, prior and likelihood, and identical
    log-weights, samples and reconstructions for fixed seeds (the paper's networks, trained a step
    so that no weight is at its initial value)."""
    x = _binary(10, seed=4)
    model = paper_model(model_name, prior, D, hidden_units=8, num_components=4, train_images=x,
                        trainable_pseudo_inputs=True)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(x, batch_size=10, epochs=2, verbose=0, callbacks=[vae_lib.KLWarmup(3)])
    path = tmp_path / "model.keras"
    model.save(path)
    same = keras.saving.load_model(path)
    assert type(same) is type(model) and type(same.prior) is type(model.prior)
    assert same.likelihood == model.likelihood and same.seed == model.seed
    seed = backend.seed_pair(3, 4)
    np.testing.assert_array_equal(as_numpy(same.log_weights(x, seed, 7)), as_numpy(model.log_weights(x, seed, 7)))
    np.testing.assert_array_equal(as_numpy(same.sample(3)), as_numpy(model.sample(3)))
    np.testing.assert_array_equal(as_numpy(same(x)), as_numpy(model(x)))
    assert float(same.kl_weight.numpy()) == pytest.approx(2 / 3)


def test_a_conv_vampprior_model_saves_and_loads(tmp_path):
    model = _conv_vae(vae_lib.VampPrior(4))
    x = _binary(4, (28, 28, 1))
    model.build((None, 28, 28, 1))
    model.save(tmp_path / "conv.keras")
    same = keras.saving.load_model(tmp_path / "conv.keras")
    seed = backend.seed_pair(0, 1)
    np.testing.assert_array_equal(as_numpy(same.log_weights(x, seed, 3)), as_numpy(model.log_weights(x, seed, 3)))


@portable
def test_a_truncated_or_foreign_model_file_gets_a_clear_error(tmp_path):
    """vae_lib.load_model says which file is unreadable and why, where Keras' own message names
    only the zip format."""
    model = paper_model("vae", "standard", D, hidden_units=8)
    good = tmp_path / "good.keras"
    model.save(good)
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ConfigError, match=f"{truncated}.*not a complete .keras file"):
        vae_lib.load_model(truncated)
    with pytest.raises(ConfigError, match="No model file"):
        vae_lib.load_model(tmp_path / "missing.keras")
    with pytest.raises(ConfigError, match="missing_suffix.keras"):  # advice Keras' save then takes
        vae_lib.load_model(tmp_path / "missing_suffix")
    with pytest.raises(ConfigError, match="is a folder"):
        vae_lib.load_model(tmp_path)
    with pytest.raises(ConfigError, match=r"model.save\(.*good_too.keras.*cannot load it back from HDF5"):
        model.save(tmp_path / "good_too.h5")  # Keras would write it, and could not load it
    assert not (tmp_path / "good_too.h5").exists()
    assert isinstance(vae_lib.load_model(good), vae_lib.VAE)


@portable
@pytest.mark.parametrize("make", [lambda: vae_lib.VampPrior(5, pseudo_init=(0.5, 0.02)),
                                  lambda: vae_lib.MixtureOfGaussians(5, latent_dim=3),
                                  lambda: vae_lib.StandardNormal(latent=3)])
def test_unknown_keywords_are_refused(make):
    """No catch-all keywords: a misspelt one is named (by Keras, as for its own layers)."""
    with pytest.raises(ValueError, match="Unrecognized keyword arguments"):
        make()


@portable
def test_a_decoder_of_the_wrong_size_and_a_bad_encoder_get_clear_errors():
    with pytest.raises(ConfigError, match="2Z numbers.*gives 5"):
        vae_lib.VAE(keras.layers.Dense(5), keras.layers.Dense(D), vae_lib.StandardNormal()).build((None, D))
    with pytest.raises(ConfigError, match=f"gives {D} numbers per image.*needs 2 per pixel, {2 * D} for images"):
        vae_lib.VAE(keras.layers.Dense(6), keras.layers.Dense(D), vae_lib.StandardNormal(),
                    likelihood="discretized_logistic").build((None, D))
    with pytest.raises(ConfigError, match=f"gives {D + 1} numbers.*needs 1 per pixel, {D} for"):
        vae_lib.VAE(keras.layers.Dense(6), keras.layers.Dense(D + 1), vae_lib.StandardNormal()).build((None, D))
    with pytest.raises(ConfigError, match="prior must be a vae_lib prior"):
        vae_lib.VAE(keras.layers.Dense(6), keras.layers.Dense(D), "vampprior")


def test_images_outside_the_likelihoods_range_or_of_another_shape_are_refused_before_any_work():
    """8-bit images under the discretized logistic (NaN or meaningless nats before), NaN pixels,
    and images of another shape than the model's get a DataError naming the fix, from fit,
    evaluate and the estimators, before a step is taken; grey levels under the Bernoulli
    likelihood get a warning, binary images none."""
    grey = vae_lib.VAE(keras.layers.Dense(6), keras.layers.Dense(2 * D), vae_lib.StandardNormal(),
                       likelihood="discretized_logistic", seed=1)
    grey.compile(optimizer="adam")
    eight_bit = np.random.default_rng(0).integers(0, 256, (20, D)).astype(np.uint8)
    for call in (lambda x: grey.fit(x, epochs=1, verbose=0), lambda x: grey.evaluate(x, verbose=0),
                 lambda x: vae_lib.log_likelihood(grey, x, num_samples=3), lambda x: vae_lib.elbo(grey, x)):
        with pytest.raises(vae_lib.DataError, match="pixels in \\[0, 1\\].*from 0 to 255. Divide 8-bit images by 255"):
            call(eight_bit)
    assert not grey.built or int(grey.optimizer.iterations) == 0
    nan = eight_bit / np.float32(255)
    nan[3, 4] = np.nan
    with pytest.raises(vae_lib.DataError, match="NaN"):
        vae_lib.log_likelihood(grey, nan, num_samples=3)
    assert np.isfinite(vae_lib.log_likelihood(grey, eight_bit / np.float32(255), num_samples=3)).all()

    with pytest.raises(vae_lib.DataError, match=r"shape \(3, 4\) each.*built for images of shape \(12,\)\. "
                                                r"Reshape them: images.reshape\(-1, 12\)"):
        vae_lib.elbo(grey, nan[:, :D].reshape(-1, 3, 4))
    with pytest.raises(vae_lib.DataError, match=r"shape \(13,\) each") as refused:
        grey.fit(np.zeros((20, D + 1), np.float32), epochs=1, verbose=0)
    assert "Reshape" not in str(refused.value)

    binary = vae_lib.VAE(keras.layers.Dense(6), keras.layers.Dense(D), vae_lib.StandardNormal(), seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vae_lib.log_likelihood(binary, _binary(10), num_samples=3)
    with pytest.warns(UserWarning, match="grey levels.*Binarize them"):
        vae_lib.log_likelihood(binary, _binary(10) * np.float32(0.5), num_samples=3)


def test_a_prior_with_weights_belongs_to_one_model_and_counts_are_whole_numbers():
    """A VampPrior or mixture given to a second model is refused with what to do (Keras' own
    error came at the second build); the standard prior, which holds no weights, is shared.
    Counts are whole numbers: VampPrior(5.7) is refused, not cut to 5."""
    for make in (lambda: vae_lib.VampPrior(4), lambda: vae_lib.MixtureOfGaussians(4)):
        prior = make()
        first = vae_lib.VAE(keras.layers.Dense(6), keras.layers.Dense(D), prior)
        with pytest.raises(ConfigError, match="already belongs to another model.*new prior for each model"):
            vae_lib.VAE(keras.layers.Dense(6), keras.layers.Dense(D), prior)
        assert first.prior is prior
    shared = vae_lib.StandardNormal()
    models = [vae_lib.VAE(keras.layers.Dense(6), keras.layers.Dense(D), shared, seed=s) for s in (1, 2)]
    assert all(np.isfinite(vae_lib.log_likelihood(m, _binary(4), num_samples=2)).all() for m in models)
    for make in (lambda: vae_lib.VampPrior(5.7), lambda: vae_lib.MixtureOfGaussians(2.9),
                 lambda: vae_lib.VampPrior(True), lambda: vae_lib.VampPrior("ten"),
                 lambda: vae_lib.PaperEarlyStopping(patience=-3), lambda: vae_lib.KLWarmup(-1)):
        with pytest.raises(ConfigError, match="must be a whole number of at least"):
            make()
    assert vae_lib.VampPrior(500.0).num_components == 500


@portable
def test_paper_early_stopping_callback_follows_the_papers_rule():
    """The callback stops where the schedule's rule stops a scripted validation curve, and keeps
    the best epoch's weights (here: those of the epoch whose loss was lowest)."""
    from vae_lib.schedule import last_epoch

    curve = [10, 9, 8, 8.5, 9, 8.1, 8.2, 8.3, 7.0]
    model = paper_model("vae", "standard", D, hidden_units=8)
    stopper = vae_lib.PaperEarlyStopping(patience=3, warmup_epochs=0)
    stopper.set_model(model)
    model.stop_training = False  # as fit sets it
    stopper.on_train_begin()
    kept = None
    for epoch, loss in enumerate(curve):
        model.kl_weight.assign(float(epoch))  # a weight that tells the epochs apart
        stopper.on_epoch_end(epoch, {"val_loss": loss})
        if loss == min(curve[: epoch + 1]):
            kept = float(epoch)
        if model.stop_training:
            break
    assert epoch + 1 == last_epoch(3, 0, 3) == 7 and stopper.best_epoch == 3
    stopper.on_train_end()
    assert float(model.kl_weight.numpy()) == kept == 2.0
    with pytest.raises(ValueError, match="validation_data"):
        stopper.on_epoch_end(0, {"loss": 1.0})


@portable
def test_log_likelihood_agrees_with_scipy_logsumexp_of_the_models_own_log_weights():
    """The public estimator is logsumexp over S of the model's log-weights minus log S (the IWAE
    bound), here against scipy on the same draws (one pass; without XLA, as the draws here are
    made: XLA's Philox kernel draws other numbers from the same seed)."""
    model = paper_model("vae", "vampprior", D, hidden_units=8, num_components=4)
    x = _binary(3, seed=9)
    log_w = as_numpy(model.log_weights(x, stateless_seed(0, "importance", 0), 50)).astype(np.float64)
    expected = special.logsumexp(log_w, axis=0) - math.log(50)
    np.testing.assert_allclose(vae_lib.log_likelihood(model, x, num_samples=50, jit_compile=False),
                               expected, rtol=1e-5)


@pytest.mark.skipif(backend.NAME != "tensorflow", reason="TensorFlow's warning")
def test_scoring_many_models_in_one_process_gives_no_retracing_warning():
    """Each model's importance sampler traces its own function once; TensorFlow counted those
    traces together (by the code traced) and warned of "excessive retracing" from the fifth model
    on. Six models scored, each twice (the second call traces nothing), warn of nothing."""
    import logging

    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("tensorflow")
    logger.addHandler(handler)
    try:
        x = _binary(4, seed=3)
        for _ in range(6):
            model = paper_model("vae", "standard", D, hidden_units=8)
            first = vae_lib.log_likelihood(model, x, num_samples=5, jit_compile=False)
            np.testing.assert_array_equal(vae_lib.log_likelihood(model, x, num_samples=5, jit_compile=False), first)
    finally:
        logger.removeHandler(handler)
    assert not [m for m in messages if "retracing" in m], messages


@pytest.mark.skipif(backend.NAME != "tensorflow", reason="fit's array pipeline is TensorFlow's")
def test_fit_feeds_an_array_in_every_row_once_an_epoch_in_a_new_order():
    """The batches fit makes of an image array on TensorFlow (backend.array_batches): 20 rows in
    batches of 7, 7 and 6, each epoch a permutation of the rows (as float32), a new one each
    epoch with shuffle, the rows in order without."""
    x = np.arange(20, dtype=np.float64)[:, None] * np.ones((1, 3))
    epochs = [[as_numpy(b) for b in backend.array_batches(x, 7, shuffle=True)] for _ in range(2)]
    for batches in epochs:
        assert [len(b) for b in batches] == [7, 7, 6] and batches[0].dtype == np.float32
        np.testing.assert_array_equal(np.sort(np.concatenate(batches)[:, 0]), np.arange(20))
    assert not np.array_equal(np.concatenate(epochs[0]), np.concatenate(epochs[1]))
    in_order = np.concatenate([as_numpy(b) for b in backend.array_batches(x, 7, shuffle=False)])
    np.testing.assert_array_equal(in_order, x)
