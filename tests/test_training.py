"""Training and run directories, on real data subsets (slow: these train small models)."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import tensorflow as tf

from vae_lib.pipeline.config import make_config
from vae_lib.errors import ConfigError, TrainingError
from vae_lib.estimators import elbo
from helpers import paper_model
from vae_lib.pipeline.build import build_model, reduced_splits
from vae_lib.pipeline.experiment import run_experiment
from vae_lib.pipeline.records import load_run, read_test_ll
from vae_lib.pipeline.registry import PRIORS
from vae_lib.seeds import stateless_seed
from vae_lib.schedule import TrainState, early_stopping_update, kl_weight, last_epoch
from vae_lib.pipeline.trainer import Trainer, binarize

METRIC_KEYS = {"dataset", "model", "prior", "components", "seed", "n_train", "n_valid", "n_test",
               "epochs_trained", "best_epoch", "test_ll", "test_ll_stderr", "test_ll_mc_stderr",
               "test_ess_median", "test_elbo", "eval_samples", "train_seconds", "eval_seconds", "config"}


def _small_config(dataset, prior, **overrides):
    """Small budgets; without XLA unless asked (compiling costs more than these runs; the
    resume tests use XLA, as the paper and quick profiles do)."""
    settings = dict(max_train=1000, max_valid=300, max_test=100, epochs=4, warmup_epochs=2,
                    components=20, hidden_units=64, eval_samples=100, learning_rate=1e-3,
                    jit_compile=False)
    settings.update(overrides)
    return make_config(dataset, prior, profile="smoke", **settings)


def _read_history(path):
    with open(path) as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, [{k: float(v) for k, v in row.items()} for row in reader]


def _check_run_dir(run_dir, config, metrics):
    """metrics.json / history.csv / test_ll.npy agree with each other and with the config."""
    on_disk = json.loads((run_dir / "metrics.json").read_text())
    assert METRIC_KEYS <= set(on_disk)
    assert on_disk["test_ll"] == pytest.approx(metrics["test_ll"])
    assert on_disk["config"] == config.to_dict()
    assert (on_disk["dataset"], on_disk["prior"], on_disk["components"], on_disk["seed"]) == (
        config.dataset, config.prior, config.components, config.seed)
    assert on_disk["eval_samples"] == config.eval_samples
    assert on_disk["epochs_trained"] == config.epochs
    assert 1 <= on_disk["best_epoch"] <= on_disk["epochs_trained"]
    assert on_disk["train_seconds"] > 0 and on_disk["eval_seconds"] > 0

    columns, history = _read_history(run_dir / "history.csv")
    assert {"epoch", "train_loss", "valid_loss", "seconds"} <= set(columns)
    assert [row["epoch"] for row in history] == list(range(1, config.epochs + 1))
    assert all(math.isfinite(row["train_loss"]) and math.isfinite(row["valid_loss"]) for row in history)
    assert min(row["valid_loss"] for row in history) == pytest.approx(
        history[on_disk["best_epoch"] - 1]["valid_loss"])
    assert [row["kl_weight"] for row in history] == [kl_weight(e, config.warmup_epochs)
                                                     for e in range(1, config.epochs + 1)]

    test_ll, ess = read_test_ll(run_dir)
    assert test_ll.shape == ess.shape == (on_disk["n_test"],) and np.all(np.isfinite(test_ll))
    assert np.all((ess >= 1 - 1e-6) & (ess <= config.eval_samples + 1e-6))
    assert on_disk["test_ess_median"] == pytest.approx(np.median(ess))
    assert test_ll.mean() == pytest.approx(on_disk["test_ll"], rel=1e-12)
    assert on_disk["test_ll_stderr"] == pytest.approx(test_ll.std(ddof=1) / np.sqrt(len(test_ll)))
    # IWAE with S samples is >= the single-sample ELBO in expectation; the gap here is several
    # standard errors of the mean.
    assert on_disk["test_ll"] >= on_disk["test_elbo"]
    return on_disk, history


@pytest.mark.slow
@pytest.mark.parametrize("model_name", ["vae", "hvae"])
@pytest.mark.parametrize("prior", PRIORS)
def test_training_lowers_validation_loss_and_writes_run_dir(prior, model_name, datasets, tmp_path):
    """A few epochs on 1000 static-MNIST images, for each model and prior: the validation loss ends
    well below the untrained model's negative ELBO (computed independently with estimators.elbo);
    the run directory holds consistent results; the importance-sampled test LL is above the test
    ELBO; the weights kept are the best epoch's (their validation loss, recomputed with the same
    noise, is the one history.csv records for that epoch). vampprior_data's pseudo-inputs are
    untouched by training; learned VampPrior pseudo-inputs move but stay in [0, 1]."""
    config = _small_config("static_mnist", prior, model=model_name)
    data = reduced_splits(datasets["static_mnist"], config)
    fresh = build_model(config, data)
    untrained = -elbo(fresh, data.valid, seed=3).mean()
    metrics = run_experiment(config, tmp_path / "run", dataset=datasets["static_mnist"], progress=False)
    on_disk, history = _check_run_dir(tmp_path / "run", config, metrics)
    assert (on_disk["n_train"], on_disk["n_valid"], on_disk["n_test"]) == (1000, 300, 100)
    assert history[-1]["valid_loss"] < untrained - 20, (untrained, history)
    assert on_disk["best_valid_loss"] < untrained - 20

    trained = load_run(tmp_path / "run", dataset=datasets["static_mnist"]).model
    assert elbo(trained, data.test, seed=config.seed).mean() == pytest.approx(on_disk["test_elbo"], rel=1e-5)
    best = history[on_disk["best_epoch"] - 1]
    recomputed = Trainer(trained, config, progress=False).validation_loss(data.valid, on_disk["best_epoch"])
    assert recomputed == pytest.approx(best["valid_loss"], rel=1e-5)
    if prior != "standard":
        z = tf.random.stateless_normal([4, config.latent_dim], seed=[0, 1])
        assert not np.allclose(trained.prior.log_prob(z, trained.prior_params()).numpy(),
                               fresh.prior.log_prob(z, fresh.prior_params()).numpy())
    if prior.startswith("vampprior"):
        before, after = fresh.prior.pseudo_inputs().numpy(), trained.prior.pseudo_inputs().numpy()
        assert np.array_equal(before, after) == (prior == "vampprior_data")


@pytest.mark.slow
def test_frey_faces_trains_with_discretized_logistic(datasets, tmp_path):
    """Frey Faces (discretized logistic): trains, and test_bits_per_dim = -test_ll / (560 ln 2)."""
    config = _small_config("frey_faces", "vampprior", max_valid=200)
    data = reduced_splits(datasets["frey_faces"], config)
    untrained = -elbo(build_model(config, data), data.valid, seed=3).mean()
    metrics = run_experiment(config, tmp_path / "run", dataset=datasets["frey_faces"], progress=False)
    on_disk, history = _check_run_dir(tmp_path / "run", config, metrics)
    assert history[-1]["valid_loss"] < untrained
    assert on_disk["test_bits_per_dim"] == pytest.approx(-on_disk["test_ll"] / (560 * math.log(2)),
                                                         rel=1e-9)


def _scripted(curve, warmup, patience):
    """Feed a scripted validation curve to the early-stopping rule; (stopped at, best epoch, kept)."""
    state, kept = TrainState(), []
    for epoch, loss in enumerate(curve, 1):
        if early_stopping_update(state, epoch, loss, warmup, patience):
            kept.append(epoch)
        if state.stopped_early:
            return epoch, state.best_epoch, kept
    return None, state.best_epoch, kept


def test_early_stopping_waits_patience_plus_one_epochs_after_the_best():
    """As the paper's code: the best epoch is 3; stopping comes after patience + 1 = 4 epochs
    without improvement (epoch 7), not after 3; the weights kept are those of epochs 1, 2, 3."""
    curve = [10, 9, 8, 8.5, 9, 8.1, 8.2, 8.3, 7.0]
    assert _scripted(curve, warmup=0, patience=3) == (7, 3, [1, 2, 3])
    assert _scripted(curve[:6] + [7.9], warmup=0, patience=3) == (None, 7, [1, 2, 3, 7])


@pytest.mark.slow
def test_progress_bar_ends_where_early_stopping_ends_the_run(datasets, capsys):
    """The epoch bar's end is the epoch at which early stopping would stop the run (it moves on
    as the run improves), not the cap: a run that stops early ends at "E/E", E below the cap."""
    import re

    config = _small_config("static_mnist", "standard", epochs=300, warmup_epochs=0, patience=1,
                           max_train=300, learning_rate=3e-2)
    data = reduced_splits(datasets["static_mnist"], config)
    trainer = Trainer(build_model(config, data), config, progress=True)
    state = trainer.fit(data.train, data.valid)
    assert state.stopped_early and state.epoch < 300
    shown = re.findall(r"(\d+)/(\d+) \[", capsys.readouterr().err)
    assert shown[-1] == (str(state.epoch), str(state.epoch))
    assert all(int(n) <= int(total) <= 300 for n, total in shown)


def test_early_stopping_counts_nothing_during_the_warm_up():
    """A validation loss that only rises stops nothing during the warm-up: as in the paper's code the
    counter is reset at every epoch before epoch 10 (the warm-up's last), counts from there, and
    stopping comes patience + 1 epochs after that reset, at epoch 10 + 2."""
    curve = [5.0] + [5.0 + e for e in range(1, 30)]
    stopped, best, kept = _scripted(curve, warmup=10, patience=2)
    assert (stopped, best, kept) == (12, 1, [1])
    assert _scripted(curve[:11], warmup=10, patience=2)[0] is None


def test_equal_validation_loss_is_not_an_improvement():
    """Only a strictly lower validation loss counts as better (the paper's code: '<')."""
    assert _scripted([3.0, 3.0, 3.0, 3.0], warmup=0, patience=1) == (3, 1, [1])


def test_early_stopping_matches_the_paper_codes_counter_on_random_curves():
    """The rule as the paper's code writes it (utils/perform_experiment.py: the counter rises after
    every epoch without a better loss, is reset to 0 at every warm-up epoch, and training stops once
    it exceeds the patience), run literally beside ours on random validation curves: the same
    stopping epoch, best epoch and counter at every epoch."""
    rng = np.random.default_rng(0)
    for trial in range(200):
        warmup, patience = int(rng.integers(0, 8)), int(rng.integers(1, 6))
        curve = list(np.round(rng.normal(size=40) - 0.05 * np.arange(40), 1))
        ours, best, best_epoch, counter, theirs = TrainState(), math.inf, 0, 0, None
        for epoch, loss in enumerate(curve, 1):
            if loss < best:
                best, best_epoch, counter = loss, epoch, 0
            else:
                counter += 1
            if epoch < warmup:
                counter = 0
            early_stopping_update(ours, epoch, loss, warmup, patience)
            assert (ours.wait, ours.best_loss, ours.best_epoch) == (counter, best, best_epoch)
            if counter > patience:
                theirs = epoch
                break
            assert not ours.stopped_early
        assert ours.stopped_early == (theirs is not None)
        if theirs is not None:
            assert theirs == last_epoch(ours.best_epoch, warmup, patience)


def test_a_running_cells_status_names_the_epoch_at_which_early_stopping_will_end_it(tmp_path):
    """What `vampprior report` shows while a cell trains, read from the checkpoint the trainer
    writes: at every epoch of two scripted validation curves from their best on (nothing improves
    after it), the epoch it names is the one at which the rule then stops; a finished one says it
    is being evaluated."""
    from vae_lib.pipeline.plans import Cell
    from vae_lib.pipeline.status import cell_status

    for curve, warmup, patience, stop in [([10, 9, 8, 8.5, 9, 8.1, 8.2], 0, 3, 7),
                                          ([5.0] + [5.0 + e for e in range(1, 12)], 10, 2, 12)]:
        config = make_config("static_mnist", "standard", "smoke", warmup_epochs=warmup,
                             patience=patience, epochs=100)
        model = paper_model("vae", "standard", 12, hidden_units=8)
        run_dir = tmp_path / f"wu{warmup}"
        run_dir.mkdir()
        trainer = Trainer(model, config, run_dir / "checkpoint.npz", progress=False)
        cell = Cell(config, run_dir, tmp_path / "record", "grid")
        assert cell_status(cell) == "starting"
        for epoch, loss in enumerate(curve, 1):
            trainer.state.epoch, trainer.state.step = epoch, 10 * epoch
            early_stopping_update(trainer.state, epoch, loss, warmup, patience)
            trainer.save_checkpoint()
            status = cell_status(cell)
            if epoch < stop:
                assert f"epoch {epoch}/100," in status
                if epoch >= curve.index(min(curve)) + 1:  # from the best on, nothing improves
                    assert f"ends at epoch {stop} unless" in status
            else:
                assert trainer.state.stopped_early and status.startswith(f"trained {stop} epochs")


def test_a_running_cells_status_says_when_training_ends_at_its_recent_pace(tmp_path):
    """The time left is the epochs until early stopping would end the run times the median
    seconds of its last 20 epochs (an earlier, slower session does not count)."""
    from vae_lib.pipeline.plans import Cell
    from vae_lib.pipeline.status import cell_status

    config = make_config("static_mnist", "standard", "smoke", warmup_epochs=0, patience=50, epochs=2000)
    model = paper_model("vae", "standard", 12, hidden_units=8)
    trainer = Trainer(model, config, tmp_path / "checkpoint.npz", progress=False)
    for epoch in range(1, 41):  # 20 slow epochs, then 20 at 30 s (one outlier); best at epoch 40
        trainer.state.epoch, trainer.state.step = epoch, 10 * epoch
        early_stopping_update(trainer.state, epoch, 100.0 - epoch, 0, 50)
        trainer.state.history.append(dict(epoch=epoch, seconds=300.0 if epoch <= 20 or epoch == 33 else 30.0))
    trainer.save_checkpoint()
    stop = last_epoch(40, 0, 50)  # 91: 51 epochs left at 30 s
    status = cell_status(Cell(config, tmp_path, tmp_path / "record", "grid"))
    assert status.endswith(f"ends at epoch {stop} unless it improves (about {(stop - 40) * 30 / 60:.0f} min more "
                           f"at 30 s an epoch)"), status


def test_a_checkpoint_whose_folder_is_gone_says_so(tmp_path):
    """The run directory deleted under a running trainer: the error names the missing folder and
    the epoch, and does not send the user to free disk space."""
    config = make_config("static_mnist", "standard", "smoke")
    model = paper_model("vae", "standard", 12, hidden_units=8)
    trainer = Trainer(model, config, tmp_path / "gone" / "checkpoint.npz", progress=False)
    trainer.state.epoch = 3
    with pytest.raises(TrainingError) as raised:
        trainer.save_checkpoint()
    message = str(raised.value)
    assert "after epoch 3" in message and f"{tmp_path / 'gone'} is gone" in message
    assert "No checkpoint was written before" in message and "space" not in message


def test_kl_weight_warmup():
    """beta rises linearly from 1/W at epoch 1 to 1 at epoch W and stays 1; W = 0 means no warm-up."""
    assert [kl_weight(e, 4) for e in range(1, 7)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert [kl_weight(e, 100) for e in (1, 50, 100, 101)] == pytest.approx([0.01, 0.5, 1.0, 1.0])
    assert kl_weight(1, 0) == 1.0 and kl_weight(7, 1) == 1.0


def test_train_epoch_runs_every_batch_with_its_seed(datasets):
    """One compiled call runs all full batches and another the short last one (250 images, batch
    100: 3 steps); step 0 reports the loss of the first batch of the epoch's order under the
    "train" stream at counter 0, recomputed here with the starting weights."""
    config = _small_config("static_mnist", "vampprior", max_train=250, batch_size=100)
    data = reduced_splits(datasets["static_mnist"], config)
    trainer = Trainer(build_model(config, data), config, progress=False)
    order = np.random.default_rng([config.seed, 1]).permutation(250)
    distortion, rate = trainer.model.elbo_terms(tf.constant(data.train[order[:100]]),
                                                stateless_seed(config.seed, "train", 0))
    expected_first = float(tf.reduce_mean(distortion + 0.5 * rate))
    losses = trainer.train_epoch(tf.constant(data.train), epoch=1, beta=0.5)
    assert losses.shape == (3, 3) and np.all(np.isfinite(losses))
    assert int(trainer.optimizer.iterations.numpy()) == 3
    assert losses[0, 0] == pytest.approx(expected_first, rel=1e-5)
    assert losses[0, 0] == pytest.approx(losses[0, 1] + 0.5 * losses[0, 2], rel=1e-5)


@pytest.mark.slow
def test_nan_loss_raises_training_error_naming_the_epoch(datasets):
    """Adam with learning rate 1e6 blows the weights up: the loss becomes NaN/inf in epoch 1."""
    config = _small_config("static_mnist", "standard", learning_rate=1e6, max_train=300, max_valid=100)
    data = reduced_splits(datasets["static_mnist"], config)
    trainer = Trainer(build_model(config, data), config, progress=False)
    with pytest.raises(TrainingError, match=r"(nan|inf).* epoch 1\b") as err:
        trainer.fit(data.train, data.valid)
    assert "learning rate" in str(err.value)


@pytest.mark.slow
def test_nan_after_checkpoint_keeps_last_good_checkpoint(datasets, tmp_path):
    """A NaN in epoch 2 (corrupt training images) names epoch 2 and the kept epoch-1 checkpoint,
    which is left byte-for-byte unchanged."""
    config = _small_config("static_mnist", "standard", epochs=1, max_train=300, max_valid=100)
    data = reduced_splits(datasets["static_mnist"], config)
    ckpt = tmp_path / "checkpoint.npz"
    Trainer(build_model(config, data), config, ckpt, progress=False).fit(data.train, data.valid)
    saved = ckpt.read_bytes()
    longer = config.replace(epochs=3)
    bad_train = data.train.copy()
    bad_train[::7, 100] = np.nan
    trainer = Trainer(build_model(longer, data), longer, ckpt, progress=False)
    with pytest.raises(TrainingError) as err:
        trainer.fit(bad_train, data.valid)
    message = str(err.value)
    assert "epoch 2" in message and "(epoch 1)" in message and str(ckpt) in message
    assert ckpt.read_bytes() == saved


@pytest.mark.slow
@pytest.mark.parametrize("model", ["vae", "pixelhvae"])
def test_resume_restores_state_and_replays_uninterrupted_run(datasets, tmp_path, model):
    """A new Trainer on a checkpoint restores weights, optimizer state and TrainState exactly; training
    1 epoch, then resuming to 3, gives the same weights and history as 3 epochs in one go: bitwise
    for the MLP models; for the convolutional ones to float32 rounding, because TensorFlow's CPU
    convolution gradients are not bitwise repeatable across model instances (~1e-7 after one step,
    with one thread and with op determinism too; Adam amplifies it where a gradient is near 0). The PixelHVAE's batch
    normalisation's moving statistics are weights of the checkpoint."""
    small = dict(max_train=300, jit_compile=True) if model == "vae" else dict(max_train=100, components=5,
                                                                              jit_compile=False)
    config = _small_config("static_mnist", "vampprior", epochs=3, warmup_epochs=2, max_valid=100,
                           model=model, **small)
    exact = model == "vae"

    def same(a, b):
        if exact:
            np.testing.assert_array_equal(a, b)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)  # a rate of 1.44 nats moved 2e-4 once

    data = reduced_splits(datasets["static_mnist"], config)

    straight = build_model(config, data)
    straight_state = Trainer(straight, config, progress=False).fit(data.train, data.valid)

    first = config.replace(epochs=1)
    ckpt, hist = tmp_path / "checkpoint.npz", tmp_path / "history.csv"
    part = build_model(first, data)
    part_trainer = Trainer(part, first, ckpt, hist, progress=False)
    part_trainer.fit(data.train, data.valid)
    weights_1 = [w.numpy() for w in part.weights]
    optimizer_1 = [v.numpy() for v in part_trainer.optimizer.variables]

    resumed = build_model(config, data)  # fresh weights, then the checkpoint
    trainer = Trainer(resumed, config, ckpt, hist, progress=False)
    assert trainer.state.epoch == 1 and trainer.state.step == part_trainer.state.step
    assert trainer.state.history == part_trainer.state.history
    for a, b in zip(resumed.weights, weights_1):
        np.testing.assert_array_equal(a.numpy(), b)
    for a, b in zip(trainer.optimizer.variables, optimizer_1):
        np.testing.assert_array_equal(a.numpy(), b)
    assert int(trainer.optimizer.iterations.numpy()) == trainer.state.step

    resumed_state = trainer.fit(data.train, data.valid)
    if exact:
        for a, b in zip(resumed.weights, straight.weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    else:  # the rounding gap (which Adam amplifies where a gradient is near 0) is small beside what
        # epochs 2-3 moved the weights; a lost optimizer state moves them by a third of it (tried)
        gap = np.sqrt(sum(np.sum((a.numpy() - b.numpy()) ** 2) for a, b in zip(resumed.weights, straight.weights)))
        moved = np.sqrt(sum(np.sum((b.numpy() - w) ** 2) for b, w in zip(straight.weights, weights_1)))
        assert gap < 0.05 * moved, (gap, moved)
    drop_seconds = [{k: v for k, v in row.items() if k != "seconds"}
                    for row in (straight_state.history, resumed_state.history) for row in row]
    for a, b in zip(drop_seconds[:3], drop_seconds[3:]):
        assert a.keys() == b.keys()
        same(np.array(list(a.values()), float), np.array(list(b.values()), float))
    assert resumed_state.best_epoch == straight_state.best_epoch
    same(resumed_state.best_loss, straight_state.best_loss)
    _, rows = _read_history(hist)
    assert [r["epoch"] for r in rows] == [1, 2, 3]


@pytest.mark.slow
def test_finished_trainer_does_not_train_again(datasets, tmp_path):
    """Loading a checkpoint of a finished run and calling fit() changes nothing."""
    config = _small_config("static_mnist", "mog", epochs=1, max_train=200, max_valid=100)
    data = reduced_splits(datasets["static_mnist"], config)
    ckpt = tmp_path / "checkpoint.npz"
    model = build_model(config, data)
    Trainer(model, config, ckpt, progress=False).fit(data.train, data.valid)
    saved = ckpt.read_bytes()
    again = build_model(config, data)
    state = Trainer(again, config, ckpt, progress=False).fit(data.train, data.valid)
    assert state.epoch == 1 and ckpt.read_bytes() == saved
    for a, b in zip(again.weights, model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    z = tf.zeros([2, config.latent_dim])
    np.testing.assert_array_equal(again.prior.log_prob(z).numpy(), model.prior.log_prob(z).numpy())


@pytest.mark.slow
def test_a_failure_after_the_importance_sampling_keeps_it_for_the_rerun(datasets, tmp_path, monkeypatch):
    """The figures' images fail after the test LL was sampled: the rerun samples nothing again (the
    sampler is made to fail if it is called) and ends with the metrics of a run that never failed.
    Kept samples of another S are not reused."""
    import vae_lib.pipeline.experiment as experiment
    from vae_lib.estimators import ImportanceSampler

    config = _small_config("static_mnist", "vampprior", epochs=1, max_train=200, max_valid=100, max_test=50)
    data = datasets["static_mnist"]
    uninterrupted = run_experiment(config, tmp_path / "whole", dataset=data, progress=False)

    def images_fail(*args, **kwargs):
        raise RuntimeError("images failed")

    with monkeypatch.context() as patch:
        patch.setattr(experiment, "example_images", images_fail)
        with pytest.raises(RuntimeError, match="images failed"):
            run_experiment(config, tmp_path / "run", dataset=data, progress=False)
    assert (tmp_path / "run" / "test_ll.npz").is_file() and not (tmp_path / "run" / "metrics.json").exists()

    def sample_again(*args, **kwargs):
        raise AssertionError("sampled again")

    with monkeypatch.context() as patch:
        patch.setattr(ImportanceSampler, "passes", sample_again)
        again = run_experiment(config, tmp_path / "run", dataset=data, progress=False)
    timing = {"train_seconds", "eval_seconds", "seconds_per_epoch", "provenance", "training_segments",
              "sampling_segments"}
    assert {k: v for k, v in again.items() if k not in timing} == {
        k: v for k, v in uninterrupted.items() if k not in timing}

    # kept samples that say they were made otherwise (another S, test set or training) are not used
    trained = dict(num_samples=config.eval_samples, num_test=50, epochs_trained=1, best_epoch=1)
    assert experiment.kept_evaluation(tmp_path / "run", trained)[0] is not None
    for key in trained:
        assert experiment.kept_evaluation(tmp_path / "run", {**trained, key: trained[key] + 1}) == (None, None, None)


@pytest.mark.slow
def test_an_interrupted_importance_sampling_goes_on_where_it_stopped(datasets, tmp_path, monkeypatch):
    """Ctrl-C after three passes of the test LL keeps their images (and says so to status); the rerun
    samples only the rest, from the fourth pass on, and ends with exactly the numbers of a run that
    was never interrupted. While sampling, what is done is kept on disk after every pass when asked
    to (as a killed process, which runs no clean-up, relies on); kept images of another S, training
    or pass layout are not used."""
    import vae_lib.pipeline.experiment as experiment
    from vae_lib.estimators import ImportanceSampler
    from vae_lib.pipeline.build import load_trained_model
    from vae_lib.pipeline.rundir import TEST_LL_PARTIAL, sampled_so_far

    config = _small_config("static_mnist", "vampprior", epochs=1, max_train=200, max_valid=100, max_test=50,
                           eval_samples=1000)
    data = datasets["static_mnist"]
    uninterrupted = run_experiment(config, tmp_path / "whole", dataset=data, progress=False)
    real_passes, starts = ImportanceSampler.passes, []

    def interrupted(self, images, seed=0, start=0):
        for count, item in enumerate(real_passes(self, images, seed, start)):
            if count == 3:
                raise KeyboardInterrupt
            yield item

    with monkeypatch.context() as patch:
        patch.setattr(ImportanceSampler, "passes", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run_experiment(config, tmp_path / "run", dataset=data, progress=False)
    per_pass = 8  # 8192 (image, sample) pairs a pass // S=1000
    assert sampled_so_far(tmp_path / "run") == (3 * per_pass, 50)
    assert not (tmp_path / "run" / "test_ll.npz").exists()

    def counted(self, images, seed=0, start=0):
        starts.append(start)
        yield from real_passes(self, images, seed, start)

    with monkeypatch.context() as patch:
        patch.setattr(ImportanceSampler, "passes", counted)
        again = run_experiment(config, tmp_path / "run", dataset=data, progress=False)
    assert starts == [3 * per_pass]
    assert not (tmp_path / "run" / TEST_LL_PARTIAL).exists()
    assert [segment["from_image"] for segment in again["sampling_segments"]] == [0, 3 * per_pass]
    assert [segment["from_image"] for segment in uninterrupted["sampling_segments"]] == [0]
    assert {"commit", "modified", "threads", "hardware", "started"} <= set(again["sampling_segments"][1])
    np.testing.assert_array_equal(read_test_ll(tmp_path / "run")[0], read_test_ll(tmp_path / "whole")[0])
    np.testing.assert_array_equal(read_test_ll(tmp_path / "run")[1], read_test_ll(tmp_path / "whole")[1])
    timing = {"train_seconds", "eval_seconds", "seconds_per_epoch", "provenance", "training_segments",
              "sampling_segments"}
    assert {k: v for k, v in again.items() if k not in timing} == {
        k: v for k, v in uninterrupted.items() if k not in timing}

    # kept after every pass while sampling, before any clean-up could run
    model = load_trained_model(tmp_path / "whole", config, reduced_splits(data, config))
    sampler = ImportanceSampler(model, config.eval_samples, jit_compile=False)
    trained = dict(num_samples=1000, num_test=50, epochs_trained=1, best_epoch=1)
    test = reduced_splits(data, config).test
    kept_counts = []

    def watched(self, images, seed=0, start=0):
        for item in real_passes(self, images, seed, start):
            yield item  # the caller takes the pass (and keeps it) before asking for the next
            kept_counts.append(sampled_so_far(tmp_path / "watched"))

    (tmp_path / "watched").mkdir()
    with monkeypatch.context() as patch:
        patch.setattr(ImportanceSampler, "passes", watched)
        result, _, _ = experiment.sample_test_ll(sampler, test, config.seed, tmp_path / "watched", trained,
                                                 progress=False, keep_every_seconds=0.0)
    assert kept_counts == [(n, 50) for n in range(per_pass, 50, per_pass)] + [(48, 50)]
    np.testing.assert_array_equal(result.log_px, read_test_ll(tmp_path / "whole")[0])
    partial = tmp_path / "watched" / TEST_LL_PARTIAL
    layout = dict(trained, samples_per_pass=1000, images_per_pass=per_pass)
    assert experiment._read_partial(partial, layout)["done"] == 48
    for key in layout:
        assert experiment._read_partial(partial, {**layout, key: layout[key] + 1}) is None
    for damaged in (b"", partial.read_bytes()[:100]):  # empty, cut short: sampled again, status unharmed
        partial.write_bytes(damaged)
        assert experiment._read_partial(partial, layout) is None and sampled_so_far(partial.parent) is None

    # a keep that fails (here: the partial file's name is taken by a folder) is warned of; the sampling goes on
    (tmp_path / "blocked" / TEST_LL_PARTIAL).mkdir(parents=True)
    with pytest.warns(RuntimeWarning, match="Could not keep the images sampled so far"):
        result, _, _ = experiment.sample_test_ll(sampler, test, config.seed, tmp_path / "blocked", trained,
                                                 progress=False, keep_every_seconds=0.0)
    np.testing.assert_array_equal(result.log_px, read_test_ll(tmp_path / "whole")[0])


def test_dynamic_binarization_draws_fresh_bits_each_step(datasets):
    """binarize(): 0/1 pixels, Bernoulli(grey) in the mean (within 5 SE), black stays 0 and white 1;
    the same step gives the same bits, another step other bits of the same images."""
    grey = datasets["dynamic_mnist"].train[:500]
    a, b, c = (binarize(tf.constant(grey), 0, step).numpy() for step in (7, 7, 8))
    assert set(np.unique(a)) == {0.0, 1.0}
    np.testing.assert_array_equal(a, b)
    flip = 2 * grey * (1 - grey)  # P(two independent draws differ)
    assert abs(np.mean(a != c) - flip.mean()) < 5 * np.sqrt((flip * (1 - flip)).sum()) / grey.size
    assert np.all(a[grey == 0] == 0) and np.all(a[grey == 1] == 1)
    se = np.sqrt((grey * (1 - grey)).sum()) / grey.size
    assert abs(a.mean() - grey.mean()) < 5 * se


@pytest.mark.slow
def test_dynamic_mnist_trains_and_resumes_exactly(datasets, tmp_path):
    """The training step binarizes dynamic MNIST (the dataset says so): the loss falls; two epochs in
    one go and one epoch, then a resumed second, end with identical weights."""
    config = _small_config("dynamic_mnist", "vampprior", epochs=2, max_train=500, max_valid=200,
                           jit_compile=True)
    data = reduced_splits(datasets["dynamic_mnist"], config)
    straight = build_model(config, data)
    state = Trainer(straight, config, progress=False, binarize=True).fit(data.train, data.valid)
    assert state.history[1]["valid_loss"] < state.history[0]["valid_loss"]
    ckpt = tmp_path / "checkpoint.npz"
    Trainer(build_model(config.replace(epochs=1), data), config.replace(epochs=1), ckpt,
            progress=False, binarize=True).fit(data.train, data.valid)
    resumed = build_model(config, data)
    Trainer(resumed, config, ckpt, progress=False, binarize=True).fit(data.train, data.valid)
    for a, b in zip(resumed.weights, straight.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_grey_pixels_under_a_bernoulli_likelihood_are_refused_before_training(datasets):
    """Dynamic MNIST's grey training digits without binarize=True, or grey validation digits, would
    train a Bernoulli model on non-binary pixels without any error: refused, nothing trained; and
    binarize=True is refused for the 8-bit likelihood of Frey Faces."""
    config = _small_config("dynamic_mnist", "standard", epochs=1, max_train=200, max_valid=100)
    data = reduced_splits(datasets["dynamic_mnist"], config)
    model = build_model(config, data)
    before = [w.numpy() for w in model.weights]
    with pytest.raises(ConfigError, match="training images have grey levels.*binarize=True"):
        Trainer(model, config, progress=False).fit(data.train, data.valid)
    with pytest.raises(ConfigError, match="validation images have grey levels"):
        Trainer(model, config, progress=False, binarize=True).fit(data.train, data.train[:100])
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, model.weights))
    frey = _small_config("frey_faces", "standard", epochs=1, max_train=200, max_valid=100)
    frey_data = reduced_splits(datasets["frey_faces"], frey)
    with pytest.raises(ConfigError, match="binarize=True is for a Bernoulli likelihood"):
        Trainer(build_model(frey, frey_data), frey, progress=False, binarize=True).fit(frey_data.train, frey_data.valid)
