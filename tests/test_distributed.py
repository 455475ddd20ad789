"""The grid on Dask distributed, with real clusters (a LocalCluster, and a scheduler and workers
started as processes): the same numbers as the serial loop, a worker killed mid-cell, failing cells
retried then reported, workers that do not see the run folder or run another vae_lib refused, the
default path without Dask, and an interrupted driver."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import vae_lib
from helpers import can_mount_tmpfs, env_with_data, history_without_timings
from vae_lib.pipeline.records import checkpoint_epoch

pytest.importorskip("distributed")
pytestmark = pytest.mark.slow

REPORT = [sys.executable, "-m", "vae_lib", "report", "--profile", "smoke", "--no-k-sweep"]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_local_cluster_gives_the_serial_numbers(tmp_path, data_dir, smoke_grid):
    """The smoke grid run on 2 Dask workers (a LocalCluster of single-threaded processes; the
    session's shared grid) and the serial loop with --threads 1 give identical metrics for the
    same cell (Frey Faces: the 8-bit likelihood); the records say which threads each run had; the
    dashboard link was printed. The serial loop (no --workers, no --scheduler) never imports
    distributed (python -X importtime)."""
    _, dask_report, dask_done, _ = smoke_grid
    assert dask_done.returncode == 0 and "Dask dashboard: http" in dask_done.stderr
    runs, report = tmp_path / "runs", tmp_path / "report"
    serial_report = REPORT[:1] + ["-X", "importtime"] + REPORT[1:] + [
        "--datasets", "frey_faces", "--priors", "vampprior", "--threads", "1",
        "--runs-dir", str(runs), "--report-dir", str(report)]
    done = subprocess.run(serial_report, env=env_with_data(data_dir), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    imported = re.findall(r"^import time:.*\|\s*(\S+)$", done.stderr, re.M)
    assert "vae_lib.pipeline.runner" in imported and "papermill" in imported
    assert not [m for m in imported if m.split(".")[0] in ("distributed", "dask")]
    serial = {p.name: json.loads((p / "metrics.json").read_text()) for p in (report / "smoke" / "runs").iterdir()}
    assert len(serial) == 1
    for name, ours in serial.items():
        dask = json.loads((dask_report / "smoke" / "runs" / name / "metrics.json").read_text())
        assert ours["threads"] == dask["threads"] == 1
        for key in ("test_ll", "test_elbo", "best_valid_loss", "epochs_trained", "test_ess_median"):
            assert ours[key] == dask[key], (name, key)


def _descendants(pid: int) -> list[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, frontier = [], [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def test_worker_killed_mid_cell_is_replaced_and_the_cell_resumes(tmp_path, data_dir):
    """SIGKILL to the worker process running a cell once its checkpoint shows epoch 2: the nanny
    starts a new worker, the scheduler reschedules the cell, and it resumes from its checkpoint
    (the dead worker's kernel exits with its parent, freeing the run directory's lock) to the
    numbers and history of an uninterrupted serial run with the same threads."""
    cell = ["--datasets", "static_mnist", "--priors", "vampprior", "--set", "epochs=20",
            "--set", "max_train=5000", "--checkpoint-every", "0"]
    runs, report = tmp_path / "runs", tmp_path / "report"
    driver = subprocess.Popen(REPORT + cell + ["--workers", "2", "--runs-dir", str(runs),
                                               "--report-dir", str(report)],
                              env=env_with_data(data_dir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    run_dir = None
    while time.monotonic() < deadline and driver.poll() is None:
        found = list((runs / "smoke").glob("static_mnist__vampprior__*")) if (runs / "smoke").is_dir() else []
        run_dir = found[0] if found else None
        if run_dir is not None and checkpoint_epoch(run_dir) >= 2:
            break
        time.sleep(0.02)
    kernels = [p for p in _descendants(driver.pid) if "ipykernel_launcher" in _cmdline(p)]
    assert len(kernels) == 1, (kernels, driver.poll())
    worker = int(Path(f"/proc/{kernels[0]}/stat").read_text().rsplit(")", 1)[1].split()[1])
    os.kill(worker, signal.SIGKILL)
    epoch_at_kill = checkpoint_epoch(run_dir)
    assert 2 <= epoch_at_kill < 20, "the kill must land during training for the test to mean something"
    _, err = driver.communicate(timeout=900)
    assert driver.returncode == 0, err[-3000:]
    assert "1 done" in err and "0 failed" in err

    # the uninterrupted reference: the same cell trained and evaluated by `vampprior train` (the
    # functions the notebooks call, in one process) with one thread, as the Dask workers have
    serial_dir = tmp_path / "serial"
    done = subprocess.run([sys.executable, "-m", "vae_lib", "train", "--profile", "smoke", "--dataset", "static_mnist",
                           "--prior", "vampprior", "--epochs", "20", "--max-train", "5000", "--threads", "1",
                           "--quiet", "--out", str(serial_dir)],
                          env=env_with_data(data_dir), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (serial_dir / "config.json").read_text() == (run_dir / "config.json").read_text(), "the same cell"
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (run_dir, serial_dir))
    for key in ("test_ll", "test_elbo", "best_valid_loss", "epochs_trained", "best_epoch"):
        assert a[key] == b[key], key
    assert history_without_timings(run_dir) == history_without_timings(serial_dir)


def test_failing_cells_are_retried_then_reported_and_the_rest_finish(tmp_path, data_dir, broken_frey_data_dir):
    """A cell whose notebook fails (a corrupt data file) is tried 1 + --retries times, then marked
    failed in the report and in its record; the other cells finish; the command exits 1. (That the
    next main job runs only the failed cell is the same check on both paths, tested serially in
    test_reliability.py.)"""
    broken = broken_frey_data_dir
    runs, report = tmp_path / "runs", tmp_path / "report"
    command = REPORT + ["--datasets", "caltech101_silhouettes", "frey_faces", "--priors", "standard",
                        "--workers", "2", "--retries", "1", "--runs-dir", str(runs),
                        "--report-dir", str(report)]
    first = subprocess.run(command, env=env_with_data(broken), capture_output=True, text=True, timeout=900)
    assert first.returncode == 1, first.stderr[-3000:]
    failure = runs / "smoke" / "frey_faces__standard__K20__seed0" / "failure.json"
    assert "sha256" in json.loads(failure.read_text())["message"]
    assert (report / "smoke" / "runs" / failure.parent.name / "failure.json").is_file()
    assert (report / "smoke" / "runs" / "caltech101_silhouettes__standard__K20__seed0" / "metrics.json").is_file()
    page = (report / "smoke" / "index.html").read_text()
    assert page[page.index("<table>"):page.index("</table>")].count("<em>failed</em>") == 1


def test_workers_that_do_not_see_the_run_folder_or_run_another_vae_lib_are_refused(tmp_path, data_dir):
    """A running cluster (scheduler file) with a worker that imports another copy of vae_lib
    (another version) and, where root and unshare(1) allow, one in its own mount namespace with an
    empty tmpfs over the run folder (as a worker on another machine without the shared
    filesystem): --scheduler is refused before any cell runs, with a message naming both
    versions and the folder."""
    from distributed import Client

    runs, report = tmp_path / "runs", tmp_path / "report"
    runs.mkdir()
    scheduler_file = tmp_path / "scheduler.json"
    dask = str(Path(sys.executable).parent / "dask")
    scheduler = subprocess.Popen([dask, "scheduler", "--scheduler-file", str(scheduler_file),
                                  "--port", "0", "--dashboard-address", ":0"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    other = tmp_path / "other_checkout"
    shutil.copytree(Path(vae_lib.__file__).parent, other / "vae_lib")
    init = other / "vae_lib" / "__init__.py"
    init.write_text(init.read_text().replace(f'__version__ = "{vae_lib.__version__}"',
                                             '__version__ = "0.0.0+other"'))
    worker = f'{dask} worker --scheduler-file "{scheduler_file}" --nthreads 1 --no-dashboard'
    commands = [(["sh", "-c", f"exec {worker}"], dict(env_with_data(data_dir), PYTHONPATH=str(other)))]
    if can_mount_tmpfs():
        commands.append((["unshare", "-m", "--propagation", "private", "sh", "-c",
                          f'mount -t tmpfs -o size=1m tmpfs "{runs}" && exec {worker}'],
                         env_with_data(data_dir)))
    workers = []
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
                   for command, env in commands]
        with Client(scheduler_file=str(scheduler_file), timeout="30s") as client:
            client.wait_for_workers(len(workers), timeout=60)
        done = subprocess.run(REPORT + ["--datasets", "frey_faces", "--priors", "standard",
                                        "--scheduler", str(scheduler_file), "--runs-dir", str(runs),
                                        "--report-dir", str(report)],
                              env=env_with_data(data_dir), capture_output=True, text=True, timeout=300)
        assert done.returncode == 2, done.stderr[-3000:]
        assert "runs vae_lib 0.0.0+other" in done.stderr
        assert f"the driver {vae_lib.__version__}" in done.stderr
        if len(workers) == 2:
            assert "does not see the runs folder" in done.stderr and str(runs) in done.stderr
        assert not list(runs.glob("smoke/*")), "no cell ran"
    finally:
        for process in (*workers, scheduler):
            process.terminate()
            process.wait(timeout=30)


def test_interrupted_driver_keeps_finished_cells_and_the_rest_resume(tmp_path, data_dir):
    """Ctrl-C (SIGINT) to the driver once a first cell has its record: exit 130 with the resume
    message; finished records are intact; the same command then finishes the others and skips
    the finished ones."""
    runs, report = tmp_path / "runs", tmp_path / "report"
    # three cells on two workers: when the first record appears, the third cannot have finished
    command = REPORT + ["--datasets", "frey_faces", "caltech101_silhouettes", "static_mnist", "--priors", "standard",
                        "--set", "epochs=15", "--workers", "2",
                        "--runs-dir", str(runs), "--report-dir", str(report)]
    # Ctrl-C's signal handled as in a terminal's foreground job, also when this suite was started in
    # the background of a shell without job control, which makes its children ignore SIGINT (the
    # driver then ran its grid to the end: a fresh-clone run on 2026-12-08)
    driver = subprocess.Popen(command, env=env_with_data(data_dir), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    records = report / "smoke" / "runs"
    deadline = time.monotonic() + 600
    while not list(records.glob("*/metrics.json")) and time.monotonic() < deadline:
        time.sleep(0.1)
    # SIGINT, again every 3 s while the driver lives: once (a full suite run on 2026-12-03) a first
    # SIGINT sent as the first record appeared was not acted on and the grid ran to its end; a
    # user presses Ctrl-C again, and what is tested is what the driver then does
    for _ in range(20):
        driver.send_signal(signal.SIGINT)
        try:
            driver.wait(timeout=3)
            break
        except subprocess.TimeoutExpired:
            continue
    _, err = driver.communicate(timeout=120)
    assert driver.returncode == 130, err[-3000:]
    assert "rerun the same command" in err
    finished = {p.parent.name: p.read_bytes() for p in records.glob("*/metrics.json")}
    assert 1 <= len(finished) < 3
    again = subprocess.run(command, env=env_with_data(data_dir), capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"'skipped': {len(finished)}" in again.stderr
    assert len(list(records.glob("*/metrics.json"))) == 3
    for name, data in finished.items():
        assert (records / name / "metrics.json").read_bytes() == data


def test_a_worker_with_several_threads_runs_one_cell_at_a_time_or_is_refused():
    """A cell's TensorFlow takes all its worker's threads: single-threaded workers need nothing,
    wider ones must declare the resource cell=1 (cells then ask for it), and a cluster with a wider
    worker without it is refused before anything is submitted (real in-process clusters)."""
    from distributed import Client, LocalCluster

    from vae_lib.pipeline.distributed import one_cell_per_worker
    from vae_lib.errors import ConfigError

    def options(**cluster):
        with LocalCluster(n_workers=1, processes=False, dashboard_address=":0", **cluster) as c, Client(c) as client:
            return one_cell_per_worker(client)

    assert options(threads_per_worker=1) == {}
    assert options(threads_per_worker=2, resources={"cell": 1}) == {"resources": {"cell": 1}}
    with pytest.raises(ConfigError, match=r"--resources cell=1.*\(2 threads\)"):
        options(threads_per_worker=2)


def test_workers_without_dask_installed_get_a_clear_error(tmp_path, data_dir):
    """--workers 2 where distributed cannot be imported: exit 2 with what to install, no traceback."""
    code = ("import sys; sys.modules['distributed'] = None\n"  # as if it were not installed
            "from vae_lib.pipeline.cli import main\n"
            f"sys.exit(main(['report', '--profile', 'smoke', '--datasets', 'frey_faces', '--no-k-sweep', "
            f"'--workers', '2', '--runs-dir', {str(tmp_path / 'runs')!r}, '--report-dir', {str(tmp_path / 'report')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], env=env_with_data(data_dir), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "pip install -e '.[dask]'" in done.stderr and "Traceback" not in done.stderr


def test_an_existing_scheduler_is_given_time_for_its_first_worker_then_a_clear_error(tmp_path):
    """A scheduler with no worker yet (as a batch queue starts them later): connecting waits for
    one and goes on once it registers; with none within the time allowed, a ConfigError says how
    to start one and how to wait longer."""
    import threading

    from distributed import Client, LocalCluster

    from vae_lib.errors import ConfigError
    from vae_lib.pipeline.distributed import wait_for_a_worker

    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as cluster:
        client = Client(cluster.scheduler_address, timeout="30s")
        with pytest.raises(ConfigError, match=r"No Dask worker registered .* within 1 s.*`dask worker .* --nthreads 1`.*VAE_WORKER_WAIT"):
            wait_for_a_worker(client, cluster.scheduler_address, timeout=1)
        client = Client(cluster.scheduler_address, timeout="30s")
        threading.Timer(1.0, lambda: cluster.scale(1)).start()  # a worker that comes late
        wait_for_a_worker(client, cluster.scheduler_address, timeout=60)
        assert len(client.scheduler_info()["workers"]) == 1
        client.close()
