"""The paper's training schedule in plain Python (no TensorFlow, so that the pipeline's status can
read a running cell's checkpoint with it): the KL warm-up's weight, and the early-stopping rule of
the paper's code with the epoch at which it ends a run that no longer improves. The Keras
callbacks (:mod:`vae_lib.callbacks`) and the paper-protocol trainer both use these functions."""
from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    best_loss: float = math.inf
    best_epoch: int = 0
    wait: int = 0  # epochs without a better validation loss, counted from max(best, warm-up - 1)
    stopped_early: bool = False
    train_seconds: float = 0.0
    history: list = field(default_factory=list)
    segments: list = field(default_factory=list)  # one per start or resume: what trained from when


def kl_weight(epoch: int, warmup_epochs: int) -> float:
    """beta of epoch ``epoch`` (1-based): rises linearly to 1 over ``warmup_epochs``."""
    return 1.0 if warmup_epochs <= 0 else min(1.0, epoch / warmup_epochs)


def last_epoch(best_epoch: int, warmup_epochs: int, patience: int) -> int:
    """The epoch at which early stopping ends a run whose best validation loss came at
    ``best_epoch``, unless a later epoch improves on it: epochs are counted from the best one, but
    not before epoch ``warmup_epochs - 1`` (the paper's code resets its counter after every epoch
    before ``warmup_epochs``), and the run stops at the ``patience + 1``-th of them."""
    return max(best_epoch, warmup_epochs - 1) + patience + 1


def projected_end(epoch: int, best_epoch: int, cap: int, warmup_epochs: int, patience: int) -> int:
    """The epoch at which a run now at ``epoch`` ends unless a later epoch improves on
    ``best_epoch`` (:func:`last_epoch`), at most ``cap``."""
    return min(cap, max(epoch, last_epoch(best_epoch, warmup_epochs, patience)))


def early_stopping_update(state: TrainState, epoch: int, valid_loss: float, warmup_epochs: int,
                          patience: int) -> bool:
    """Book-keeping of the paper's early stopping (utils/perform_experiment.py in its code) after
    epoch ``epoch``: only a strictly lower validation loss is better; see :func:`last_epoch`.
    Returns True when this epoch is the best so far (its weights are then kept)."""
    if valid_loss < state.best_loss:
        state.best_loss, state.best_epoch, state.wait = valid_loss, epoch, 0
        return True
    state.wait = max(0, epoch - max(state.best_epoch, warmup_epochs - 1))
    state.stopped_early = epoch >= last_epoch(state.best_epoch, warmup_epochs, patience)
    return False
