"""The command line: argument checks in-process through cli.main, and the real
`python -m vae_lib train ...` in subprocesses (slow)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from vae_lib.pipeline import cli
from vae_lib.pipeline.records import read_test_ll
from vae_lib.pipeline.rundir import CHECKPOINT, NOTEBOOKS, RECORD_FILES

REPO = Path(__file__).resolve().parent.parent
SMOKE = ["--dataset", "static_mnist", "--prior", "vampprior", "--profile", "smoke"]
FIRST = [*SMOKE, "--latent-dim", "8", "--max-valid", "150", "--threads", "1"]  # the complete run's command


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
    result = _run(["train", *FIRST, "--out", str(run_dir), "--quiet"], data_dir, REPO)
    return run_dir, result


@pytest.mark.slow
def test_train_smoke_run(complete_run):
    """Exit 0; the printed summary is a subset of metrics.json; the settings given as flags are the
    run's (config.json); the reported test LL is the mean of the per-image values kept in
    test_ll.npz, and it lies above the test ELBO."""
    run_dir, result = complete_run
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    summary = json.loads(result.stdout)
    for key, value in summary.items():
        assert metrics[key] == value
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["dataset"], config["prior"], config["components"], config["profile"]) == (
        "static_mnist", "vampprior", 20, "smoke")
    assert (config["latent_dim"], config["max_valid"]) == (8, 150)  # flags override the profile
    log_px, ess = read_test_ll(run_dir)
    assert metrics["test_ll"] == pytest.approx(log_px.mean(), rel=1e-12) and len(log_px) == metrics["n_test"]
    assert metrics["n_valid"] == 150 and metrics["threads"] == 1  # --threads is not a setting: not in config
    assert metrics["test_ll"] >= metrics["test_elbo"]
    assert set(RECORD_FILES) - set(NOTEBOOKS) | {CHECKPOINT} <= set(os.listdir(run_dir))  # no notebooks: the CLI ran


@pytest.mark.slow
def test_train_without_out_uses_the_run_directory_the_report_would(data_dir, tmp_path):
    """No --out: the run goes to $VAE_RUNS_DIR/<profile>/<name>, the directory in which
    `vampprior report` trains the same settings (so it would reuse the run), and says so."""
    from vae_lib.pipeline.plans import plan

    env = dict(_env(data_dir), VAE_RUNS_DIR=str(tmp_path / "runs"))
    result = subprocess.run([sys.executable, "-m", "vae_lib", "train", "--dataset", "static_mnist",
                             "--prior", "standard", "--profile", "smoke", "--quiet"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    cell, = [c for c in plan("smoke", tmp_path / "runs", tmp_path / "report", datasets=["static_mnist"],
                             priors=["standard"]) if c.purpose == "grid"]
    assert (cell.run_dir / "metrics.json").is_file()
    assert f"Run directory: {cell.run_dir}" in result.stderr


BAD_ARGS = {
    "unknown dataset": (["--dataset", "mnist", "--prior", "vampprior", "--profile", "smoke"],
                        ["Unknown dataset 'mnist'"]),
    "unknown prior": (["--dataset", "static_mnist", "--prior", "vamp", "--profile", "smoke"],
                      ["Unknown prior 'vamp'"]),
    "unknown profile": (["--dataset", "static_mnist", "--prior", "vampprior", "--profile", "fast"],
                        ["Unknown profile 'fast'"]),
    "unknown model": ([*SMOKE, "--model", "hvae3"], ["Unknown model 'hvae3'", "vae, hvae"]),
    "unknown weight init": ([*SMOKE, "--weight-init", "xavier"], ["Unknown weight init 'xavier'"]),
    "unknown optimizer": ([*SMOKE, "--optimizer", "sgd"], ["Unknown optimizer 'sgd'", "adamnormgrad"]),
    "KL estimator on the HVAE": ([*SMOKE, "--model", "hvae", "--kl-estimator", "monte_carlo"],
                                 ["HVAE's rate is always", "--kl-estimator has no effect"]),
    "zero components": ([*SMOKE, "--components", "0"], ["components", "0"]),
    "zero eval samples": ([*SMOKE, "--eval-samples", "0"], ["eval_samples", "0"]),
    "negative epochs": ([*SMOKE, "--epochs", "-1"], ["epochs", "-1"]),
    "zero epochs": ([*SMOKE, "--epochs", "0"], ["epochs must be positive, got 0"]),
    "zero threads": ([*SMOKE, "--threads", "0"], ["--threads must be at least 1, got 0"]),
}


@pytest.mark.parametrize("case", list(BAD_ARGS))
def test_bad_arguments_exit_2_with_one_message(case, tmp_path, capsys):
    """In-process through cli.main: exit code 2, one 'vampprior: error: ...' line naming the
    problem (and the choices), no traceback, and no run directory created."""
    args, fragments = BAD_ARGS[case]
    out = tmp_path / "run"
    assert cli.main(["train", *args, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vampprior: error:"), err
    for fragment in fragments:
        assert fragment in err
    assert not out.exists()


BAD_SETTINGS = {  # --set value -> what the one error line says
    "epochs=abc": "epochs must be a whole number, got 'abc'",
    "epochs=null": "epochs must be a whole number, got None",
    "components=2.5": "components must be a whole number, got 2.5",
    "learning_rate=fast": "learning_rate must be a number, got 'fast'",
    "trainable_pseudo_inputs=maybe": "trainable_pseudo_inputs must be true or false or null, got 'maybe'",
    "seed=1.5": "seed must be a whole number, got 1.5",
    "epochs=-1": "--set epochs=-1: epochs must be positive, got -1.",
}


@pytest.mark.parametrize("command", ["report", "status"])
def test_set_values_of_the_wrong_type_exit_2_before_any_cell(command, tmp_path, capsys):
    """--set values are read as JSON and checked against the setting's type (a traceback, or a
    cell named K2.5 that failed minutes later, before); a value wrong for every cell is said as
    such, without the advice to filter cells out."""
    runs, report = tmp_path / "runs", tmp_path / "report"
    for value, message in BAD_SETTINGS.items():
        args = [command, "--profile", "smoke", "--datasets", "frey_faces", "--priors", "standard",
                "--no-k-sweep", "--set", value, "--runs-dir", str(runs), "--report-dir", str(report)]
        assert cli.main(args) == 2, value
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("vampprior: error:") and message in err, (value, err)
        assert "Leave such cells out" not in err
    assert not runs.exists() or not any(runs.rglob("config.json")), "nothing run"


def test_an_unknown_option_is_told_with_its_commands_usage(capsys):
    """A misspelt option of a command: argparse's exit 2 with that command's usage line."""
    with pytest.raises(SystemExit) as exited:
        cli.main(["train", *SMOKE, "--epoches", "3"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: vampprior train") and "unrecognized arguments: --epoches 3" in err


@pytest.mark.slow
def test_run_dir_with_other_settings_is_refused_untouched(complete_run, data_dir):
    """A run directory holding a run of another config: exit 2, the message names the differing
    setting, and every file in it is left as it was."""
    run_dir, first = complete_run
    assert first.returncode == 0
    before = _snapshot(run_dir)
    result = _run(["train", *FIRST, "--epochs", "3", "--out", str(run_dir), "--quiet"], data_dir, REPO)
    _assert_clean_error(result, str(run_dir), "epochs: 2 there, 3 now")
    assert _snapshot(run_dir) == before


@pytest.mark.slow
def test_rerun_of_complete_run_prints_results_without_training(complete_run, data_dir):
    """The same command again: exit 0, same summary, and nothing in the run directory is rewritten
    (no retraining, no re-evaluation)."""
    run_dir, first = complete_run
    assert first.returncode == 0
    before = _snapshot(run_dir)
    result = _run(["train", *FIRST, "--out", str(run_dir), "--quiet"], data_dir, REPO)
    assert result.returncode == 0, result.stderr
    assert "already complete" in result.stderr
    assert json.loads(result.stdout) == json.loads(first.stdout)
    assert _snapshot(run_dir) == before


def test_output_under_a_regular_file_is_refused(tmp_path, capsys):
    """--out that cannot be created (its parent is a file): exit 2, one message naming it."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    assert cli.main(["train", *SMOKE, "--out", str(blocker / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vampprior: error:") and str(blocker / "run") in err and "Traceback" not in err


@pytest.mark.parametrize("blocked", ["--report-dir", "--runs-dir", "--render-only"])
def test_report_into_a_folder_it_cannot_write_is_refused_before_any_cell(blocked, tmp_path, capsys):
    """The main job checks its runs and report folders before it trains anything (a record is kept
    when a cell ends, hours later), and --render-only its report folder: exit 2, one message naming
    the folder and the option."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    render_only = blocked == "--render-only"
    blocked = "--report-dir" if render_only else blocked
    folders = {"--report-dir": tmp_path / "report", "--runs-dir": tmp_path / "runs", blocked: blocker / "x"}
    args = ["report", "--profile", "smoke", "--datasets", "frey_faces", "--priors", "standard", "--no-k-sweep"]
    args += ["--render-only"] if render_only else []
    for option, folder in folders.items():
        args += [option, str(folder)]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("vampprior: error:") and str(blocker / "x") in err and blocked in err
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("config.json")), "nothing run"


@pytest.mark.parametrize("given_by", ["--data-dir", "VAE_DATA_DIR"])
def test_a_data_directory_that_is_not_there_is_refused_before_any_cell(given_by, tmp_path, capsys, monkeypatch):
    """A mistyped data directory is said once, before the grid, naming it and where it was given
    (not by each cell's kernel after its start-up, about 12 s a cell)."""
    missing = tmp_path / "no_such_folder"
    args = ["report", "--profile", "smoke", "--datasets", "frey_faces", "--priors", "standard", "--no-k-sweep",
            "--runs-dir", str(tmp_path / "runs"), "--report-dir", str(tmp_path / "report")]
    if given_by == "--data-dir":
        args += ["--data-dir", str(missing)]
    else:
        monkeypatch.setenv("VAE_DATA_DIR", str(missing))
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("vampprior: error: The data directory") and str(missing) in err
    assert ("(VAE_DATA_DIR)" in err) == (given_by == "VAE_DATA_DIR") and "Traceback" not in err
    assert not any((tmp_path / "runs").rglob("config.json")), "no cell started"


def test_jobs_checking_one_folder_at_once_do_not_refuse_each_other(tmp_path):
    """Two main jobs started together check the same runs folder: each writes and removes a probe
    file of its own (with one shared name, 26 of 1200 checks from 4 threads failed with "cannot
    write": one job removed the other's probe)."""
    import threading

    from vae_lib.errors import ConfigError
    from vae_lib.pipeline.rundir import check_writable

    failures = []

    def check_many():
        for _ in range(300):
            try:
                check_writable(tmp_path / "runs", "runs folder", "--runs-dir")
            except ConfigError as err:
                failures.append(err)

    threads = [threading.Thread(target=check_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures[0]
    assert not list((tmp_path / "runs").iterdir()), "no probe file is left behind"


@pytest.mark.slow
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
        (root / "mpl").mkdir()
        (root / "mpl").chmod(0o777)
        out.mkdir()
        out.chmod(0o555)
        probe_code = ("try:\n open(%r, 'wb')\n print('written')\nexcept PermissionError:\n"
                      " print('denied')" % str(out / "probe"))
        probe = subprocess.run([*prefix, sys.executable, "-c", probe_code], capture_output=True, text=True)
        if probe.stdout.strip() != "denied":
            pytest.skip(f"cannot make a directory read-only for the CLI here: {probe.stdout}{probe.stderr}")
        # as 'nobody', root's HOME is not writable: give matplotlib (which TensorFlow loads) a
        # config folder it may write, as any user's own HOME would be
        env = dict(_env(data_dir), MPLCONFIGDIR=str(root / "mpl"), HOME=str(root))
        result = subprocess.run([*prefix, sys.executable, "-m", "vae_lib", "train", *SMOKE,
                                 "--out", str(out), "--quiet"], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=300)
        _assert_clean_error(result, str(out), "Permission denied")
        assert list(out.iterdir()) == []
    finally:
        if out.exists():
            out.chmod(0o755)
        shutil.rmtree(root)


@pytest.mark.slow
def test_render_only_rebuilds_the_paper_report_from_its_records_and_runs_nothing(tmp_path, capsys):
    """`vampprior report --profile paper --render-only` over copies of the committed paper records:
    the report is rendered with their numbers (read back from each record's metrics.json), no run
    directory is made, and --render-only with --rerun is refused."""
    records = REPO / "report" / "paper" / "runs"
    report, runs = tmp_path / "report", tmp_path / "runs"
    shutil.copytree(records, report / "paper" / "runs")
    args = ["report", "--profile", "paper", "--render-only", "--report-dir", str(report),
            "--runs-dir", str(runs)]
    assert cli.main(args + ["--rerun"]) == 2
    assert "--render-only" in capsys.readouterr().err
    assert cli.main(args) == 0
    assert not runs.exists()
    page = (report / "paper" / "index.html").read_text()
    seed0 = [m for m in records.glob("*/metrics.json") if m.parent.name.endswith("__seed0")]
    assert seed0
    for metrics in seed0:  # each seed-0 record's test LL appears in the per-run table
        assert f"{json.loads(metrics.read_text())['test_ll']:.2f}" in page, metrics.parent.name


@pytest.mark.slow
def test_the_paper_codes_settings_are_paired_against_ours_in_the_report(tmp_path):
    """The small-datasets section pairs "VampPrior - standard" under each of the paper code's
    settings. Caltech 101's committed records copied as those variants, with every image's log p(x)
    moved by a known amount: the optimizer's standard prior +1 and VampPrior +3 (so its difference
    is ours + 2); the KL estimator's standard prior -0.5 against our own VampPrior (ours + 0.5)."""
    from vae_lib.pipeline.config import make_config
    from vae_lib.pipeline.io import atomic_write_npz
    from vae_lib.pipeline.results import collect_rows, paired_difference, select
    from vae_lib.pipeline.rundir import run_dir_name

    records = REPO / "report" / "paper" / "runs"
    runs = tmp_path / "report" / "paper" / "runs"
    dataset, moves = "caltech101_silhouettes", []
    for seed in (0, 1, 2):
        for prior in ("standard", "vampprior"):
            shutil.copytree(records / f"{dataset}__{prior}__K500__seed{seed}", runs / f"{dataset}__{prior}__K500__seed{seed}")
        moves += [("standard", seed, dict(optimizer="adamnormgrad"), 1.0),
                  ("vampprior", seed, dict(optimizer="adamnormgrad"), 3.0),
                  ("standard", seed, dict(kl_estimator="monte_carlo"), -0.5)]
    for prior, seed, setting, shift in moves:
        config = make_config(dataset, prior, "paper", seed=seed, **setting)
        ours, folder = runs / f"{dataset}__{prior}__K500__seed{seed}", runs / run_dir_name(config)
        shutil.copytree(ours, folder)
        (folder / "config.json").write_text(json.dumps(config.to_dict()))
        log_px, ess = read_test_ll(ours)
        atomic_write_npz(folder / "test_ll.npz", compressed=True, log_px=log_px + shift, ess=ess)
        metrics = json.loads((folder / "metrics.json").read_text())
        metrics.update(test_ll=float((log_px + shift).mean()), config=config.to_dict())
        (folder / "metrics.json").write_text(json.dumps(metrics))
    rows = collect_rows(runs)
    ours = paired_difference(select(rows, dataset=dataset, prior="vampprior", variant=""),
                             select(rows, dataset=dataset, prior="standard", variant=""))
    assert cli.main(["report", "--profile", "paper", "--render-only", "--report-dir", str(tmp_path / "report")]) == 0
    page = (tmp_path / "report" / "paper" / "index.html").read_text()
    section = page[page.index("the paper code's optimizer</td>"):]
    assert section.split("</tr>")[0].count(f"{ours.mean + 2:+.2f} ±") == 1
    section = page[page.index("the paper code's KL estimator</td>"):]
    assert "as ours" in section.split("</tr>")[0]
    assert section.split("</tr>")[0].count(f"{ours.mean + 0.5:+.2f} ±") == 1
    # and 'What we found' says, for each setting, whether it changes the verdict on the VampPrior
    found = page[page.index("The paper code's settings on the small datasets"):]
    assert f"the paper code's optimizer: VampPrior − standard = {ours.mean + 2:+.2f} nats" in found
    assert f"the paper code's KL estimator: VampPrior − standard = {ours.mean + 0.5:+.2f} nats" in found
