"""Faults with real processes and real files: a training run killed with SIGKILL resumes to the
same numbers, a second process on the same run directory is refused (also a `vampprior train`
into a cell a main job is running), a grid leaves a cell that another process is running to it,
and a grid with a broken dataset records its failures, reports them, and finishes only those cells
when rerun; a full disk (a real small tmpfs) is refused up front, and a disk that fills up during
training keeps the last checkpoint. (Means and spreads over seeds are tested on synthetic records
in test_results.py.)"""
from __future__ import annotations

import csv
import json
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import another_process_holding, can_mount_tmpfs, env_with_data, history_without_timings
from vae_lib.pipeline.config import make_config
from vae_lib.pipeline.records import checkpoint_epoch, read_test_ll
from vae_lib.pipeline.rundir import LOCK, RUNNER_LOCK, prepare_run_dir, runner_lock
from vae_lib.pipeline.cli import EXIT_BUSY
from vae_lib.pipeline.plans import plan

pytestmark = pytest.mark.slow

# Small models on 3000 images: a fraction of a second an epoch, a checkpoint after each.
EPOCHS = 8
TRAIN = [sys.executable, "-m", "vae_lib", "train", "--dataset", "static_mnist", "--prior",
         "vampprior", "--profile", "smoke", "--max-train", "3000", "--eval-samples", "20",
         "--checkpoint-every", "0", "--quiet", "--epochs"]


def _table1(report: Path) -> str:
    page = (report / "index.html").read_text()
    return page[page.index("<table>"):page.index("</table>")]


def test_killed_run_resumes_to_identical_results_and_run_dir_is_locked(tmp_path, data_dir):
    """SIGKILL during training, then the same command again: the same test LL, ELBO, best epoch and
    history as an uninterrupted run in another process (so the same settings and seed give the
    same numbers in two processes, bitwise). The trainer is frozen (SIGSTOP) as soon as its
    checkpoint shows epoch 2, so the kill lands during training whatever the machine's speed;
    while it holds the run directory a second process is refused. The two-level HVAE: what a
    checkpoint restores is the same code for every model, tested in-process for the VAE and the
    PixelHVAE too (test_training.py); this test is about the process boundary."""
    env = env_with_data(data_dir)
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    train = TRAIN + [str(EPOCHS), "--model", "hvae"]
    process = subprocess.Popen(train + ["--out", str(killed)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while checkpoint_epoch(killed) < 2 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGSTOP)
    epoch_at_kill = checkpoint_epoch(killed)
    assert process.poll() is None and 2 <= epoch_at_kill < EPOCHS, process.stderr.read()[-2000:]

    # While it holds the run directory, a second process is refused and changes nothing.
    before = (killed / "config.json").read_bytes()
    second = subprocess.run(train + ["--out", str(killed)], env=env, capture_output=True, text=True)
    assert second.returncode == 2
    assert "Another process is running" in second.stderr and "Traceback" not in second.stderr
    assert (killed / "config.json").read_bytes() == before

    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "metrics.json").exists()

    resumed = subprocess.run(train + ["--out", str(killed)], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    uninterrupted = subprocess.run(train + ["--out", str(whole)], env=env, capture_output=True, text=True)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-2000:]

    a, b = (json.loads((d / "metrics.json").read_text()) for d in (killed, whole))
    for key in ("test_ll", "test_elbo", "best_epoch", "epochs_trained", "best_valid_loss"):
        assert a[key] == b[key], key
    assert np.array_equal(read_test_ll(killed)[0], read_test_ll(whole)[0])
    assert history_without_timings(killed) == history_without_timings(whole)
    assert not list(killed.glob(".*.tmp")), "no half-written temporary files are left behind"


def test_a_cell_running_in_another_process_is_left_to_it(tmp_path, data_dir):
    """The main job started twice: a cell whose run directory another process holds (Frey Faces:
    the lock of the process training there; Caltech 101: the lock of a main job running the cell,
    taken before its kernel starts) is reported busy and left alone: no failure, no record, nothing
    written there (so, once those processes are gone, the next main job finds them as cells not
    started and runs them, as the interrupted-driver and broken-dataset tests rerun theirs); the
    other cell runs."""
    runs, report = tmp_path / "runs", tmp_path / "report"
    command = [sys.executable, "-m", "vae_lib", "report", "--profile", "smoke", "--datasets",
               "static_mnist", "caltech101_silhouettes", "frey_faces", "--priors", "standard", "--no-k-sweep",
               "--runs-dir", str(runs), "--report-dir", str(report)]
    # the run directories as a process that has started the cell holds them: prepared, and locked
    held, configs = {}, {}
    for dataset, lock in (("frey_faces", LOCK), ("caltech101_silhouettes", RUNNER_LOCK)):
        cell, = plan("smoke", runs, report, datasets=[dataset], priors=["standard"], k_sweep=False)
        held[lock] = cell.run_dir
        cell.run_dir.mkdir(parents=True)
        prepare_run_dir(cell.run_dir, cell.config)
        configs[lock] = (cell.run_dir / "config.json").read_bytes()
    with another_process_holding(held[LOCK], LOCK), another_process_holding(held[RUNNER_LOCK], RUNNER_LOCK):
        first = subprocess.run(command, env=env_with_data(data_dir), capture_output=True, text=True,
                               timeout=900)
        with runner_lock(held[RUNNER_LOCK]) as ours:  # a job that got past the check in the same instant backs off
            assert not ours
    assert first.returncode == EXIT_BUSY, first.stderr[-3000:]  # rendered, but not every cell
    assert first.stderr.count("busy in") == 2 and first.stderr.count("done in") == 1
    for lock, run_dir in held.items():
        assert f"another process is running in {run_dir}" in first.stderr
        assert sorted(p.name for p in run_dir.iterdir()) == sorted([lock, "config.json"]), "nothing written there"
        assert (run_dir / "config.json").read_bytes() == configs[lock]
        assert not (report / "smoke" / "runs" / run_dir.name).exists(), "no record of the busy cell"


def test_train_into_a_cell_a_main_job_is_running_is_refused(tmp_path, data_dir):
    """A main job holds a cell's runner lock from before its kernel starts; a `vampprior train`
    into that run directory started meanwhile is refused at once (it used to take the run lock
    first, and the main job then recorded a failure for a running cell), and writes nothing."""
    held = tmp_path / "held"  # prepared by the main job, which then took the runner lock
    prepare_run_dir(held, make_config("static_mnist", "vampprior", "smoke", max_train=3000,
                                      eval_samples=20, epochs=EPOCHS))
    with another_process_holding(held, RUNNER_LOCK):
        second = subprocess.run(TRAIN + [str(EPOCHS), "--out", str(held)], env=env_with_data(data_dir),
                                capture_output=True, text=True, timeout=300)
    assert second.returncode == 2, second.stderr[-2000:]
    assert f"Another process is running in {held}" in second.stderr and "Traceback" not in second.stderr
    assert sorted(p.name for p in held.iterdir()) == sorted([RUNNER_LOCK, "config.json"])


def test_grid_with_a_broken_dataset_reports_failures_and_reruns_only_them(tmp_path, data_dir,
                                                                          broken_frey_data_dir):
    broken = broken_frey_data_dir
    runs, report = tmp_path / "runs", tmp_path / "report"
    command = [sys.executable, "-m", "vae_lib", "report", "--profile", "smoke", "--datasets",
               "caltech101_silhouettes", "frey_faces", "--priors", "vampprior", "--no-k-sweep",
               "--runs-dir", str(runs), "--report-dir", str(report)]
    first = subprocess.run(command, env=env_with_data(broken), capture_output=True, text=True, timeout=900)
    assert first.returncode == 1, "failed cells make the command exit non-zero"
    assert first.stderr.count("failed in") == 1 and first.stderr.count("done in") == 1
    assert "absl" not in first.stderr and "oneDNN" not in first.stderr, "kernels' start-up lines go to kernel.log"

    failure = runs / "smoke" / "frey_faces__vampprior__K20__seed0" / "failure.json"
    message = json.loads(failure.read_text())["message"]
    assert "frey_rawface.mat" in message and "sha256" in message
    assert json.loads(failure.read_text())["notebook"].endswith("training.ipynb")  # loading the data failed
    assert (failure.parent / "training.ipynb").is_file(), "the executed notebook is kept"
    assert not (failure.parent / "evaluation.ipynb").exists(), "nothing to evaluate after a failed training"
    with open(report / "smoke" / "results.csv") as f:
        status = {(r["dataset"], r["prior"]): r["status"] for r in csv.DictReader(f)}
    assert status == {("caltech101_silhouettes", "vampprior"): "complete", ("frey_faces", "vampprior"): "failed"}
    assert _table1(report / "smoke").count("<em>failed</em>") == 1, "the report marks failed cells, invents none"
    caltech_metrics = (runs / "smoke" / "caltech101_silhouettes__vampprior__K20__seed0" / "metrics.json").read_bytes()

    shutil.copyfile(data_dir / "frey_faces/frey_rawface.mat", broken / "frey_faces/frey_rawface.mat")
    second = subprocess.run(command, env=env_with_data(broken), capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stderr.count("skipped in") == 1 and second.stderr.count("done in") == 1
    assert not list(runs.glob("smoke/*/failure.json"))
    assert (runs / "smoke" / "caltech101_silhouettes__vampprior__K20__seed0" / "metrics.json").read_bytes() == caltech_metrics
    assert "<em>failed</em>" not in _table1(report / "smoke")
    assert not list((report / "smoke" / "runs").glob("*/failure.json")), "records of failures are replaced"


needs_tmpfs = pytest.mark.skipif(not can_mount_tmpfs(),
                                 reason="needs root and unshare(1) to mount a small tmpfs")
SMOKE_TRAIN = [sys.executable, "-m", "vae_lib", "train", "--dataset", "static_mnist", "--prior",
               "vampprior", "--profile", "smoke", "--quiet"]


def _on_tmpfs(size, script, tmp_path, data_dir):
    """Run ``script`` (sh) with $MNT a fresh tmpfs of ``size`` in a private mount namespace;
    $KEEP is a folder on the real disk for what the test inspects afterwards."""
    mnt, keep = tmp_path / "mnt", tmp_path / "keep"
    mnt.mkdir(), keep.mkdir()
    env = dict(env_with_data(data_dir), MNT=str(mnt), KEEP=str(keep), TRAIN=shlex.join(SMOKE_TRAIN))
    script = f'mount -t tmpfs -o size={size} tmpfs "$MNT" || exit 99\n' + script
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode != 99, done.stderr
    return done, keep


@needs_tmpfs
def test_full_disk_is_refused_before_any_work(tmp_path, data_dir):
    """A run directory on a disk with 1 MB free: a clear error, exit 2, and nothing written."""
    done, keep = _on_tmpfs("1m", '$TRAIN --out "$MNT/run"; status=$?; ls -A "$MNT/run" > "$KEEP/ls"; '
                                 'exit $status', tmp_path, data_dir)
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("vampprior: error:") and "MB free" in last and "Traceback" not in done.stderr
    assert (keep / "ls").read_text() == ""


@needs_tmpfs
def test_disk_filling_up_during_training_keeps_the_last_checkpoint(tmp_path, data_dir):
    """Another program fills the disk after the first checkpoint: the next checkpoint cannot be
    written; the run stops with a clear error naming the epoch of the checkpoint it kept, which is
    intact and resumable, and no temporary file is left behind."""
    script = '''
$TRAIN --epochs 400 --checkpoint-every 0 --out "$MNT/run" &
pid=$!
while [ ! -f "$MNT/run/checkpoint.npz" ] && kill -0 $pid 2>/dev/null; do sleep 0.02; done
dd if=/dev/zero of="$MNT/filler" bs=1M 2>/dev/null
wait $pid; status=$?
cp -r "$MNT/run" "$KEEP/run"
exit $status
'''
    done, keep = _on_tmpfs("120m", script, tmp_path, data_dir)
    assert done.returncode == 2, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("vampprior: error:") and "Traceback" not in done.stderr
    assert "No space left on device" in last and "checkpoint" in last
    epoch_kept = checkpoint_epoch(keep / "run")
    assert 1 <= epoch_kept < 400 and f"(epoch {epoch_kept})" in last
    assert not (keep / "run" / "metrics.json").exists()
    assert not list((keep / "run").glob(".*.tmp")) and not list((keep / "run").glob("*.tmp"))


def test_taking_a_run_directory_deletes_what_a_killed_writer_left_half_written(tmp_path):
    """A process killed inside an atomic write leaves its temporary file; the next holder of the
    run directory's lock deletes it (and nothing else), and no one else can hold the lock meanwhile."""
    from vae_lib.errors import ConfigError
    from vae_lib.pipeline.rundir import run_lock

    (tmp_path / ".history.csv.abc123.tmp").write_text("half")
    (tmp_path / "history.csv").write_text("kept")
    with run_lock(tmp_path):
        assert not list(tmp_path.glob(".*.tmp"))
        assert (tmp_path / "history.csv").read_text() == "kept"
        with pytest.raises(ConfigError, match="Another process"), run_lock(tmp_path):
            pass
