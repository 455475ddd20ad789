"""The paper-protocol trainer: the model's own gradient step (the one ``fit`` runs) on the
negative ELBO, weighed by the KL warm-up and stopped early on the validation loss (both rules in
:mod:`vae_lib.schedule`), restore of the best weights, and checkpoints from which an interrupted
run, even one killed mid-epoch, resumes exactly.

Randomness is a function of (seed, epoch, step) only: the batch order of epoch e comes from
``default_rng([seed, e])``, the noise of step t from the "train" stream at counter t (and, for a
dynamically binarized dataset, the batch's binary pixels from the "binarize" stream at t), the
validation noise from the "valid" stream (:mod:`vae_lib.seeds`). A resumed run therefore replays
what an uninterrupted run would have done.
"""
from __future__ import annotations

import errno
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import tensorflow as tf

from ..densities import RNG_ALG
from ..errors import ConfigError, TrainingError
from ..progress import progress_bar
from ..schedule import TrainState, early_stopping_update, kl_weight, projected_end
from ..seeds import stream_key
from .build import optimizer_for
from .config import RunConfig
from .io import atomic_write_csv, atomic_write_npz

HISTORY_COLUMNS = ["epoch", "train_loss", "train_distortion", "train_rate", "kl_weight",
                   "valid_loss", "seconds"]


def _write_advice(code: int | None, folder: Path) -> str:
    """What to do about a checkpoint that could not be written, by the error's cause."""
    if code == errno.ENOENT:
        return f"its folder {folder} is gone (was the run directory moved or deleted?): put it back"
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"make {folder} writable"
    if code in (errno.ENOSPC, errno.EDQUOT):
        return "free some space"
    return "fix the cause above"


def binarize(grey, seed, step):
    """Dynamic binarization: each pixel ~ Bernoulli(grey level), drawn from the "binarize" stream at
    counter ``step``, so every step sees fresh bits and a resumed run the same ones."""
    bits_seed = tf.stack([tf.constant(stream_key(seed, "binarize"), tf.int64), tf.cast(step, tf.int64)])
    return tf.cast(tf.random.stateless_uniform(tf.shape(grey), bits_seed, alg=RNG_ALG) < grey, grey.dtype)


class Trainer:
    """Trains ``model`` under ``config``; with ``checkpoint_path`` it saves and resumes there."""

    def __init__(self, model, config: RunConfig, checkpoint_path=None, history_path=None,
                 progress: bool = True, checkpoint_every_seconds: float = 30.0,
                 binarize: bool = False):
        """``binarize``: the training images are grey levels, binarized afresh at every step (each
        pixel ~ Bernoulli(grey level); the dataset says so, see ``Dataset.dynamic_binarization``)."""
        if model.seed != config.seed:
            raise ConfigError(f"The model's noise seed is {model.seed}, the run's {config.seed}: build "
                              f"the model for this config (vae_lib.pipeline.build.build_model).")
        self.model, self.config, self.binarize = model, config, binarize
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        self.history_path = Path(history_path) if history_path else None
        self.progress = progress
        self.checkpoint_every_seconds = checkpoint_every_seconds
        model.compile(optimizer=optimizer_for(config))
        self.optimizer = model.optimizer
        self.optimizer.build(model.trainable_variables)
        self.state = TrainState()
        self.best_weights = None  # numpy copies of model.weights at the best epoch
        self._saved_epoch = 0  # the epoch of the checkpoint on disk
        # autograph=False: the steps hold no Python control flow on tensors, and converting the
        # model's code to graph code cost about 1 s of a 5 s smoke run
        compile_ = dict(jit_compile=config.jit_compile, autograph=False)
        self._train_steps = tf.function(self._train_steps_fn, **compile_)
        self._eval_step = tf.function(self._eval_step_fn, **compile_)
        if self.checkpoint_path and self.checkpoint_path.exists():
            self._load_checkpoint()

    # -- compiled steps ----------------------------------------------------------------------
    def _train_step_fn(self, data, index, step, beta):
        x = tf.gather(data, index)
        if self.binarize:
            x = binarize(x, self.config.seed, step)
        loss, distortion, rate = self.model.gradient_step(x, self.model.noise_seed("train", step), beta)
        return tf.stack([loss, tf.reduce_mean(distortion), tf.reduce_mean(rate)])

    def _train_steps_fn(self, data, batches, first_step, beta):
        """len(batches) optimizer steps in one compiled call (a loop inside the graph, so no
        Python work per step); step i draws its noise from the "train" stream at first_step + i.
        Returns the (steps, 3) loss, distortion and rate of each step."""
        steps = tf.shape(batches)[0]

        def body(i, out):
            losses = self._train_step_fn(data, batches[i], first_step + tf.cast(i, tf.int64), beta)
            return i + 1, out.write(i, losses)

        _, out = tf.while_loop(lambda i, _: i < steps, body,
                               (tf.constant(0), tf.TensorArray(tf.float32, size=steps)),
                               maximum_iterations=steps)
        return out.stack()

    def _eval_step_fn(self, x, seed):
        distortion, rate = self.model.elbo_terms(x, seed)
        return tf.reduce_sum(distortion + rate)

    # -- public ------------------------------------------------------------------------------
    def validation_loss(self, images, epoch: int, batch_size=1000) -> float:
        """Mean negative ELBO (KL weight 1) over ``images``, with the noise of ``epoch``."""
        key = stream_key(self.config.seed, "valid")
        total = 0.0
        for start in range(0, len(images), batch_size):
            total += float(self._eval_step(images[start:start + batch_size],
                                           tf.constant([key, epoch * 2**24 + start], tf.int64)))
        return total / len(images)

    def train_epoch(self, data: tf.Tensor, epoch: int, beta: float) -> np.ndarray:
        """One pass over ``data`` in the batch order of ``epoch``: (steps, 3) array of loss,
        distortion and rate per step. Does not advance ``state``."""
        cfg = self.config
        order = np.random.default_rng([cfg.seed, epoch]).permutation(int(data.shape[0]))
        full = len(order) // cfg.batch_size * cfg.batch_size
        # full batches in one call, a smaller last batch (if any) in another
        parts = [order[:full].reshape(-1, cfg.batch_size), order[full:][None]]
        step, losses = self.state.step, []
        for batches in parts:
            if batches.size:
                losses.append(self._train_steps(data, tf.constant(batches, tf.int32),
                                                tf.constant(step, tf.int64), tf.constant(beta)))
                step += len(batches)
        return np.concatenate([t.numpy() for t in losses])

    def finished(self, num_train: int) -> bool:
        """Whether training is over: stopped early, or at the epoch cap for ``num_train`` images."""
        return self.state.stopped_early or self.state.epoch >= self.config.epochs_for(num_train)

    def fit(self, train: np.ndarray, valid: np.ndarray) -> TrainState:
        cfg, state = self.config, self.state
        self._check_pixels(train, valid)
        data = tf.constant(train, tf.float32)
        valid = tf.constant(valid, tf.float32)
        max_epochs = cfg.epochs_for(len(train))
        done = self.finished(len(train))
        # The bar ends where early stopping would end the run if no later epoch improved (it moves
        # on as the run improves), not at the cap of 2000 epochs: its ETA is then a lower bound that
        # means something, where the cap's is tens of hours for a run that stops after a few hundred.
        bar = progress_bar(self._projected_end(max_epochs), f"{cfg.dataset}/{cfg.model}/{cfg.prior}",
                           "epoch", enabled=self.progress and not done, initial=state.epoch)
        last_save = time.monotonic()
        while not done:
            epoch = state.epoch + 1
            beta = kl_weight(epoch, cfg.warmup_epochs)
            started = time.perf_counter()
            losses = self.train_epoch(data, epoch, beta)
            self._check_finite(losses[:, 0], epoch)
            valid_loss = self.validation_loss(valid, epoch)
            self._check_finite(np.array([valid_loss]), epoch, what="validation loss")
            seconds = time.perf_counter() - started

            state.epoch, state.step = epoch, state.step + len(losses)
            state.train_seconds += seconds
            sizes = np.diff(np.append(np.arange(0, len(train), cfg.batch_size), len(train)))
            train_loss, distortion, rate = np.average(losses, axis=0, weights=sizes)
            state.history.append(dict(epoch=epoch, train_loss=float(train_loss),
                                      train_distortion=float(distortion), train_rate=float(rate),
                                      kl_weight=beta, valid_loss=valid_loss, seconds=seconds))
            if early_stopping_update(state, epoch, valid_loss, cfg.warmup_epochs, cfg.patience):
                self.best_weights = [w.numpy() for w in self.model.weights]
            done = state.stopped_early or epoch >= max_epochs
            if done or time.monotonic() - last_save >= self.checkpoint_every_seconds:
                self.save_checkpoint()
                last_save = time.monotonic()
            bar.total = self._projected_end(max_epochs)
            bar.set_postfix(loss=f"{train_loss:.2f}", valid=f"{valid_loss:.2f}",
                            best=f"{state.best_loss:.2f}@{state.best_epoch}", refresh=False)
            bar.update(1)
        bar.close()
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)
        return state

    def _projected_end(self, max_epochs: int) -> int:
        return projected_end(self.state.epoch, self.state.best_epoch, max_epochs,
                             self.config.warmup_epochs, self.config.patience)

    # -- checkpoints ---------------------------------------------------------------------------
    def save_checkpoint(self):
        if not self.checkpoint_path:
            return
        arrays = {f"model_{i}": w.numpy() for i, w in enumerate(self.model.weights)}
        arrays.update({f"optimizer_{i}": v.numpy() for i, v in enumerate(self.optimizer.variables)})
        if self.best_weights is not None:
            arrays.update({f"best_{i}": w for i, w in enumerate(self.best_weights)})
        arrays["state"] = np.array(json.dumps(asdict(self.state)))
        try:
            atomic_write_npz(self.checkpoint_path, **arrays)
            self._saved_epoch = self.state.epoch  # (its history is inside; history.csv is a copy)
            if self.history_path:
                atomic_write_csv(self.history_path, self.state.history, HISTORY_COLUMNS)
        except OSError as err:
            kept = (f"The last checkpoint written (epoch {self._saved_epoch}) is intact"
                    if self._saved_epoch else "No checkpoint was written before")
            raise TrainingError(f"Could not write the checkpoint {self.checkpoint_path} or its history "
                                f"after epoch {self.state.epoch}: {err.strerror}. {kept}; "
                                f"{_write_advice(err.errno, Path(self.checkpoint_path).parent)} and "
                                f"rerun the same command to resume.") from None

    def _load_checkpoint(self):
        with np.load(self.checkpoint_path) as ckpt:
            state = json.loads(str(ckpt["state"]))
            model_vars, opt_vars = self.model.weights, self.optimizer.variables
            expected = {f"model_{i}" for i in range(len(model_vars))} | {
                f"optimizer_{i}" for i in range(len(opt_vars))}
            missing = expected - set(ckpt.files)
            if missing:
                raise TrainingError(f"The checkpoint {self.checkpoint_path} does not fit this model "
                                    f"({len(missing)} arrays missing). Use a new run directory.")
            for i, var in enumerate(model_vars):
                var.assign(ckpt[f"model_{i}"])
            for i, var in enumerate(opt_vars):
                var.assign(ckpt[f"optimizer_{i}"])
            if "best_0" in ckpt.files:
                self.best_weights = [ckpt[f"best_{i}"] for i in range(len(model_vars))]
        self.state = TrainState(**state)
        self._saved_epoch = self.state.epoch

    def _check_pixels(self, train, valid):
        """Bernoulli pixels must be bits by the time the model sees them: a grey training set is
        binarized at every step (``binarize``), and validation images must already be bits. Grey
        levels under a Bernoulli likelihood would train and score something that is not a
        log-likelihood of binary images, without any error."""
        bernoulli = self.model.likelihood.name == "bernoulli"
        if self.binarize and not bernoulli:
            raise ConfigError(f"binarize=True is for a Bernoulli likelihood; this model's is "
                              f"{self.model.likelihood.name}.")
        if not bernoulli:
            return
        checks = [("validation", valid, "binarize them once with a fixed seed")]
        if not self.binarize:  # (binarized at every step otherwise)
            checks.insert(0, ("training", train, "pass binarize=True (the dataset's "
                              "dynamic_binarization says so; run_experiment does) or binarize them"))
        for name, images, fix in checks:
            if np.any((images > 0) & (images < 1)):
                raise ConfigError(f"The {name} images have grey levels, but the model's likelihood is "
                                  f"Bernoulli (binary pixels): {fix}.")

    def _check_finite(self, values, epoch, what="training loss"):
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            kept = (f"The last good checkpoint (epoch {self._saved_epoch}) is kept in "
                    f"{self.checkpoint_path}." if self._saved_epoch else "No checkpoint was written before it.")
            where = f"step {bad[0] + 1} of epoch {epoch}" if len(values) > 1 else f"epoch {epoch}"
            raise TrainingError(f"The {what} became {values[bad[0]]} at {where}. {kept} "
                                f"Try a lower learning rate or another seed.")
