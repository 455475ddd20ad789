"""``vampprior status``: where a profile's plan stands, one line a cell, without TensorFlow and
without touching anything: recorded (with its test log-likelihood), complete but not yet recorded,
running (in another process: its epoch and when early stopping ends it), interrupted (resumes from
its checkpoint with the same ``vampprior report``), failed (why), or not started; and about how
much run time the cells without a record still need.

For a grid left running in the background for hours (``nohup vampprior report --profile paper &``),
on a cluster, or after a lost session: what is done, what is running, what the same command will
do next.
"""
from __future__ import annotations

import math
import os
import sys
import threading
from collections import Counter
from contextlib import contextmanager

from ..progress import duration, progress_bar
from ..schedule import projected_end
from .io import read_json
from .plans import Cell
from .records import checkpoint_state, training_seconds
from .rundir import FAILURE, METRICS, failure_summary, is_complete, is_locked, sampled_so_far

def cell_status(cell: Cell, unreadable: str = "running") -> str:
    """Where a running cell is, from its run directory's last checkpoint (saved every
    ``--checkpoint-every`` seconds): its epoch, its best validation loss and the epoch at which early
    stopping ends it unless it improves (and the training time until then at its recent pace), then
    its evaluation; ``unreadable`` for a checkpoint of another version."""
    try:
        return _checkpoint_status(cell)
    except (KeyError, TypeError, ZeroDivisionError):
        return unreadable


def _checkpoint_status(cell: Cell) -> str:
    state = checkpoint_state(cell.run_dir)
    if not state or not state["epoch"]:
        return "starting"
    c, epoch, best = cell.config, state["epoch"], state["best_epoch"]
    cap = c.epochs
    if c.min_steps:  # the cap in epochs depends on the steps per epoch, known from the steps so far
        cap = max(cap, math.ceil(c.min_steps / (state["step"] / epoch)))
    if state["stopped_early"] or epoch >= cap:
        sampled = sampled_so_far(cell.run_dir)
        so_far = f", {sampled[0]} of {sampled[1]} images done" if sampled else ""
        return (f"trained {epoch} epochs (best {best}); test log-likelihood with "
                f"S={c.eval_samples}{so_far}")
    stop_at = projected_end(epoch, best, cap, c.warmup_epochs, c.patience)
    # the pace of the last epochs (this machine, now), not the run's average over earlier sessions
    recent = [row["seconds"] for row in state.get("history", [])[-20:] if "seconds" in row]
    pace = sorted(recent)[len(recent) // 2] if recent else None
    eta = f" (about {duration((stop_at - epoch) * pace)} more at {pace:.0f} s an epoch)" if pace else ""
    return (f"epoch {epoch}/{cap}, best validation loss {state['best_loss']:.2f} at epoch {best}; "
            f"ends at epoch {stop_at} unless it improves{eta}")


@contextmanager
def watching(cell: Cell, prefix: str, enabled: bool, every: float = 5.0):
    """While the block runs, one line on the terminal with :func:`cell_status`, refreshed every
    ``every`` seconds, cleared at the end (``enabled=False``: nothing)."""
    if not enabled:
        yield
        return
    # the terminal as it is now: while the cell runs, file descriptor 2 goes to its kernel.log
    terminal = os.fdopen(os.dup(sys.stderr.fileno()), "w")
    bar = progress_bar(None, prefix, "", bar_format="{desc} [{elapsed}]", leave=False, file=terminal)
    stop = threading.Event()

    def poll():
        while True:
            bar.set_description_str(f"{prefix}: {cell_status(cell)}", refresh=True)
            if stop.wait(every):
                return

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        bar.close()
        terminal.close()


def cpu_estimate(cell: Cell) -> str:
    """How long a cell that needs a GPU would take on this project's CPUs, from the records: its
    quick-profile cell's time a training step (with that record's threads) times the paper's steps
    (500 an epoch, for as many epochs as the MLP HVAE with this prior took on this dataset, else
    the VAE), and its quick evaluation scaled by the images and samples (10 x 10 at the paper's)."""
    c = cell.config
    report = cell.record_dir.parent.parent.parent  # report_dir/<profile>/runs/<name>
    from .config import make_config
    from .rundir import run_dir_name

    quick = make_config(c.dataset, c.prior, "quick", model=c.model, seed=c.seed)
    path = report / "quick" / "runs" / run_dir_name(quick) / METRICS
    if not path.is_file():
        return "no quick-profile run of it is recorded yet to estimate its time on a CPU by"
    m = read_json(path)
    step = m["seconds_per_epoch"] / -(-m["n_train"] // quick.batch_size)
    epochs = None
    for model in ("hvae", "vae"):
        mlp = report / c.profile / "runs" / run_dir_name(make_config(c.dataset, c.prior, c.profile, model=model)) / METRICS
        if mlp.is_file():
            epochs, which = read_json(mlp)["epochs_trained"], model.upper()
            break
    if epochs is None:
        epochs, which = c.epochs, "the cap"
    steps = epochs * -(-50_000 // c.batch_size)
    evaluation = m["eval_seconds"] * (c.eval_samples / quick.eval_samples) * (10_000 / m["n_test"])
    return (f"on this project's CPU about {steps * step / 86400:.1f} days of training ({step:.2f} s a "
            f"step, as its quick run took on {m.get('threads', '?')} thread(s), for {epochs} epochs, "
            f"as the {which} took) and {evaluation / 86400:.1f} days of evaluation")


STATES = ("recorded", "complete", "running", "interrupted", "failed", "needs a GPU", "not started")
OTHER_VERSION = "checkpoint of another version"  # what a checkpoint this version cannot read says


def cell_state(cell: Cell) -> tuple[str, str]:
    """(state, detail) of one cell; ``state`` is one of :data:`STATES`."""
    run_dir = cell.run_dir
    if run_dir.is_dir() and is_locked(run_dir):  # first: a cell run again (--rerun) has a record
        return "running", cell_status(cell, unreadable=OTHER_VERSION)
    if is_complete(cell.record_dir):
        m = read_json(cell.record_dir / METRICS)
        stderr = m.get("test_ll_stderr")
        return "recorded", (f"test LL {m['test_ll']:.2f}" + (f" +- {stderr:.2f}" if stderr is not None else "")
                            + f" (S={m.get('eval_samples', cell.config.eval_samples)}), "
                            f"{m.get('epochs_trained', '?')} epochs")
    if is_complete(run_dir):
        return "complete", "its record is kept by the next `vampprior report`"
    if run_dir.exists() and not run_dir.is_dir():
        return "not started", f"({run_dir} is a file, not a run directory: move it away)"
    for folder in (run_dir, cell.record_dir):  # a fresh clone has the failed record only
        if (folder / FAILURE).is_file():
            return "failed", f"{failure_summary(read_json(folder / FAILURE))} (see {folder / FAILURE})"
    if not run_dir.is_dir():
        if cell.needs_gpu:
            return "needs a GPU", cpu_estimate(cell)
        return "not started", ""
    if checkpoint_state(run_dir):
        sampled = sampled_so_far(run_dir)
        resumes = (f"; its test log-likelihood goes on from image {sampled[0] + 1}" if sampled
                   else "; resumes from its checkpoint")
        return "interrupted", cell_status(cell, unreadable=OTHER_VERSION) + resumes
    return "not started", "(its run directory exists, without a checkpoint)"


def status_lines(cells: list[Cell]) -> list[str]:
    """One line a cell, then the counts of each state."""
    lines, counts = [], Counter()
    width = max((len(c.label) for c in cells), default=0)
    for cell in cells:
        state, detail = cell_state(cell)
        counts[state] += 1
        lines.append(f"{cell.label:<{width}}  {state:<11s}  {detail}".rstrip())
    lines.append(f"{len(cells)} cells: " + ", ".join(f"{counts[s]} {s}" for s in STATES if counts[s]))
    return lines


def _kind(cell: Cell) -> tuple:
    """Cells expected to cost alike: same dataset, model, prior, K and purpose (any seed)."""
    c = cell.config
    return c.dataset, c.model, c.prior, c.components, cell.purpose


def _budget(cell: Cell) -> tuple:
    """Cells expected to cost about alike where no cell of their kind is recorded: the same dataset,
    model, prior, K and epoch budget, whatever the purpose (another optimizer, say)."""
    c = cell.config
    return c.dataset, c.model, c.prior, c.components, c.epochs, c.warmup_epochs, c.patience


def compute_left(cells: list[Cell]) -> str:
    """How much run time the cells without a record still need, at the pace of the recorded cells
    of their kind (:func:`_kind`): the median of those records' training
    (:func:`~vae_lib.pipeline.records.training_seconds`) plus evaluation, less what a cell has trained so far
    (its checkpoint). Cells whose kind has no record yet are counted apart."""
    from statistics import median

    recorded, todo = {}, []
    for cell in cells:
        if not is_complete(cell.record_dir):
            todo.append(cell)
            continue
        m = read_json(cell.record_dir / METRICS)
        if {"epochs_trained", "seconds_per_epoch", "eval_seconds"} <= set(m):
            for key in (_kind(cell), _budget(cell)):
                recorded.setdefault(key, []).append((training_seconds(m), m["eval_seconds"]))
    pace = {kind: (median(t for t, _ in runs), median(e for _, e in runs)) for kind, runs in recorded.items()}
    left, counted = 0.0, 0
    for cell in todo:
        key = _kind(cell) if _kind(cell) in pace else _budget(cell)
        if key in pace:
            train, evaluate = pace[key]
            state = checkpoint_state(cell.run_dir) if cell.run_dir.is_dir() else None
            left += max(train - (state or {}).get("train_seconds", 0.0), 0.0) + evaluate
            counted += 1
    unknown = len(todo) - counted
    if not todo:
        return "nothing left to run"
    kind = ("recorded cells of the same dataset, model, prior, K and purpose, or else of the same "
            "epoch budget")
    if not counted:
        return f"{unknown} cell(s) left, none with {kind} to estimate its time by"
    return (f"about {duration(left)} of run time left for {counted} cell(s) (at the pace of {kind})"
            + (f"; {unknown} more cell(s) with no such record to go by" if unknown else ""))
