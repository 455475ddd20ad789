"""The names the reproduction accepts for its priors and models, with what the command line, the
plans and the report need to know of each; :mod:`vae_lib.pipeline.build` turns a name into the
class it stands for (the one place that does). Plain data: a grid driver, a Dask worker or
``vampprior status`` checks every name without importing TensorFlow."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import check_choice


@dataclass(frozen=True)
class PriorName:
    description: str
    has_pseudo_inputs: bool = False  # a VampPrior: K inputs go through the encoder at every step
    mixture: bool = False  # a K-component Gaussian mixture density


PRIORS: dict[str, PriorName] = {
    "standard": PriorName("N(0, I)"),
    "vampprior": PriorName("VampPrior: mixture of q(z|u_k) at K learned pseudo-inputs",
                           has_pseudo_inputs=True, mixture=True),
    "vampprior_data": PriorName("VampPrior with K training images as pseudo-inputs "
                                "(fixed; learned from there with --trainable-pseudo-inputs)",
                                has_pseudo_inputs=True, mixture=True),
    "mog": PriorName("mixture of K learned diagonal Gaussians", mixture=True),
}

MODELS: dict[str, str] = {
    "vae": "one latent layer: gated MLP encoder and decoder",
    "hvae": "two latent layers (z1, z2), the prior on z2 (the paper's HVAE)",
    "convhvae": "the paper's convolutional HVAE (gated convolutions)",
    "pixelhvae": "the paper's PixelHVAE: the convolutional HVAE's encoders, a PixelCNN decoder",
}
CONV_MODELS = ("convhvae", "pixelhvae")
MODEL_LABELS = {"vae": "VAE", "hvae": "HVAE", "convhvae": "convHVAE", "pixelhvae": "PixelHVAE"}  # for people


def model_label(model: str) -> str:
    return MODEL_LABELS.get(model, model.upper())  # their MLP settings (hidden units, layers, activation) do not apply


def check_prior_name(name: str) -> str:
    return check_choice("prior", name, PRIORS)
