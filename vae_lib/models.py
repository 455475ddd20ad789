"""Latent-variable models. Each owns its distributions and its log-weights; the estimators
(:mod:`vae_lib.estimators`) and the trainer only reduce what these methods return:

``elbo_terms(x, seed)``
    per image, one draw z ~ q(z|x): the distortion -log p(x|z) and the rate
    log q(z|x) - log p(z) (the closed-form KL instead, where the model uses it). Training weighs
    the rate by the KL warm-up beta; ELBO = -(distortion + rate).
``log_weights(x, seed, num_samples, prior_params=None)``
    (S, B) log p(x, z_s) - log q(z_s|x) for S draws z_s ~ q(z|x); their logsumexp - log S is the
    importance-sampled log p(x) (the IWAE bound).
``prior_params()``
    the prior's parameters, computed once per evaluation and passed back to ``log_weights``
    (the VampPrior's K pseudo-inputs are then encoded once, not once per pass).
``reconstruct(x)``, ``sample(n, seed)``
    mean images, for figures.

A new model is one new class here and the function that assembles it, named in
:data:`vae_lib.pipeline.registry.MODELS`; nothing else changes.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from .densities import log_normal_diag, reparameterize
from .errors import ConfigError, check_choice
from .networks import Decoder, GaussianMLP, TwoInputDecoder, TwoInputGaussian
from .priors import Prior, make_prior
from .pipeline.registry import MODELS


class LatentVariableModel(keras.Model):
    """What every model shares: an injected prior on its (top) latent, and the joint encoder pass."""

    def __init__(self, prior: Prior, input_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.prior, self.input_dim = prior, input_dim
        self.latent_dim = prior.latent_dim

    @property
    def likelihood(self) -> str | None:
        """The name of p(x|.)'s distribution ("bernoulli" or "logistic256"); None if unnamed (the
        importance sampler then refuses bfloat16 matmuls, which suit binary images only)."""
        return None

    def top_encoder(self, x):
        """(mean, logvar) of the latent the prior is on, given x."""
        raise NotImplementedError

    def encode_with_prior(self, x):
        """(mean, logvar) of the top latent for a batch, and the prior's params. A prior built on the
        encoder (the VampPrior) has its inputs encoded in the same pass as the batch: one (B+K)-row
        matmul per layer runs faster on a CPU than a B-row and a K-row one, with the same numbers."""
        extra = self.prior.encoder_inputs()
        if extra is None:
            mean, logvar = self.top_encoder(x)
            return mean, logvar, self.prior.params()
        n = tf.shape(x)[0]
        mean, logvar = self.top_encoder(tf.concat([x, extra], axis=0))
        return mean[:n], logvar[:n], (mean[n:], logvar[n:])

    def prior_params(self):
        return self.prior.params()

    def build_all(self):
        """Create every weight (Keras builds layers lazily on their first call)."""
        self.log_weights(tf.zeros([1, self.input_dim]), tf.constant([0, 0], tf.int64), 1)
        self.reconstruct(tf.zeros([1, self.input_dim]))
        self.built = True
        return self

    def call(self, x):  # a reconstruction; training uses elbo_terms, not fit()
        return self.reconstruct(x)

    def elbo_terms(self, x, seed):
        raise NotImplementedError

    def log_weights(self, x, seed, num_samples, prior_params=None):
        raise NotImplementedError

    def reconstruct(self, x):
        raise NotImplementedError

    def sample(self, n, seed):
        raise NotImplementedError


class VAE(LatentVariableModel):
    """q(z|x) = N(encoder(x)), p(x|z) = decoder, p(z) = the injected prior.

    ``closed_form_kl``: where the prior has a closed-form KL (the standard prior), the rate is that
    KL instead of its single-sample Monte Carlo estimate (same expectation, less noise). The
    paper's code uses the Monte Carlo estimate for every prior (``closed_form_kl=False``)."""

    def __init__(self, encoder, decoder, prior: Prior, input_dim: int, closed_form_kl: bool = True,
                 **kwargs):
        super().__init__(prior, input_dim, **kwargs)
        self.encoder, self.decoder = encoder, decoder
        if prior.encoder_inputs() is not None and getattr(prior, "encoder", None) is not encoder:
            raise ConfigError("A prior built on an encoder must use the VAE's own encoder.")
        self.use_closed_form_kl = closed_form_kl and prior.has_closed_form_kl

    @property
    def likelihood(self):
        return getattr(self.decoder, "likelihood", None)

    def top_encoder(self, x):
        return self.encoder(x)

    def elbo_terms(self, x, seed):
        mean, logvar, params = self.encode_with_prior(x)
        z = reparameterize(mean, logvar, seed)
        distortion = -self.decoder.log_prob(x, z)
        if self.use_closed_form_kl:
            rate = self.prior.closed_form_kl(mean, logvar)
        else:
            rate = log_normal_diag(z, mean, logvar) - self.prior.log_prob(z, params)
        return distortion, rate

    def log_weights(self, x, seed, num_samples, prior_params=None):
        if prior_params is None:
            mean, logvar, prior_params = self.encode_with_prior(x)
        else:
            mean, logvar = self.encoder(x)
        z = reparameterize(mean, logvar, seed, num_samples)  # (S, B, D)
        return (self.decoder.log_prob(x, z) + self.prior.log_prob(z, prior_params)
                - log_normal_diag(z, mean, logvar))

    def reconstruct(self, x):
        mean, _ = self.encoder(x)
        return self.decoder.mean(mean)

    def sample(self, n, seed):
        return self.decoder.mean(self.prior.sample(n, seed))


class HVAE(LatentVariableModel):
    """The paper's two-level hierarchical VAE (models/HVAE_2level.py in the paper's code):

        q(z1, z2 | x) = q(z2 | x) q(z1 | x, z2),   p(x, z1, z2) = p(x | z1, z2) p(z1 | z2) p(z2),

    with the injected prior on the top latent z2 (the VampPrior encodes its pseudo-inputs with
    q(z2|.)). One draw of (z2, z1) from q per sample; all rates are Monte Carlo estimates."""

    def __init__(self, q_z2, q_z1, p_z1, p_x, prior: Prior, input_dim: int, **kwargs):
        super().__init__(prior, input_dim, **kwargs)
        self.q_z2, self.q_z1, self.p_z1, self.p_x = q_z2, q_z1, p_z1, p_x
        if prior.encoder_inputs() is not None and getattr(prior, "encoder", None) is not q_z2:
            raise ConfigError("A prior built on an encoder must use the HVAE's q(z2|x).")

    @property
    def likelihood(self):
        return getattr(self.p_x, "likelihood", None)

    def top_encoder(self, x):
        return self.q_z2(x)

    def _log_px_and_log_ratio(self, x, seed, num_samples, prior_params):
        """log p(x|z1, z2) and log p(z1, z2) - log q(z1, z2|x) for draws (z2, z1) ~ q."""
        if prior_params is None:
            mean2, logvar2, prior_params = self.encode_with_prior(x)
        else:
            mean2, logvar2 = self.q_z2(x)
        seed2, seed1 = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        z2 = reparameterize(mean2, logvar2, seed2, num_samples)
        mean1, logvar1 = self.q_z1(x, z2)
        z1 = reparameterize(mean1, logvar1, seed1)
        p_mean1, p_logvar1 = self.p_z1(z2)
        log_q = log_normal_diag(z1, mean1, logvar1) + log_normal_diag(z2, mean2, logvar2)
        log_p = log_normal_diag(z1, p_mean1, p_logvar1) + self.prior.log_prob(z2, prior_params)
        return self.p_x.log_prob(x, z1, z2), log_p - log_q

    def elbo_terms(self, x, seed):
        log_px, log_ratio = self._log_px_and_log_ratio(x, seed, None, None)
        return -log_px, -log_ratio

    def log_weights(self, x, seed, num_samples, prior_params=None):
        log_px, log_ratio = self._log_px_and_log_ratio(x, seed, num_samples, prior_params)
        return log_px + log_ratio

    def reconstruct(self, x):
        z2, _ = self.q_z2(x)
        z1, _ = self.q_z1(x, z2)
        return self.p_x.mean(z1, z2)

    def sample(self, n, seed):
        seed2, seed1 = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        z2 = self.prior.sample(n, seed2)
        z1 = reparameterize(*self.p_z1(z2), seed1)
        return self.p_x.mean(z1, z2)


# -- builders, named in vae_lib.pipeline.registry.MODELS ----------------------------------------------------
def assemble_vae(prior_name, input_dim, likelihood, *, latent_dim, hidden_units, num_layers,
                 activation, init, closed_form_kl, **prior_kwargs):
    encoder = GaussianMLP(latent_dim, hidden_units, num_layers, activation, init, name="encoder")
    decoder = Decoder(input_dim, likelihood, hidden_units, num_layers, activation, init, name="decoder")
    prior = make_prior(prior_name, latent_dim, encoder=encoder, input_dim=input_dim, **prior_kwargs)
    return VAE(encoder, decoder, prior, input_dim, closed_form_kl=closed_form_kl,
               name=f"vae_{prior_name}")


def assemble_hvae(prior_name, input_dim, likelihood, *, latent_dim, hidden_units, num_layers,
                  activation, init, closed_form_kl, **prior_kwargs):
    q_z2 = GaussianMLP(latent_dim, hidden_units, num_layers, activation, init, name="q_z2")
    q_z1 = TwoInputGaussian(latent_dim, hidden_units, activation, init, name="q_z1")
    p_z1 = GaussianMLP(latent_dim, hidden_units, num_layers, activation, init, name="p_z1")
    p_x = TwoInputDecoder(input_dim, likelihood, hidden_units, activation, init, name="p_x")
    prior = make_prior(prior_name, latent_dim, encoder=q_z2, input_dim=input_dim, **prior_kwargs)
    return HVAE(q_z2, q_z1, p_z1, p_x, prior, input_dim, name=f"hvae_{prior_name}")


def build_model(model: str, prior_name: str, input_dim: int, likelihood: str, *, latent_dim=40,
                hidden_units=300, num_layers=2, activation="gated", init="glorot",
                closed_form_kl=True, num_components=500, train_images=None,
                pseudo_init=(0.05, 0.01), trainable_pseudo_inputs=None, seed=0) -> LatentVariableModel:
    """Build and initialise (with ``seed``) the model called ``model`` with the prior ``prior_name``."""
    spec = MODELS[check_choice("model", model, MODELS)]
    keras.utils.set_random_seed(seed)  # the weights' initial values
    built = spec.build(prior_name, input_dim, likelihood, latent_dim=latent_dim,
                       hidden_units=hidden_units, num_layers=num_layers, activation=activation,
                       init=init, closed_form_kl=closed_form_kl, num_components=num_components,
                       train_images=train_images, pseudo_init=pseudo_init,
                       trainable_pseudo_inputs=trainable_pseudo_inputs, seed=seed)
    return built.build_all()


def build_vae(prior_name: str, input_dim: int, likelihood: str, **kwargs) -> VAE:
    """The one-level VAE (``build_model("vae", ...)``)."""
    return build_model("vae", prior_name, input_dim, likelihood, **kwargs)
