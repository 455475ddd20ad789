"""Runs read back: settings, results, per-image log-likelihoods, figures' images and, where the
checkpoint is there, the trained model. The report and the notebooks read runs only through here.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .config import RunConfig
from ..datasets import Dataset, load_dataset
from ..errors import ConfigError
from .io import read_json
from .rundir import CHECKPOINT, CONFIG, HISTORY, IMAGES, METRICS, TEST_LL, is_complete, read_config

if TYPE_CHECKING:  # the model code (TensorFlow) loads only when a model is rebuilt
    from ..models import LatentVariableModel


def training_seconds(metrics: dict) -> float:
    """Epochs x the median epoch time: a run's training compute, unaffected by the wall-clock time
    it spent stopped (metrics' ``train_seconds`` is the raw sum; paper runs pause for benchmarks)."""
    return metrics["epochs_trained"] * metrics["seconds_per_epoch"]


@dataclass
class FinishedRun:
    """A run directory (or a run's record) read back."""

    run_dir: Path
    config: RunConfig
    metrics: dict | None
    history: list
    test_ll: np.ndarray | None  # per-image log p(x), nats
    ess: np.ndarray | None = None  # per-image effective sample size of the importance weights
    images: dict | None = None  # images.npz: test images, reconstructions, samples, pseudo-inputs in [0, 1]
    model: LatentVariableModel | None = None
    dataset: Dataset | None = None


def read_test_ll(run_dir) -> tuple[np.ndarray, np.ndarray] | None:
    """(per-image log p(x), per-image ESS), or None where the run has not been evaluated."""
    path = Path(run_dir) / TEST_LL
    if not path.is_file():
        return None
    with np.load(path) as f:
        return f["log_px"], f["ess"]


def read_images(run_dir) -> dict | None:
    """The figures' images as float32 in [0, 1] (stored as 8-bit grey levels)."""
    path = Path(run_dir) / IMAGES
    if not path.is_file():
        return None
    with np.load(path) as f:
        return {k: (f[k].astype(np.float32) / 255 if f[k].dtype == np.uint8 else f[k]) for k in f.files}


def checkpoint_state(run_dir) -> dict | None:
    """The training state saved with the run's last checkpoint (epoch, step, best_epoch, best_loss,
    stopped_early, history...; schedule.TrainState), or None: no checkpoint yet, or unreadable."""
    import json
    import zipfile

    try:
        with np.load(Path(run_dir) / CHECKPOINT) as ckpt:
            return json.loads(str(ckpt["state"]))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def checkpoint_epoch(run_dir) -> int:
    """The epoch of the run's last checkpoint (0: none yet, or unreadable while it is replaced)."""
    state = checkpoint_state(run_dir)
    return int(state["epoch"]) if state else 0


def read_history(run_dir) -> list[dict]:
    path = Path(run_dir) / HISTORY
    if not path.is_file():
        return []
    with open(path) as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def load_run(run_dir, data_dir=None, with_model=True, dataset: Dataset | None = None) -> FinishedRun:
    """Read a run directory; with ``with_model`` also rebuild its model with the best weights."""
    from .build import load_trained_model, reduced_splits

    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise ConfigError(f"{run_dir} is not a run directory (no {CONFIG}).")
    config = read_config(run_dir)
    metrics = read_json(run_dir / METRICS) if is_complete(run_dir) else None
    ll = read_test_ll(run_dir)
    result = FinishedRun(run_dir, config, metrics, read_history(run_dir),
                         None if ll is None else ll[0], None if ll is None else ll[1],
                         read_images(run_dir))
    if with_model:
        checkpoint = run_dir / CHECKPOINT
        if not checkpoint.is_file():
            raise ConfigError(f"{run_dir} has no {CHECKPOINT} (a record keeps no weights); "
                              f"train the run again to get its model.")
        data = reduced_splits(dataset if dataset is not None else load_dataset(config.dataset, data_dir), config)
        result.model, result.dataset = load_trained_model(run_dir, config, data), data
    return result
