"""One run: train (or resume) and evaluate under a :class:`RunConfig`, writing everything into a
run directory. The command line (``vampprior train``) and the notebooks both call
:func:`run_experiment`.

A run directory holds:
  config.json      every setting (a directory is only ever reused for the same settings)
  checkpoint.npz   weights, optimizer state, best weights and training state (resume point)
  history.csv      one row per epoch
  test_ll.npy      per-image importance-sampled test log-likelihoods (nats)
  images.npz       test images and their reconstructions, samples, pseudo-inputs (for figures)
  metrics.json     the results; written last, so its presence means the run is complete
"""
from __future__ import annotations

import fcntl
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import RunConfig
from .datasets import Dataset, load_dataset
from .errors import ConfigError, TrainingError
from .estimators import ImportanceSampler, bits_per_dim, elbo
from .io import atomic_write_json, atomic_write_npy, atomic_write_npz, read_json
from .model import VAE, build_vae
from .provenance import provenance
from .training import Trainer


SUBSET_SEED = 20180412  # the same images for every run, whatever its own seed


def pick(images: np.ndarray, n: int | None) -> np.ndarray:
    """``n`` images drawn without replacement by a fixed seed, kept in file order; all if None.

    Not the first ``n``: the static-MNIST test file, for one, is sorted by digit."""
    if n is None or n >= len(images):
        return images
    keep = np.sort(np.random.default_rng(SUBSET_SEED).choice(len(images), n, replace=False))
    return images[keep]


def subset(dataset: Dataset, config: RunConfig) -> Dataset:
    """At most ``max_*`` images of each split (reduced budgets); the split itself is fixed."""
    return Dataset(dataset.name, pick(dataset.train, config.max_train),
                   pick(dataset.valid, config.max_valid), pick(dataset.test, config.max_test),
                   dataset.image_shape, dataset.likelihood, dataset.pseudo_init, dataset.sources)


def model_for(config: RunConfig, dataset: Dataset) -> VAE:
    if config.prior.startswith("vampprior") and config.components > len(dataset.train):
        raise ConfigError(f"{config.prior} with K={config.components} needs at most as many "
                          f"pseudo-inputs as training images ({len(dataset.train)}).")
    return build_vae(config.prior, dataset.input_dim, dataset.likelihood,
                     latent_dim=config.latent_dim, hidden_units=config.hidden_units,
                     num_layers=config.num_layers, activation=config.activation,
                     num_components=config.components, train_images=dataset.train,
                     pseudo_init=dataset.pseudo_init,
                     trainable_pseudo_inputs=config.trainable_pseudo_inputs, seed=config.seed)


# Free space a run may need: the largest (paper, K=1000) checkpoint is about 30 MB, and while one
# is replaced the old and the new copy both exist.
MIN_FREE_BYTES = 100 * 2**20


def prepare_run_dir(run_dir: Path, config: RunConfig) -> None:
    """Create ``run_dir`` or check that it holds a run of this very config."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"Cannot write to the run directory {run_dir}: {err.strerror}. "
                          f"Choose another --out.") from None
    free = shutil.disk_usage(run_dir).free
    if free < MIN_FREE_BYTES:
        raise ConfigError(f"Only {free / 2**20:.1f} MB free on the disk of {run_dir}; a run needs "
                          f"about {MIN_FREE_BYTES // 2**20} MB (a checkpoint exists twice while it "
                          f"is replaced). Free some space or choose another --out.")
    saved = run_dir / "config.json"
    if saved.exists():
        try:
            previous = read_json(saved)
        except ValueError:
            raise ConfigError(f"{saved} is not valid JSON; this is not a vae_lib run directory "
                              f"(or it was damaged). Choose another --out.") from None
        current = config.to_dict()
        changed = [f"{k}: {previous.get(k)!r} there, {current.get(k)!r} now"
                   for k in sorted(set(previous) | set(current)) if previous.get(k) != current.get(k)]
        if changed:
            raise ConfigError(f"{run_dir} holds a run with other settings ({'; '.join(changed)}). "
                              f"Use another run directory, or delete this one to start over.")
    elif any(run_dir.glob("*")):
        raise ConfigError(f"{run_dir} is not empty and holds no config.json: not a vae_lib run "
                          f"directory. Choose another --out.")
    else:
        atomic_write_json(saved, config.to_dict())


@contextmanager
def run_lock(run_dir: Path):
    """Only one process at a time may work in a run directory."""
    with open(run_dir / ".lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"Another process is running in {run_dir}. Wait for it to finish, "
                              f"or use another run directory.") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def is_complete(run_dir) -> bool:
    return (Path(run_dir) / "metrics.json").is_file()


def run_experiment(config: RunConfig, run_dir, data_dir=None, progress: bool = True,
                   dataset: Dataset | None = None, checkpoint_every_seconds: float = 30.0) -> dict:
    """Train (resuming from a checkpoint in ``run_dir`` if there is one) and evaluate.

    Returns the metrics; a run directory that is already complete is not touched again.
    """
    run_dir = Path(run_dir)
    prepare_run_dir(run_dir, config)
    with run_lock(run_dir):
        if is_complete(run_dir):
            return read_json(run_dir / "metrics.json")
        dataset = subset(dataset if dataset is not None else load_dataset(config.dataset, data_dir), config)
        model = model_for(config, dataset)
        trainer = Trainer(model, config, run_dir / "checkpoint.npz", run_dir / "history.csv",
                          progress=progress, checkpoint_every_seconds=checkpoint_every_seconds)
        state = trainer.fit(dataset.train, dataset.valid)

        started = time.perf_counter()
        sampler = ImportanceSampler(model, config.eval_samples, jit_compile=config.jit_compile)
        with _eval_bar(len(dataset.test), config, progress) as bar:
            test_ll = sampler(dataset.test, seed=config.seed, progress=bar)
        test_elbo = elbo(model, dataset.test, seed=config.seed)
        eval_seconds = time.perf_counter() - started
        images = example_images(model, dataset, config.seed)

        epoch_seconds = [row["seconds"] for row in state.history]
        metrics = dict(
            dataset=config.dataset, prior=config.prior, components=config.components,
            seed=config.seed, profile=config.profile, activation=config.activation,
            n_train=len(dataset.train), n_valid=len(dataset.valid), n_test=len(dataset.test),
            epochs_trained=state.epoch, best_epoch=state.best_epoch,
            stopped_early=state.stopped_early, best_valid_loss=state.best_loss,
            test_ll=float(np.mean(test_ll)),
            test_ll_stderr=float(np.std(test_ll, ddof=1) / np.sqrt(len(test_ll))) if len(test_ll) > 1 else float("nan"),
            test_elbo=float(np.mean(test_elbo)), eval_samples=config.eval_samples,
            train_seconds=state.train_seconds, eval_seconds=eval_seconds,
            seconds_per_epoch=float(np.median(epoch_seconds)) if epoch_seconds else float("nan"),
            config=config.to_dict(), data_sha256=dataset.sources, provenance=provenance())
        if dataset.likelihood == "logistic256":
            metrics["test_bits_per_dim"] = float(bits_per_dim(metrics["test_ll"], dataset.input_dim))
        try:
            atomic_write_npy(run_dir / "test_ll.npy", test_ll)
            atomic_write_npz(run_dir / "images.npz", **images)
            atomic_write_json(run_dir / "metrics.json", metrics)  # last: it marks a complete run
        except OSError as err:
            raise TrainingError(f"Could not write the results into {run_dir}: {err.strerror}. The "
                                f"trained model is kept in its checkpoint; free some space and rerun "
                                f"the same command to evaluate again.") from None
        return metrics


def example_images(model: VAE, dataset: Dataset, seed: int, n: int = 100) -> dict:
    """Arrays for figures: test images, their reconstructions, samples from the prior, and the
    VampPrior's pseudo-inputs where it has them (all (n, D) in [0, 1])."""
    import tensorflow as tf

    inputs = pick(dataset.test, n)
    arrays = dict(test_images=inputs, reconstructions=model(tf.constant(inputs)).numpy(),
                  samples=model.sample(n, tf.constant([seed, 7], tf.int64)).numpy(),
                  image_shape=np.array(dataset.image_shape))
    if hasattr(model.prior, "pseudo_inputs"):
        arrays["pseudo_inputs"] = model.prior.pseudo_inputs().numpy()[:n]
    return arrays


@contextmanager
def _eval_bar(total, config, enabled):
    from tqdm import tqdm

    bar = tqdm(total=total, desc=f"test LL (S={config.eval_samples})", unit="img",
               disable=not enabled, file=sys.stderr, mininterval=1.0, dynamic_ncols=True)
    try:
        yield bar
    finally:
        bar.close()


@dataclass
class FinishedRun:
    """A run directory read back: settings, results and the trained model (best weights)."""

    run_dir: Path
    config: RunConfig
    metrics: dict | None
    history: list
    test_ll: np.ndarray | None
    images: dict | None = None  # images.npz: test images, reconstructions, samples, pseudo-inputs
    model: VAE | None = None
    dataset: Dataset | None = None


def load_run(run_dir, data_dir=None, with_model=True, dataset: Dataset | None = None) -> FinishedRun:
    """Read a run directory; with ``with_model`` also rebuild its model with the best weights."""
    import csv

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise ConfigError(f"{run_dir} is not a run directory (no config.json).")
    config = RunConfig.from_dict(read_json(run_dir / "config.json"))
    metrics = read_json(run_dir / "metrics.json") if is_complete(run_dir) else None
    history = []
    if (run_dir / "history.csv").is_file():
        with open(run_dir / "history.csv") as f:
            history = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    test_ll = np.load(run_dir / "test_ll.npy") if (run_dir / "test_ll.npy").is_file() else None
    images = None
    if (run_dir / "images.npz").is_file():
        with np.load(run_dir / "images.npz") as f:
            images = {k: f[k] for k in f.files}
    result = FinishedRun(run_dir, config, metrics, history, test_ll, images)
    if with_model:
        data = subset(dataset if dataset is not None else load_dataset(config.dataset, data_dir), config)
        model = model_for(config, data)
        checkpoint = run_dir / "checkpoint.npz"
        if checkpoint.is_file():
            with np.load(checkpoint) as ckpt:
                key = "best" if "best_0" in ckpt.files else "model"
                model.set_weights([ckpt[f"{key}_{i}"] for i in range(len(model.weights))])
        result.model, result.dataset = model, data
    return result

