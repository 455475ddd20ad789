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

from collections import Counter
from pathlib import Path

from .io import read_json
from ..progress import duration
from .records import checkpoint_state, training_seconds
from .rundir import FAILURE, METRICS, failure_summary, is_complete, is_locked
from .runner import Cell, cell_status

STATES = ("recorded", "complete", "running", "interrupted", "failed", "not started")
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
        return "not started", ""
    if checkpoint_state(run_dir):
        return "interrupted", cell_status(cell, unreadable=OTHER_VERSION) + "; resumes from its checkpoint"
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


def main_status(args) -> int:
    from .config import check_profile, default_report_dir, default_runs_dir
    from .runner import parse_settings, plan, records_dir

    check_profile(args.profile)
    runs_dir = Path(args.runs_dir or default_runs_dir())
    report_dir = Path(args.report_dir or default_report_dir())
    cells = plan(args.profile, runs_dir, report_dir, args.datasets, args.priors,
                 tuple(args.seeds) if args.seeds else None, args.models, not args.no_k_sweep,
                 parse_settings(args.set), args.purposes)
    print(f"profile {args.profile}: runs in {runs_dir / args.profile}, records in "
          f"{records_dir(report_dir, args.profile)}")
    print("\n".join(status_lines(cells)))
    print(compute_left(cells))
    return 0
