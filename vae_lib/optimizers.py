"""The paper code's optimizer, for ``model.compile(optimizer=...)``."""
from __future__ import annotations

import keras
from keras import ops


def normalize_gradients(grads):
    """Each gradient tensor divided by its L2 norm (+ 1e-7)."""
    return [g / (ops.sqrt(ops.sum(g * g)) + 1e-7) for g in grads]


@keras.saving.register_keras_serializable(package="vae_lib")
class AdamNormGrad(keras.optimizers.Adam):
    """Adam on normalised gradients: each gradient tensor is divided by its L2 norm (+ 1e-7) before
    the Adam update, as the paper's code does (AdamNormGrad, utils/optimizer.py there)."""

    def apply(self, grads, trainable_variables=None):
        return super().apply(normalize_gradients(grads), trainable_variables)
