"""The real command line, `python -m vae_lib train ...`, in subprocesses (slow)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
SMOKE = ["--dataset", "static_mnist", "--prior", "vampprior", "--profile", "smoke"]


def _env(data_dir):
    env = dict(os.environ, VAE_DATA_DIR=str(data_dir))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def _run(args, data_dir, cwd):
    return subprocess.run([sys.executable, "-m", "vae_lib", *args], cwd=cwd, env=_env(data_dir),
                          capture_output=True, text=True, timeout=300)


def _snapshot(folder):
    """name -> (bytes, mtime_ns) of every file in ``folder``."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file()}


def _assert_clean_error(result, *fragments):
    """Exit 2, no traceback, stderr is the one-line 'vampprior: error: ...' message."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("vampprior: error:"), result.stderr
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


@pytest.fixture(scope="module")
def complete_run(data_dir, tmp_path_factory):
    """One real smoke run through the command line: (run_dir, completed process)."""
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    result = _run(["train", *SMOKE, "--out", str(run_dir), "--quiet"], data_dir, REPO)
    return run_dir, result


def test_train_smoke_run(complete_run):
    """Exit 0; metrics.json is written and the printed summary is its subset."""
    run_dir, result = complete_run
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    summary = json.loads(result.stdout)
    for key, value in summary.items():
        assert metrics[key] == value
    assert (metrics["dataset"], metrics["prior"], metrics["components"]) == ("static_mnist", "vampprior", 20)
    assert metrics["config"]["profile"] == "smoke"
    assert metrics["test_ll"] >= metrics["test_elbo"]
    assert {"config.json", "checkpoint.npz", "history.csv", "test_ll.npy"} <= set(os.listdir(run_dir))


BAD_ARGS = {
    "unknown dataset": (["--dataset", "mnist", "--prior", "vampprior", "--profile", "smoke"],
                        ["Unknown dataset 'mnist'"]),
    "unknown prior": (["--dataset", "static_mnist", "--prior", "vamp", "--profile", "smoke"],
                      ["Unknown prior 'vamp'"]),
    "unknown profile": (["--dataset", "static_mnist", "--prior", "vampprior", "--profile", "fast"],
                        ["Unknown profile 'fast'"]),
    "zero components": ([*SMOKE, "--components", "0"], ["components", "0"]),
    "zero eval samples": ([*SMOKE, "--eval-samples", "0"], ["eval_samples", "0"]),
    "negative epochs": ([*SMOKE, "--epochs", "-1"], ["epochs", "-1"]),
}


@pytest.fixture(scope="module")
def bad_arg_results(data_dir, tmp_path_factory):
    """All rejected commands, run concurrently (each process pays for importing TensorFlow)."""
    root = tmp_path_factory.mktemp("bad_args")

    def one(item):
        name, (args, _) = item
        out = root / name.replace(" ", "_")
        return name, (out, _run(["train", *args, "--out", str(out), "--quiet"], data_dir, REPO))

    with ThreadPoolExecutor(max_workers=2) as pool:  # 2 cores
        return dict(pool.map(one, BAD_ARGS.items()))


@pytest.mark.parametrize("case", list(BAD_ARGS))
def test_bad_arguments_exit_2_without_traceback(bad_arg_results, case):
    """Exit code 2, one 'vampprior: error: ...' message naming the problem, no traceback, and no
    run directory created."""
    out, result = bad_arg_results[case]
    _assert_clean_error(result, *BAD_ARGS[case][1])
    assert not out.exists()


def test_run_dir_with_other_settings_is_refused_untouched(complete_run, data_dir):
    """A run directory holding a run of another config: exit 2, the message names the differing
    setting, and every file in it is left as it was."""
    run_dir, first = complete_run
    assert first.returncode == 0
    before = _snapshot(run_dir)
    result = _run(["train", *SMOKE, "--epochs", "3", "--out", str(run_dir), "--quiet"], data_dir, REPO)
    _assert_clean_error(result, str(run_dir), "epochs: 2 there, 3 now")
    assert _snapshot(run_dir) == before


def test_rerun_of_complete_run_prints_results_without_training(complete_run, data_dir):
    """The same command again: exit 0, same summary, and nothing in the run directory is rewritten
    (no retraining, no re-evaluation)."""
    run_dir, first = complete_run
    assert first.returncode == 0
    before = _snapshot(run_dir)
    result = _run(["train", *SMOKE, "--out", str(run_dir), "--quiet"], data_dir, REPO)
    assert result.returncode == 0, result.stderr
    assert "already complete" in result.stderr
    assert json.loads(result.stdout) == json.loads(first.stdout)
    assert _snapshot(run_dir) == before


def test_output_under_a_regular_file_is_refused(tmp_path, data_dir):
    """--out that cannot be created (its parent is a file): exit 2, no traceback."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    result = _run(["train", *SMOKE, "--out", str(blocker / "run"), "--quiet"], data_dir, REPO)
    _assert_clean_error(result, str(blocker / "run"))


def test_read_only_output_directory_is_refused(data_dir):
    """A read-only (mode 555) --out directory: exit 2, no traceback, nothing written. Root ignores
    permission bits, so as root the command runs as user 'nobody' through setpriv(1)."""
    prefix = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root (permission bits do not apply) and setpriv is missing")
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        importable = subprocess.run([*prefix, sys.executable, "-c", "import vae_lib"], cwd="/",
                                    env=_env(data_dir), capture_output=True, text=True)
        if importable.returncode != 0:  # e.g. the checkout lies under a private (0700) folder
            pytest.skip("user 'nobody' cannot import vae_lib from this checkout: "
                        + importable.stderr.strip().splitlines()[-1])
    root = Path(tempfile.mkdtemp(prefix="vae_ro_"))  # outside pytest's private (0700) tmp folders
    out = root / "read_only"
    try:
        root.chmod(0o755)
        out.mkdir()
        out.chmod(0o555)
        probe_code = ("try:\n open(%r, 'wb')\n print('written')\nexcept PermissionError:\n"
                      " print('denied')" % str(out / "probe"))
        probe = subprocess.run([*prefix, sys.executable, "-c", probe_code], capture_output=True, text=True)
        if probe.stdout.strip() != "denied":
            pytest.skip(f"cannot make a directory read-only for the CLI here: {probe.stdout}{probe.stderr}")
        result = subprocess.run([*prefix, sys.executable, "-m", "vae_lib", "train", *SMOKE,
                                 "--out", str(out), "--quiet"], cwd=REPO, env=_env(data_dir),
                                capture_output=True, text=True, timeout=300)
        _assert_clean_error(result, str(out), "Permission denied")
        assert list(out.iterdir()) == []
    finally:
        if out.exists():
            out.chmod(0o755)
        shutil.rmtree(root)
