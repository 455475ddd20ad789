"""One cell run by the main job: its training notebook, then its evaluation notebook, executed
with papermill into its run directory, the record kept when it completes, a ``failure.json`` (and
the executed notebook with the error) when it fails. A cell with a record is skipped (``rerun``
ignores the records: the cells run again in the runs directory, where a complete run is reused,
and their records are replaced). A cell that another process is running (its run directory
locked: the main job started twice, or a ``vampprior train`` into it) is reported busy and left to
that process."""
from __future__ import annotations

import os
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

from ..errors import ConfigError
from .io import atomic_write_json, fd2_to
from .plans import Cell
from .rundir import FAILURE, METRICS, copy_record, is_complete, is_locked, prepare_run_dir, runner_lock

REPO = Path(__file__).resolve().parents[2]
KERNEL_LOG = "kernel.log"  # in the run directory: the kernel's standard error (not in the record)
# papermill options for every notebook: no per-cell progress bar of its own, and a kernel that
# does not print its transport warning once per run.
PAPERMILL_OPTIONS = dict(kernel_name="python3", progress_bar=False,
                         extra_arguments=["--IPKernelApp.log_level=ERROR"], cwd=str(REPO))


def notebook_path(name: str, notebooks_dir=None) -> Path:
    path = Path(notebooks_dir or REPO / "notebooks") / f"{name}.ipynb"
    if not path.is_file():
        raise ConfigError(f"Cannot find {path}. Run `vampprior report` from a clone of the "
                          f"repository, or pass --notebooks DIR.")
    return path


@contextmanager
def _environment(values: dict):
    """Set environment variables (inherited by the notebook kernels) for the duration."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_cell(cell: Cell, notebooks, data_dir=None, rerun: bool = False,
             threads: int | None = None, checkpoint_every: float = 30.0) -> str:
    """Execute ``notebooks`` (the training notebook, then the evaluation notebook) for one cell:
    'done', 'skipped', 'failed', or 'busy' when another process is running in its run directory
    (then nothing here is touched: that process keeps the record when it finishes, or the next run
    of the main job does)."""
    if is_complete(cell.record_dir) and not rerun:
        return "skipped"
    if is_complete(cell.run_dir):
        copy_record(cell.run_dir, cell.record_dir)  # finished before its record was kept
        return "done"
    if is_locked(cell.run_dir):
        return "busy"
    prepare_run_dir(cell.run_dir, cell.config)  # checks an existing directory before any work
    with runner_lock(cell.run_dir) as ours:
        if not ours:  # another job got to it between the check above and now
            return "busy"
        return _execute(cell, notebooks, data_dir, rerun, threads, checkpoint_every)


def write_failure(cell: Cell, err: BaseException, **where) -> None:
    """The cell's failure.json: the error, its message and traceback (their ends), when, and
    ``where`` (the notebook and kernel log that hold the rest)."""
    cell.run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(cell.run_dir / FAILURE, dict(
        cell=cell.label, error=type(err).__name__, message=str(err)[-4000:],
        traceback="".join(traceback.format_exception(err))[-4000:],
        time=time.strftime("%Y-%m-%dT%H:%M:%S"), **where))


def _execute(cell, notebooks, data_dir, rerun, threads, checkpoint_every) -> str:
    """run_cell's work, with the cell's run directory ours."""
    import papermill

    c = cell.config
    # The kernel finds its run directory and the data through the environment, so the executed
    # notebooks kept in the record hold no paths of this machine.
    env = dict(VAE_RUNS_DIR=str(cell.run_dir.parent.parent.resolve()))
    if data_dir:
        env["VAE_DATA_DIR"] = str(Path(data_dir).expanduser().resolve())
    parameters = dict(dataset=c.dataset, prior=c.prior, profile=c.profile,
                      settings=c.differences_from_profile(), threads=threads, progress=False)
    training, evaluation = notebooks
    for notebook, extra in ((training, dict(checkpoint_every=checkpoint_every)), (evaluation, {})):
        executed = cell.run_dir / Path(notebook).name
        try:
            # the kernel's standard error (TensorFlow's C++ start-up lines, which no environment
            # variable silences; a crash's last words) goes to its log, not to this terminal
            with _environment(env), open(cell.run_dir / KERNEL_LOG, "ab") as log, fd2_to(log):
                papermill.execute_notebook(str(notebook), str(executed),
                                           parameters={**parameters, **extra}, **PAPERMILL_OPTIONS)
        except Exception as err:  # the executed notebook keeps the error; record it and go on
            write_failure(cell, err, notebook=str(executed), kernel_log=str(cell.run_dir / KERNEL_LOG))
            copy_record(cell.run_dir, cell.record_dir)  # the report marks the cell failed (a complete
            return "failed"                               # record of an earlier run is kept as it is)
    (cell.run_dir / FAILURE).unlink(missing_ok=True)
    if rerun and is_complete(cell.record_dir):
        (cell.record_dir / METRICS).unlink()
    copy_record(cell.run_dir, cell.record_dir)
    return "done"
