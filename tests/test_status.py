"""`vampprior status` on a real grid in every state a cell can be in: recorded, complete without its
record, running in another process, interrupted, failed and not started; read without TensorFlow
and without changing a file."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from helpers import another_process_holding, env_with_data, run_and_see_if_tensorflow_loads

pytestmark = pytest.mark.slow


def _tree(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_status_names_the_state_of_every_cell(tmp_path, smoke_grid, broken_frey_data_dir):
    """Three of static MNIST's cells copied from the session's smoke grid (the fourth not started)
    and Frey Faces' failing on an altered file, then put into every state."""
    runs, report = tmp_path / "runs", tmp_path / "report"
    where = ["--profile", "smoke", "--runs-dir", str(runs), "--report-dir", str(report), "--no-k-sweep",
             "--datasets", "static_mnist", "frey_faces"]
    grid_runs, grid_report = smoke_grid[0] / "smoke", smoke_grid[1] / "smoke" / "runs"
    smoke, records = runs / "smoke", report / "smoke" / "runs"
    for prior in ("standard", "vampprior", "mog"):
        name = f"static_mnist__{prior}__K20__seed0"
        shutil.copytree(grid_runs / name, smoke / name)
        shutil.copytree(grid_report / name, records / name)
    grid = subprocess.run([sys.executable, "-m", "vae_lib", "report", *where, "--priors", "standard",
                           "vampprior", "mog"], env=env_with_data(broken_frey_data_dir),
                          capture_output=True, text=True, timeout=900)
    assert grid.returncode == 1, grid.stderr[-3000:]  # Frey Faces' file is altered: its cells fail
    assert grid.stderr.count("skipped in") == 3, grid.stderr[-3000:]  # static MNIST's have their records
    # static_mnist mog: complete, its record not kept; static_mnist vampprior: killed while it evaluated
    shutil.rmtree(records / "static_mnist__mog__K20__seed0")
    shutil.rmtree(records / "static_mnist__vampprior__K20__seed0")
    (smoke / "static_mnist__vampprior__K20__seed0" / "metrics.json").unlink()
    # frey standard: another process holds its run directory
    held = smoke / "frey_faces__standard__K20__seed0"
    with another_process_holding(held):
        before = _tree(tmp_path)
        printed, tensorflow_loaded = run_and_see_if_tensorflow_loads(
            f"from vae_lib.pipeline import cli\nassert cli.main({['status', *where]!r}) == 0")
        assert _tree(tmp_path) == before, "status changes nothing"
    assert not tensorflow_loaded
    lines = printed.splitlines()
    state = {line.split()[0]: line.split("]", 1)[1].split()[0] for line in lines if "[grid]" in line}
    assert state == {
        "static_mnist/standard": "recorded",
        "static_mnist/vampprior": "interrupted",
        "static_mnist/vampprior_data": "not",
        "static_mnist/mog": "complete",
        "frey_faces/standard": "running",
        "frey_faces/vampprior": "failed",
        "frey_faces/vampprior_data": "not",
        "frey_faces/mog": "failed",
    }
    text = printed
    assert "test LL -" in text and "resumes from its checkpoint" in text and "sha256" in text
    assert lines[-2] == ("8 cells: 1 recorded, 1 complete, 1 running, 1 interrupted, 2 failed, "
                         "2 not started")
    assert lines[-1].startswith("7 cell(s) left, none with recorded cells"), "one seed: nothing to go by"

    # a fresh clone has a failed cell's record but no run directory; a file where a run directory goes
    shutil.rmtree(smoke / "frey_faces__vampprior__K20__seed0")
    (smoke / "static_mnist__vampprior_data__K20__seed0").write_text("not a run\n")
    again = subprocess.run([sys.executable, "-m", "vae_lib", "status", *where], capture_output=True,
                           text=True, timeout=120)
    lines = {line.split()[0]: line for line in again.stdout.splitlines() if "[grid]" in line}
    assert " failed " in lines["frey_faces/vampprior"] and "report" in lines["frey_faces/vampprior"]
    assert "is a file, not a run directory" in lines["static_mnist/vampprior_data"]


def test_compute_left_is_estimated_from_recorded_cells_of_the_same_kind(tmp_path):
    """Frey Faces, smoke plan, seeds 0 and 1: the standard prior's seed 0 is recorded (1000 epochs x
    6 s + 1200 s of evaluation: 2 h), its seed 1 has trained 3600 s so far (checkpoint): 1 h left;
    the VampPrior has no record to go by (synthetic records and checkpoint, no TensorFlow)."""
    import json

    import numpy as np

    from vae_lib.pipeline.rundir import CHECKPOINT, METRICS
    from vae_lib.pipeline.plans import Cell, plan
    from vae_lib.pipeline.status import compute_left

    cells = {(c.config.prior, c.config.seed): c for c in plan(
        "smoke", tmp_path / "runs", tmp_path / "report", ["frey_faces"], ["standard", "vampprior"],
        seeds=(0, 1), k_sweep=False)}
    recorded = cells["standard", 0].record_dir
    recorded.mkdir(parents=True)
    (recorded / METRICS).write_text(json.dumps(dict(epochs_trained=1000, seconds_per_epoch=6.0,
                                                    eval_seconds=1200.0)))
    running = cells["standard", 1].run_dir
    running.mkdir(parents=True)
    np.savez(running / CHECKPOINT, state=np.array(json.dumps(dict(epoch=600, train_seconds=3600.0))))
    kind = ("recorded cells of the same dataset, model, prior, K and purpose, or else of the same "
            "epoch budget")
    assert compute_left(list(cells.values())) == (
        f"about 1.0 h of run time left for 1 cell(s) (at the pace of {kind}); 2 more cell(s) with "
        f"no such record to go by")
    assert compute_left([cells["standard", 0]]) == "nothing left to run"
    # a cell of another purpose and the same epoch budget (the paper code's optimizer) goes by the
    # recorded one: 2 h; one with another budget (100 epochs) has nothing to go by
    base = cells["standard", 0]
    other_optimizer = Cell(base.config.replace(optimizer="adamnormgrad"), tmp_path / "a", tmp_path / "b", "paper_code")
    other_budget = Cell(base.config.replace(epochs=100), tmp_path / "c", tmp_path / "d", "k_sweep")
    assert compute_left([base, other_optimizer, other_budget]) == (
        f"about 2.0 h of run time left for 1 cell(s) (at the pace of {kind}); 1 more cell(s) with "
        f"no such record to go by")


def test_cells_that_need_a_gpu_are_estimated_and_left_out_on_a_cpu(tmp_path):
    """The convolutional models at the paper's protocol need a GPU: `status` says so with the time
    they would take here, computed from their quick run's record and the MLP HVAE's epochs, and
    `report` on a machine without a GPU leaves them out (exit 4) and still renders the report.
    Here: 1.90 s a step (190 s for 100 steps), 256 epochs of 500 steps = 2.8 days; evaluation
    1800 s x 10 (S) x 10 (images) = 2.1 days."""
    from helpers import synthetic_record
    from vae_lib.pipeline.plans import plan
    from vae_lib.pipeline.provenance import gpus_visible
    from vae_lib.pipeline.status import cell_state

    if gpus_visible():
        pytest.skip("this machine has a GPU: the cells would run")

    report = tmp_path / "report"
    synthetic_record(report / "quick" / "runs", "static_mnist", "vampprior", 0, [-100.0, -101.0], profile="quick",
                     model="convhvae", metrics=dict(seconds_per_epoch=190.0, n_train=10_000, eval_seconds=1800.0,
                                                    n_test=1000, threads=1, epochs_trained=30))
    synthetic_record(report / "paper" / "runs", "static_mnist", "vampprior", 0, [-85.0, -84.0], model="hvae",
                     metrics=dict(epochs_trained=256))
    cells = plan("paper", tmp_path / "runs", report, datasets=["static_mnist"], purposes=["conv"])
    states = {c.label: cell_state(c) for c in cells}
    state, detail = states["static_mnist/convhvae/vampprior K=500 seed=0 [conv]"]
    assert state == "needs a GPU"
    assert detail == ("on this project's CPU about 2.8 days of training (1.90 s a step, as its quick run "
                      "took on 1 thread(s), for 256 epochs, as the HVAE took) and 2.1 days of evaluation")
    assert states["static_mnist/pixelhvae/vampprior K=500 seed=0 [conv]"][1].startswith("no quick-profile run")
    empty = tmp_path / "empty_report"  # no records at all: the report renders, and nothing runs
    done = subprocess.run([sys.executable, "-m", "vae_lib", "report", "--profile", "paper", "--purposes", "conv",
                           "--datasets", "static_mnist", "--runs-dir", str(tmp_path / "runs"),
                           "--report-dir", str(empty)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 4, done.stderr[-2000:]
    assert done.stderr.count("needs a GPU, none is visible") == 4
    assert not any((tmp_path / "runs" / "paper").iterdir())
    assert "needs a GPU | needs a GPU" in (empty / "paper" / "table1.md").read_text()
