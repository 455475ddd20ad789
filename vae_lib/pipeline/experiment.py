"""One run: train (or resume) it under a :class:`RunConfig`, then evaluate it, each writing into
its run directory (layout: :mod:`vae_lib.pipeline.rundir`). The training and evaluation notebooks
call :func:`train_run` and :func:`evaluate_run`; the command line (``vampprior train``) calls both
through :func:`run_experiment`.
"""
from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path

import numpy as np

from ..datasets import Dataset, load_dataset
from ..errors import ConfigError, TrainingError
from ..estimators import ImportanceResult, ImportanceSampler, bits_per_dim, elbo
from ..models import LatentVariableModel
from ..progress import progress_bar
from ..seeds import stateless_seed
from .build import SUBSET_SEED, build_model, load_trained_model, reduced_splits
from .config import RunConfig
from .io import UNREADABLE_NPZ, atomic_write_json, atomic_write_npz, read_json
from .provenance import git_state, hardware, hardware_label, provenance
from .records import checkpoint_state
from .rundir import (CHECKPOINT, HISTORY, IMAGES, METRICS, TEST_LL, TEST_LL_PARTIAL, is_complete,
                     prepare_run_dir, read_config, run_lock)
from .trainer import Trainer

def use_threads(threads: int | None) -> int:
    """Hold TensorFlow to ``threads`` threads (None: its default, every core) and return the number
    it uses. Must come before TensorFlow runs its first operation in this process; after that the
    count cannot change, and asking for another one is an error."""
    import tensorflow as tf

    current = tf.config.threading.get_intra_op_parallelism_threads()
    if threads and threads != current:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            raise ConfigError(f"TensorFlow already runs with {current or 'its default number of'} "
                              f"threads in this process; {threads} can only be set before its first "
                              f"operation (restart the kernel).") from None
    # TensorFlow's default is the cores this process may run on (its affinity), not every core
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return tf.config.threading.get_intra_op_parallelism_threads() or usable


def train_run(config: RunConfig, run_dir, data_dir=None, progress: bool = True,
              dataset: Dataset | None = None, checkpoint_every_seconds: float = 30.0,
              threads: int | None = None):
    """Train the run of ``config`` in ``run_dir`` (resuming from its checkpoint if there is one)
    with TensorFlow held to ``threads`` threads (see :func:`use_threads`), and return its training
    state. Each start and each resume adds a segment to the state (the epoch it starts from, the
    code's commit and whether it was modified, the threads), so that a record names all the code
    that trained it. A run that has finished training is not trained again."""
    run_dir = Path(run_dir)
    prepare_run_dir(run_dir, config)
    with run_lock(run_dir):
        dataset = reduced_splits(dataset if dataset is not None else load_dataset(config.dataset, data_dir), config)
        threads = use_threads(threads)
        trainer = Trainer(build_model(config, dataset), config, run_dir / CHECKPOINT, run_dir / HISTORY,
                          progress=progress, checkpoint_every_seconds=checkpoint_every_seconds,
                          binarize=dataset.dynamic_binarization)
        if not trainer.finished(len(dataset.train)):
            trainer.state.segments.append(_segment(threads, from_epoch=trainer.state.epoch))
        trainer.fit(dataset.train, dataset.valid)
        return trainer.state


def evaluate_run(run_dir, data_dir=None, progress: bool = True, dataset: Dataset | None = None,
                 threads: int | None = None) -> dict:
    """Evaluate the trained run in ``run_dir`` (its best weights, from its checkpoint): the
    importance-sampled test log-likelihood with the run's S, the test ELBO and the figures'
    images, written into the run directory with ``metrics.json`` last. Returns the metrics; a
    complete run directory is not touched again."""
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    with run_lock(run_dir):
        if is_complete(run_dir):
            return read_json(run_dir / METRICS)
        state = checkpoint_state(run_dir)
        dataset = reduced_splits(dataset if dataset is not None else load_dataset(config.dataset, data_dir), config)
        if state is None or not (state["stopped_early"] or state["epoch"] >= config.epochs_for(len(dataset.train))):
            where = f"it is at epoch {state['epoch']}" if state else "it has no checkpoint"
            raise TrainingError(f"{run_dir} is not trained yet ({where}): train it first (the training "
                                f"notebook with the same parameters, or `vampprior train`).")
        threads = use_threads(threads)
        model = load_trained_model(run_dir, config, dataset)
        trained = dict(num_samples=config.eval_samples, num_test=len(dataset.test),
                       epochs_trained=state["epoch"], best_epoch=state["best_epoch"])
        result, sampling_seconds, sampling_segments = kept_evaluation(run_dir, trained)
        if result is None:
            sampler = ImportanceSampler(model, config.eval_samples, jit_compile=config.jit_compile,
                                        matmul_inputs=config.eval_matmuls)
            result, sampling_seconds, sampling_segments = sample_test_ll(
                sampler, dataset.test, config.seed, run_dir, trained, progress, threads)
            # kept at once: if what follows fails, a rerun does not sample again (see kept_evaluation)
            _write_results(run_dir, TEST_LL, log_px=result.log_px, ess=result.ess,
                           sampling_seconds=sampling_seconds, segments=json.dumps(sampling_segments), **trained)
        (run_dir / TEST_LL_PARTIAL).unlink(missing_ok=True)  # (also if a process died right before)
        started = time.perf_counter()
        test_ll = result.log_px
        test_elbo = elbo(model, dataset.test, seed=config.seed)
        eval_seconds = sampling_seconds + time.perf_counter() - started
        images = example_images(model, dataset, config.seed)

        epoch_seconds = [row["seconds"] for row in state["history"]]
        metrics = dict(
            dataset=config.dataset, model=config.model, prior=config.prior,
            components=config.components, seed=config.seed, profile=config.profile,
            activation=config.activation, epochs=config.epochs_for(len(dataset.train)),
            n_train=len(dataset.train), n_valid=len(dataset.valid), n_test=len(dataset.test),
            epochs_trained=state["epoch"], best_epoch=state["best_epoch"],
            stopped_early=state["stopped_early"], best_valid_loss=state["best_loss"],
            test_ll=float(np.mean(test_ll)),
            test_ll_stderr=float(np.std(test_ll, ddof=1) / np.sqrt(len(test_ll))) if len(test_ll) > 1 else float("nan"),
            test_ll_mc_stderr=result.mean_mc_stderr(),
            test_ess_median=float(np.median(result.ess)), test_ess_min=float(np.min(result.ess)),
            test_elbo=float(np.mean(test_elbo)), eval_samples=config.eval_samples,
            train_seconds=state["train_seconds"], eval_seconds=eval_seconds,
            seconds_per_epoch=float(np.median(epoch_seconds)) if epoch_seconds else float("nan"),
            threads=threads, training_segments=state.get("segments", []),
            sampling_segments=sampling_segments,
            config=config.to_dict(), data_sha256=dataset.sources, provenance=provenance())
        if dataset.likelihood == "discretized_logistic":
            metrics["test_bits_per_dim"] = float(bits_per_dim(metrics["test_ll"], dataset.input_dim))
        _write_results(run_dir, IMAGES, **images)
        _write_results(run_dir, METRICS, metrics)  # last: it marks a complete run
        return metrics


def run_experiment(config: RunConfig, run_dir, data_dir=None, progress: bool = True,
                   dataset: Dataset | None = None, checkpoint_every_seconds: float = 30.0,
                   threads: int | None = None) -> dict:
    """:func:`train_run`, then :func:`evaluate_run`: the metrics of the run of ``config``."""
    if is_complete(run_dir):
        prepare_run_dir(Path(run_dir), config)  # refuses another config's run directory
        return read_json(Path(run_dir) / METRICS)
    train_run(config, run_dir, data_dir, progress, dataset, checkpoint_every_seconds, threads)
    return evaluate_run(run_dir, data_dir, progress, dataset, threads)


def _segment(threads, **where) -> dict:
    """What a record keeps of one start or resume of its training or sampling: where it began (and
    on what hardware, where given), the threads, when, and the code's commit and whether it was
    modified."""
    return dict(where, threads=threads, started=time.strftime("%Y-%m-%dT%H:%M:%S%z"), **git_state())


def kept_evaluation(run_dir: Path, trained: dict):
    """(ImportanceResult, seconds, segments) of an importance sampling this run directory has
    already done, or (None, None, None). A run directory holds one config, and its test LL is
    written only once training has ended, so one that is there without metrics.json (something
    after it failed) is of these very weights; it is kept, not sampled again (that can take an
    hour), if it also says it was made with the same S, test images, epochs trained and best epoch
    (``trained``)."""
    path = run_dir / TEST_LL
    if not path.is_file():
        return None, None, None
    try:
        with np.load(path) as kept:
            if any(key not in kept or int(kept[key]) != value for key, value in trained.items()):
                return None, None, None
            result = ImportanceResult(kept["log_px"], kept["ess"], trained["num_samples"])
            segments = json.loads(str(kept["segments"])) if "segments" in kept else []
            return result, float(kept["sampling_seconds"]), segments
    except UNREADABLE_NPZ:  # sample again
        return None, None, None


def sample_test_ll(sampler: ImportanceSampler, images, seed: int, run_dir: Path, trained: dict,
                   progress: bool = True, threads: int | None = None, keep_every_seconds: float = 60.0):
    """(ImportanceResult, seconds, segments): the sampler's evaluation of the test ``images``, going
    on from where an interrupted one in ``run_dir`` stopped.

    The images done so far are kept in ``test_ll.partial.npz`` after the first pass that ends
    ``keep_every_seconds`` after the last keep, and when the sampling stops on an exception (Ctrl-C,
    an error), so a killed process loses at most that interval and one pass. A keep that fails (a
    full disk) is warned of and the sampling goes on. Every pass's draws depend only on the seed
    and its first image (:meth:`~vae_lib.estimators.ImportanceSampler.passes`), so a resumed
    evaluation gives the numbers of an uninterrupted one with the same code on the same kind of
    device; ``segments`` names the code, threads and hardware of each start or resume (from which
    image), as a record's training segments do. Kept images are used only if they say they were
    made with the same S, passes, test images, epochs trained and best epoch (``trained``)."""
    n, path = len(images), run_dir / TEST_LL_PARTIAL
    layout = dict(trained, samples_per_pass=sampler.samples_per_pass, images_per_pass=sampler.images_per_pass)
    log_px, ess = np.empty(n, np.float64), np.empty(n, np.float64)
    kept = _read_partial(path, layout)
    done, seconds, segments = (kept["done"], kept["seconds"], kept["segments"]) if kept else (0, 0.0, [])
    if kept:
        log_px[:done], ess[:done] = kept["log_px"], kept["ess"]
        print(f"Going on with the test log-likelihood from image {done + 1} of {n} (the {done} before it "
              f"are kept in {path.name}).", flush=True)
    segments = [*segments, _segment(threads, from_image=done, hardware=hardware_label(hardware()))]
    started = time.perf_counter()
    kept_done, kept_at, pass_ended = done, started, started
    warned = False

    def keep():
        nonlocal kept_done, kept_at, warned
        kept_at = time.perf_counter()
        try:
            _write_results(run_dir, TEST_LL_PARTIAL, log_px=log_px[:done], ess=ess[:done], done=done,
                           seconds=seconds + pass_ended - started, segments=json.dumps(segments), **layout)
            kept_done = done
        except TrainingError as err:  # the sampling itself is unharmed: go on, keep trying
            if not warned:
                warnings.warn(f"Could not keep the images sampled so far: {err}", RuntimeWarning, stacklevel=2)
                warned = True

    try:
        with progress_bar(n, f"test LL (S={sampler.num_samples})", "img", progress, initial=done) as bar:
            for first, pass_log_px, pass_ess in sampler.passes(images, seed, start=done):
                log_px[first:first + len(pass_log_px)], ess[first:first + len(pass_ess)] = pass_log_px, pass_ess
                done, pass_ended = first + len(pass_log_px), time.perf_counter()
                bar.update(len(pass_log_px))
                if pass_ended - kept_at >= keep_every_seconds and done < n:
                    keep()
    finally:
        if kept_done < done < n:  # stopped part way (Ctrl-C, an error): keep what is done
            keep()
    return (ImportanceResult(log_px, ess, sampler.num_samples), seconds + time.perf_counter() - started,
            segments)


def _read_partial(path: Path, layout: dict) -> dict | None:
    """What an interrupted test-LL sampling kept, if it was made with this ``layout``; else None
    (nothing kept, another layout, or a damaged file: sample those images again)."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as kept:
            if any(key not in kept or int(kept[key]) != value for key, value in layout.items()):
                return None
            done = int(kept["done"])
            if not len(kept["log_px"]) == len(kept["ess"]) == done or done % layout["images_per_pass"]:
                return None
            return dict(done=done, seconds=float(kept["seconds"]), log_px=kept["log_px"], ess=kept["ess"],
                        segments=json.loads(str(kept["segments"])))
    except UNREADABLE_NPZ:
        return None


def _write_results(run_dir: Path, name: str, data=None, **arrays) -> None:
    try:
        if name.endswith(".json"):
            atomic_write_json(run_dir / name, data)
        else:
            atomic_write_npz(run_dir / name, compressed=True, **arrays)
    except OSError as err:
        raise TrainingError(f"Could not write {name} into {run_dir}: {err.strerror}. The trained "
                            f"model is kept in its checkpoint (and the test log-likelihoods, if "
                            f"written); free some space and rerun the same command.") from None


def to_uint8(images) -> np.ndarray:
    """Images in [0, 1] as 8-bit grey levels (what a figure shows; a quarter of float32's bytes)."""
    return np.round(np.clip(np.asarray(images), 0.0, 1.0) * 255).astype(np.uint8)


def example_images(model: LatentVariableModel, dataset: Dataset, seed: int, n: int = 50) -> dict:
    """Arrays for figures, as 8-bit grey levels: test images in a fixed-seed random order (not
    file order: some test files are sorted by class), their reconstructions, samples from the
    prior, and the pseudo-inputs where the prior has them."""
    import tensorflow as tf

    order = np.random.default_rng(SUBSET_SEED).permutation(len(dataset.test))[:n]  # (all, if fewer)
    inputs = dataset.test[order]
    arrays = dict(test_images=to_uint8(inputs),
                  reconstructions=to_uint8(model.reconstruct(tf.constant(inputs)).numpy()),
                  samples=to_uint8(model.sample(len(order), stateless_seed(seed, "samples", 0)).numpy()),
                  image_shape=np.array(dataset.image_shape))
    if hasattr(model.prior, "pseudo_inputs"):
        arrays["pseudo_inputs"] = to_uint8(model.prior.pseudo_inputs().numpy()[:n])
    return arrays
