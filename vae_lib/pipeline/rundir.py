"""Run directories: their layout, their names, the checks before work starts in one, the lock that
keeps a second process out, and the light record of a finished run that is kept (and committed).

A run directory holds:
  config.json        every setting (a directory is only ever reused for the same settings)
  checkpoint.npz     weights, optimizer state, best weights and training state (resume point), with
                     the segments of its training (each start or resume: epoch, commit, threads)
  history.csv        one row per epoch
  test_ll.npz        per-image importance-sampled test log-likelihoods (nats) and effective sample sizes,
                     with S, the training they score (epochs, best epoch) and the sampling's seconds;
                     written as soon as sampled (a rerun after a later failure keeps it)
  test_ll.partial.npz  while sampling: the images done so far (every minute, and on an interruption);
                     a rerun goes on from them, and they are removed once test_ll.npz is written
  images.npz         test images and their reconstructions, samples, pseudo-inputs (8-bit, for figures)
  training.ipynb     the executed training and evaluation notebooks (runs made by `vampprior
  evaluation.ipynb   report`; records made before the two were split hold one experiment.ipynb)
  metrics.json       the results; written last, so its presence means the run is complete
The record of a run is all of it but the checkpoint and a partial test LL (:data:`RECORD_FILES`).
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .config import RunConfig, default_runs_dir
from ..errors import ConfigError
from .io import UNREADABLE_NPZ, atomic_write_bytes, atomic_write_json, read_json, remove_stale_temporaries
from .nbclean import portable

CONFIG, CHECKPOINT, HISTORY, TEST_LL, IMAGES, METRICS, FAILURE = (
    "config.json", "checkpoint.npz", "history.csv", "test_ll.npz", "images.npz", "metrics.json",
    "failure.json")
TEST_LL_PARTIAL = "test_ll.partial.npz"  # an interrupted sampling's images so far (not part of the record)
NOTEBOOKS = ("training.ipynb", "evaluation.ipynb", "experiment.ipynb")  # the last: older records
RECORD_FILES = (CONFIG, HISTORY, TEST_LL, IMAGES, *NOTEBOOKS, METRICS)


def failure_summary(failure: dict) -> str:
    """One line for a failure.json (or a results row of a failed cell): the error's type and the
    last line of its message, which is where an exception says what went wrong."""
    lines = (failure.get("message") or "").strip().splitlines()
    return f"{failure.get('error') or 'failed'}: {lines[-1] if lines else '(no message)'}"


# Free space a run may need: the largest (paper, K=1500) checkpoint is about 40 MB, and while one
# is replaced the old and the new copy both exist.
MIN_FREE_BYTES = 100 * 2**20

# Settings that every run directory name shows, and the short names of the others where they
# differ from the profile's defaults.
_SHORT = {"epochs": "ep", "warmup_epochs": "wu", "patience": "pat", "eval_samples": "S",
          "batch_size": "bs", "learning_rate": "lr", "latent_dim": "z", "hidden_units": "h",
          "num_layers": "L", "max_train": "ntrain", "max_valid": "nvalid", "max_test": "ntest",
          "min_steps": "minsteps", "trainable_pseudo_inputs": "learned", "jit_compile": "xla",
          "weight_init": "init", "kl_estimator": "kl", "optimizer": "opt", "activation": "act",
          "eval_matmuls": "evalmm"}


def changed_settings(config: RunConfig) -> dict:
    """The settings that differ from the profile's defaults (the dataset, model, prior, K and seed
    aside), e.g. ``{"weight_init": "he"}``."""
    return {key: value for key, value in config.differences_from_profile().items()
            if key not in ("model", "components", "seed")}


def changes_text(config: RunConfig) -> str:
    """:func:`changed_settings` for people, e.g. ``weight_init=he, trainable_pseudo_inputs=True``
    (empty for a run of the profile's own settings)."""
    return ", ".join(f"{key}={value}" for key, value in changed_settings(config).items())


def variant_of(config: RunConfig) -> str:
    """``<setting><value>`` for every changed setting (:func:`changed_settings`), joined by ``__``
    (empty for a run of the profile's own settings), e.g. ``inithe`` or ``ep100__wu25``: the part
    of a run directory's name that tells its variant."""
    return "__".join(f"{_SHORT.get(key, key)}{str(value).replace('.', 'p')}"
                     for key, value in changed_settings(config).items())


def run_dir_name(config: RunConfig) -> str:
    """``<dataset>__[<model>__]<prior>__K<K>__seed<seed>[__<variant>]``: two different configs
    never share a directory, and runs of the profile's own settings keep short names."""
    parts = [config.dataset] + ([config.model] if config.model != "vae" else []) + [
        config.prior, f"K{config.components}", f"seed{config.seed}"]
    variant = variant_of(config)
    return "__".join(parts + ([variant] if variant else []))


def default_run_dir(config: RunConfig) -> Path:
    """Where a run of ``config`` goes unless told: ``$VAE_RUNS_DIR`` (else ``runs``), then
    ``<profile>/<run_dir_name>``, where `vampprior report` trains its cells."""
    return Path(default_runs_dir()) / config.profile / run_dir_name(config)


def is_complete(run_dir) -> bool:
    return (Path(run_dir) / METRICS).is_file()


def sampled_so_far(run_dir) -> tuple[int, int] | None:
    """(images done, test images) of a test-LL sampling under way or interrupted in ``run_dir``,
    from what it last kept; None if it has kept nothing (or it cannot be read)."""
    try:
        with np.load(Path(run_dir) / TEST_LL_PARTIAL) as kept:
            return int(kept["done"]), int(kept["num_test"])
    except UNREADABLE_NPZ:  # none yet, or damaged
        return None


def read_config(run_dir) -> RunConfig:
    path = Path(run_dir) / CONFIG
    try:
        return RunConfig.from_dict(read_json(path))
    except ValueError:
        raise ConfigError(f"{path} is not valid JSON; this is not a vae_lib run directory "
                          f"(or it was damaged). Choose another directory.") from None


def check_writable(folder: Path, what: str, option: str) -> None:
    """Create ``folder`` if needed and write a file into it, or refuse (ConfigError) before any work
    is done; ``what`` names the folder and ``option`` the way to choose another. The file's name is
    this call's own: two jobs started together in one folder once shared a name, and one removed the
    other's file before that one could (a false "cannot write")."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
        os.write(handle, b"ok")
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise ConfigError(f"Cannot write to the {what} {folder}: {err.strerror}. "
                          f"Choose another {option}.") from None


def prepare_run_dir(run_dir: Path, config: RunConfig) -> None:
    """Create ``run_dir`` or check that it holds a run of this very config."""
    run_dir = Path(run_dir)
    check_writable(run_dir, "run directory", "--out")
    free = shutil.disk_usage(run_dir).free
    if free < MIN_FREE_BYTES:
        raise ConfigError(f"Only {free / 2**20:.1f} MB free on the disk of {run_dir}; a run needs "
                          f"about {MIN_FREE_BYTES // 2**20} MB (a checkpoint exists twice while it "
                          f"is replaced). Free some space or choose another --out.")
    saved = run_dir / CONFIG
    if saved.exists():
        previous = read_config(run_dir).to_dict()  # settings it lacks take their defaults
        current = config.to_dict()
        changed = [f"{k}: {previous.get(k)!r} there, {current.get(k)!r} now"
                   for k in sorted(current) if previous.get(k) != current.get(k)]
        if changed:
            raise ConfigError(f"{run_dir} holds a run with other settings ({'; '.join(changed)}). "
                              f"Use another run directory, or delete this one to start over.")
    elif any(run_dir.glob("*")):
        raise ConfigError(f"{run_dir} is not empty and holds no {CONFIG}: not a vae_lib run "
                          f"directory. Choose another --out.")
    else:
        atomic_write_json(saved, config.to_dict())


# Two locks (flocks: the kernel releases them when their holder dies, however it dies). LOCK: held
# by the process that trains and evaluates in a run directory. RUNNER_LOCK: held by a main job for
# as long as it runs a cell's notebook there, from before the notebook's kernel starts (seconds of
# imports) until the record is kept, so that a second job started meanwhile leaves the cell alone.
LOCK, RUNNER_LOCK = ".lock", ".runner.lock"


def _flock(handle, mode, patience: float = 2.0) -> bool:
    """Take a non-blocking flock, trying again for ``patience`` seconds (a probe of
    :func:`is_locked` holds a shared lock for an instant); False if it stays taken."""
    give_up = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > give_up:
                return False
            time.sleep(0.05)


@contextmanager
def _holding(path: Path):
    """Inside, this process holds the exclusive flock of ``path`` if it yields True; False: another
    process holds it."""
    with open(path, "a") as handle:
        if not _flock(handle, fcntl.LOCK_EX):
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def run_lock(run_dir: Path):
    """Only one process at a time may work in a run directory. The new holder deletes what a
    killed one was writing."""
    with _holding(Path(run_dir) / LOCK) as ours:
        if not ours:
            raise ConfigError(_busy_message(run_dir))
        remove_stale_temporaries(run_dir)
        yield


def _busy_message(run_dir) -> str:
    return f"Another process is running in {run_dir}. Wait for it to finish, or use another run directory."


def runner_lock(run_dir: Path):
    """A context: inside, this process holds ``run_dir``'s RUNNER_LOCK if it yields True; False:
    another main job (or `vampprior train`) holds it."""
    return _holding(Path(run_dir) / RUNNER_LOCK)


@contextmanager
def claimed(run_dir: Path):
    """`vampprior train`'s claim on a prepared run directory, as a main job claims a cell's: the
    RUNNER_LOCK, else a ConfigError. Without it a train started while a main job's kernel was still
    importing could take the run lock first, and that job would record a failure for a running cell."""
    with runner_lock(run_dir) as ours:
        if not ours:
            raise ConfigError(_busy_message(run_dir))
        yield


def is_locked(run_dir: Path) -> bool:
    """Whether another process works in ``run_dir`` now (holds either lock). Reads only: a shared
    flock taken and dropped at once; a lock file it cannot open counts as free."""
    for name in (LOCK, RUNNER_LOCK):
        try:
            with open(Path(run_dir) / name) as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    return True
                fcntl.flock(handle, fcntl.LOCK_UN)
        except OSError:  # no lock file (never run), not a directory, not readable
            continue
    return False


def copy_record(run_dir: Path, record_dir: Path) -> bool:
    """Copy the record of the run in ``run_dir`` (everything but the checkpoint) to ``record_dir``.
    A complete run's metrics.json comes last (a record is complete exactly when it has one) and
    replaces an earlier failure; a failed run's record keeps its failure.json and notebook. A run
    that did not complete never touches a complete record (a failed ``--rerun`` would otherwise
    leave the old metrics beside the new history and hide its failure): False then, and the
    failure stays in ``run_dir``."""
    run_dir, record_dir = Path(run_dir), Path(record_dir)
    complete = is_complete(run_dir)
    if not complete and is_complete(record_dir):
        return False
    record_dir.mkdir(parents=True, exist_ok=True)
    for name in RECORD_FILES + (FAILURE,):
        if name != METRICS and (run_dir / name).is_file() and not (complete and name == FAILURE):
            if name in NOTEBOOKS:
                _copy_portable_notebook(run_dir / name, record_dir / name)
            else:
                shutil.copyfile(run_dir / name, record_dir / name)
    if complete:
        (record_dir / FAILURE).unlink(missing_ok=True)
        shutil.copyfile(run_dir / METRICS, record_dir / METRICS)
    return True


def _copy_portable_notebook(source: Path, target: Path) -> None:
    """Copy an executed notebook without this machine's paths or TensorFlow's start-up lines."""
    notebook = portable(json.loads(source.read_text()))
    atomic_write_bytes(target, (json.dumps(notebook, indent=1, ensure_ascii=False) + "\n").encode())
