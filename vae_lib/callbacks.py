"""Keras callbacks for the paper's training protocol: the KL warm-up and its early-stopping rule.

    model.fit(x_train, validation_data=(x_valid,), epochs=2000,
              callbacks=[vae_lib.KLWarmup(100), vae_lib.PaperEarlyStopping(patience=50, warmup_epochs=100)])

Both read their rules from :mod:`vae_lib.schedule`, as the paper-protocol trainer does.
"""
from __future__ import annotations

import keras

from .errors import check_count
from .schedule import TrainState, early_stopping_update, kl_weight


class KLWarmup(keras.callbacks.Callback):
    """The KL warm-up: the rate's weight (``model.kl_weight``) rises linearly from 1/``epochs`` in
    the first epoch to 1 at epoch ``epochs`` and stays there; ``fit`` logs it as ``kl_weight``."""

    def __init__(self, epochs: int = 100):
        super().__init__()
        self.epochs = check_count("number of KL warm-up epochs", epochs, 0)

    def on_epoch_begin(self, epoch, logs=None):
        self.model.kl_weight.assign(kl_weight(epoch + 1, self.epochs))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["kl_weight"] = kl_weight(epoch + 1, self.epochs)


class PaperEarlyStopping(keras.callbacks.Callback):
    """Early stopping as the paper's code does it: only a strictly lower ``monitor`` (default
    ``val_loss``, the negative ELBO) is better; epochs without a better one are counted from the
    best epoch, but not before epoch ``warmup_epochs - 1``; training stops at the ``patience +
    1``-th of them, and the best epoch's weights are restored (``restore_best_weights``).

    Unlike ``keras.callbacks.EarlyStopping(start_from_epoch=...)``, the best epoch is tracked
    during the warm-up too (a run can stop ``patience + 1`` epochs after the warm-up ends, when the
    best epoch came inside it)."""

    def __init__(self, patience: int = 50, warmup_epochs: int = 100, monitor: str = "val_loss",
                 restore_best_weights: bool = True):
        super().__init__()
        self.patience = check_count("patience (epochs)", patience, 0)
        self.warmup_epochs = check_count("number of warm-up epochs", warmup_epochs, 0)
        self.monitor = monitor
        self.restore_best_weights = restore_best_weights

    def on_train_begin(self, logs=None):
        self.state, self.best_weights = TrainState(), None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise ValueError(f"PaperEarlyStopping monitors {self.monitor!r}, which fit did not log "
                             f"(logged: {', '.join(sorted(logs or {}))}); pass validation_data "
                             f"to fit, or choose another monitor.")
        if early_stopping_update(self.state, epoch + 1, float(value), self.warmup_epochs, self.patience):
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
        if self.state.stopped_early:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)

    @property
    def best_epoch(self) -> int:
        """The 1-based epoch whose weights were kept (0 before the first epoch)."""
        return self.state.best_epoch
