"""The names the project accepts for its priors, models, activations and initialisations: the one
place that registers them. The command line, the configs, the grid and the report read these tables.

A name maps to a spec whose ``builder`` says where the function that builds it lives
(``"package.module:function"``), imported at the first build. So this module loads no TensorFlow: a
grid driver, a Dask worker or ``vampprior report`` knows and checks every name without the seconds
TensorFlow takes to import (only the notebooks' kernels train).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from ..errors import check_choice


@dataclass(frozen=True)
class Spec:
    builder: str  # "package.module:function"
    description: str

    @property
    def build(self) -> Callable:
        module, function = self.builder.split(":")
        return getattr(importlib.import_module(module), function)


@dataclass(frozen=True)
class ModelSpec(Spec):
    pass


@dataclass(frozen=True)
class PriorSpec(Spec):
    has_pseudo_inputs: bool = False  # a VampPrior: K inputs go through the encoder at every step
    mixture: bool = False  # a K-component Gaussian mixture density


PRIORS: dict[str, PriorSpec] = {
    "standard": PriorSpec("vae_lib.priors:build_standard", "N(0, I)"),
    "vampprior": PriorSpec("vae_lib.priors:build_vampprior",
                           "VampPrior: mixture of q(z|u_k) at K learned pseudo-inputs",
                           has_pseudo_inputs=True, mixture=True),
    "vampprior_data": PriorSpec("vae_lib.priors:build_vampprior_data",
                                "VampPrior with K training images as pseudo-inputs "
                                "(fixed; learned from there with --trainable-pseudo-inputs)",
                                has_pseudo_inputs=True, mixture=True),
    "mog": PriorSpec("vae_lib.priors:build_mog", "mixture of K learned diagonal Gaussians", mixture=True),
}

MODELS: dict[str, ModelSpec] = {
    "vae": ModelSpec("vae_lib.models:assemble_vae", "one latent layer: gated MLP encoder and decoder"),
    "hvae": ModelSpec("vae_lib.models:assemble_hvae",
                      "two latent layers (z1, z2), the prior on z2 (the paper's HVAE)"),
}

ACTIVATIONS = ("gated", "relu")
# "glorot": Glorot/Xavier uniform weights (Keras' default; a fused layer draws each of its blocks
# as the separate layer it stands for), zero biases.
# "he": the paper's code (jmtomczak/vae_vampprior, utils/nn.py he_init): weights ~ N(0, 2 / fan_in),
# biases as PyTorch's nn.Linear leaves them, ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
WEIGHT_INITS = ("glorot", "he")


def check_prior_name(name: str) -> str:
    return check_choice("prior", name, PRIORS)
