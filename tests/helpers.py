"""Helpers shared by the test modules that drive real processes (tests/ is on sys.path under
pytest's default import mode)."""
from __future__ import annotations

import contextlib
import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path


def env_with_data(data_dir) -> dict:
    """This process's environment with VAE_DATA_DIR pointing at ``data_dir``."""
    return dict(os.environ, VAE_DATA_DIR=str(data_dir))


def run_and_see_if_tensorflow_loads(code: str) -> tuple[str, bool]:
    """Run ``code`` in a fresh interpreter: (what it printed, whether TensorFlow got loaded)."""
    probe = code + "\nimport sys\nprint('tensorflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    *printed, loaded = done.stdout.splitlines()
    return "\n".join(printed), loaded == "True"


def history_without_timings(run_dir: Path) -> list[dict]:
    """history.csv's rows without their wall-clock column (the rest must replay exactly)."""
    with open(Path(run_dir) / "history.csv") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def can_mount_tmpfs() -> bool:
    """A private mount namespace with a small tmpfs: root with unshare(1), as in CI here."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            "mount -t tmpfs -o size=1m tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


@contextlib.contextmanager
def another_process_holding(run_dir: Path, lock: str = ".lock"):
    """While inside, a separate process holds ``run_dir``'s ``lock`` (".lock": the process training
    there; ".runner.lock": a main job running the cell)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(900)",
         str(Path(run_dir) / lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.kill()
        holder.wait()
