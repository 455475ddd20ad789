"""The main job: run the experiment notebook with papermill for every cell of a profile's plan
(dataset x model x prior x seed, the K sweep, and for the paper profile its comparisons), keep each
finished cell's record, then execute the report notebook over the records and render it to HTML.

Two places per cell:
  run directory  ``runs_dir/<profile>/<name>/``: where the cell trains; holds its checkpoint, so an
                 interrupted cell resumes there. Outside the repository (``$VAE_RUNS_DIR``).
  record         ``report_dir/<profile>/runs/<name>/``: the run directory without the checkpoint,
                 copied there when the cell completes. Records are what the report reads and what
                 the repository keeps, so a fresh clone re-renders the report without training.
A cell with a record is skipped (``rerun=True`` ignores the records: the cells run again in the
runs directory, where a complete run is reused, and their records are replaced); a failed cell keeps its executed
notebook with the error and a ``failure.json`` in its run directory, and the others go on. A cell
that another process is running (its run directory locked: the main job started twice, or a
``vampprior train`` into it) is reported busy and left to that process.
"""
from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .config import (K_SWEEP_SETTINGS, K_SWEEPS, RunConfig, check_profile, default_report_dir,
                     default_runs_dir, make_config)
from ..datasets import DATASETS, check_name
from ..errors import ConfigError, check_choice
from .io import atomic_write_json, fd2_to
from .nbclean import portable
from ..progress import duration, progress_bar
from .records import checkpoint_state
from .registry import MODELS, PRIORS, check_prior_name
from .rundir import (FAILURE, METRICS, NOTEBOOK, changes_text, check_writable, copy_record, is_complete, is_locked,
                     prepare_run_dir, run_dir_name, runner_lock)
from ..schedule import projected_end

REPO = Path(__file__).resolve().parents[2]
KERNEL_LOG = "kernel.log"  # in the run directory: the kernel's standard error (not in the record)
# papermill options for every notebook: no per-cell progress bar of its own, and a kernel that
# does not print its transport warning once per run.
PAPERMILL_OPTIONS = dict(kernel_name="python3", progress_bar=False,
                         extra_arguments=["--IPKernelApp.log_level=ERROR"], cwd=str(REPO))


# What a cell is in its plan for (the status lines show it in brackets; --purposes filters by it).
PURPOSES = {
    "grid": "Table 1's cells: dataset x prior at the profile's settings",
    "hvae": "the hierarchical VAE's cells",
    "init": "the paper code's initialisation (weight_init=he), against ours",
    "learned_data": "VampPrior-data with learned pseudo-inputs, as the paper's code",
    "k_sweep": "test LL and training time against K",
    "paper_code": "the paper code's optimizer and KL estimator, one at a time, on the small datasets; "
                  "its initialisation and optimizer on the static-MNIST HVAE",
}


@dataclass(frozen=True)
class Cell:
    config: RunConfig
    run_dir: Path
    record_dir: Path
    purpose: str  # one of PURPOSES

    @property
    def label(self) -> str:
        c = self.config
        model = "" if c.model == "vae" else f"{c.model}/"
        changes = changes_text(c)  # what tells two cells of one purpose apart, e.g. the optimizer
        return (f"{c.dataset}/{model}{c.prior} K={c.components} seed={c.seed}"
                + (f" ({changes})" if changes else "") + f" [{self.purpose}]")


def records_dir(report_dir, profile: str) -> Path:
    return Path(report_dir) / profile / "runs"


# -- plans ----------------------------------------------------------------------------------------
# The paper profile's plan (the paper-results issue): 3 seeds where the comparison is the headline
# (standard vs VampPrior everywhere) or cheap (Caltech 101, Frey Faces), 1 elsewhere.
SMALL = ("caltech101_silhouettes", "frey_faces")
HEADLINE_PRIORS = ("standard", "vampprior")


def paper_plan() -> list[tuple[RunConfig, str]]:
    """(config, purpose) of every cell of the paper report, in the order they run: first one of
    each of the report's results (seed 0 of the grid, then the HVAE and dynamic MNIST headlines,
    FashionMNIST), then the cheap datasets' other seeds and comparisons, the headline's other
    seeds, the K sweep and the remaining HVAE cells. Interrupted and resumed, the runs thus fill
    every section of the report before they refine any; the one exception is the last part, the
    paper code's optimizer and KL estimator (added after the rest had run), which extends the
    small-datasets section."""
    out = []

    def add(dataset, prior, seed, purpose="grid", **settings):
        config = make_config(dataset, prior, "paper", seed=seed, **settings)
        if all(config != c for c, _ in out):
            out.append((config, purpose))

    for dataset in SMALL + ("static_mnist",):
        for prior in PRIORS:
            add(dataset, prior, 0)
    for prior in reversed(HEADLINE_PRIORS):  # the paper's best model first
        add("static_mnist", prior, 0, "hvae", model="hvae")
    for prior in HEADLINE_PRIORS:
        add("dynamic_mnist", prior, 0)
    for prior in PRIORS:
        add("fashion_mnist", prior, 0)
    for seed in (0, 1, 2):
        for dataset in SMALL:
            for prior in PRIORS:
                add(dataset, prior, seed)
            for prior in HEADLINE_PRIORS:  # how much of the ranking is the initialisation's
                add(dataset, prior, seed, "init", weight_init="he")
            add(dataset, "vampprior_data", seed, "learned_data", trainable_pseudo_inputs=True)
    for seed in (1, 2):
        for dataset in ("static_mnist", "fashion_mnist"):
            for prior in HEADLINE_PRIORS:
                add(dataset, prior, seed)
    for k in K_SWEEPS["paper"]:
        add("static_mnist", "vampprior", 0, "k_sweep", components=k, **K_SWEEP_SETTINGS["paper"])
    for seed in (0, 1, 2):
        for dataset in SMALL:
            for prior in HEADLINE_PRIORS:
                add(dataset, prior, seed, "hvae", model="hvae")
    add("dynamic_mnist", "vampprior", 0, "hvae", model="hvae")
    add("fashion_mnist", "vampprior", 0, "hvae", model="hvae")
    # the paper code's other departures (README), each alone, where the ranking is in question ...
    for seed in (0, 1, 2):
        for dataset in SMALL:
            for prior in HEADLINE_PRIORS:
                add(dataset, prior, seed, "paper_code", optimizer="adamnormgrad")
            # the VampPrior has no closed-form KL: its rate is the Monte Carlo one already
            add(dataset, "standard", seed, "paper_code", kl_estimator="monte_carlo")
    # ... and on the HVAE, which stays short of the paper's number with ours
    add("static_mnist", "vampprior", 0, "paper_code", model="hvae", weight_init="he", optimizer="adamnormgrad")
    return out


def grid_plan(profile, datasets=DATASETS, priors=tuple(PRIORS), seeds=(0,), models=("vae",),
              k_sweep=True) -> list[tuple[RunConfig, str]]:
    """Every dataset x model x prior x seed, then the K sweep (VampPrior on static_mnist)."""
    out = [(make_config(d, p, profile, seed=s, model=m), "grid" if m == "vae" else m)
           for s in seeds for d in datasets for m in models for p in priors]
    if k_sweep and "static_mnist" in datasets:
        out += [(make_config("static_mnist", "vampprior", profile, components=k, seed=s,
                             **K_SWEEP_SETTINGS[profile]), "k_sweep")
                for s in seeds for k in K_SWEEPS[profile]]
    return out


def plan(profile: str, runs_dir, report_dir, datasets=None, priors=None, seeds=None, models=None,
         k_sweep: bool = True, settings: dict | None = None, purposes=None) -> list[Cell]:
    """The cells of ``profile``, without duplicates. The paper profile follows :func:`paper_plan`
    unless ``seeds`` is given; ``datasets``, ``priors``, ``models`` and ``purposes`` (of
    :data:`PURPOSES`) filter any plan, and ``settings`` (RunConfig fields) override every cell's."""
    check_profile(profile)
    known = set(RunConfig.__dataclass_fields__) - {"dataset", "prior", "profile"}
    unknown = sorted(set(settings or {}) - known)
    if unknown:
        raise ConfigError(f"Unknown setting(s) {', '.join(unknown)}. Known: {', '.join(sorted(known))}.")
    for name in datasets or ():
        check_name(name)
    for name in priors or ():
        check_prior_name(name)
    for name in models or ():
        check_choice("model", name, MODELS)
    for name in purposes or ():
        check_choice("purpose", name, PURPOSES)
    if profile == "paper" and seeds is None:
        pairs = paper_plan()
    else:
        pairs = grid_plan(profile, datasets or DATASETS, priors or tuple(PRIORS), seeds or (0,),
                          models or ("vae",), k_sweep)
    cells, seen = [], set()
    for config, purpose in pairs:
        if ((datasets and config.dataset not in datasets) or (priors and config.prior not in priors)
                or (models and config.model not in models) or (not k_sweep and purpose == "k_sweep")
                or (purposes and purpose not in purposes)):
            continue
        try:
            config = config.replace(**(settings or {}))
        except ConfigError as err:
            raise ConfigError(f"--set {' '.join(f'{k}={v}' for k, v in settings.items())} does not apply "
                              f"to the {config.model.upper()} cell {run_dir_name(config)}: {err} Leave "
                              f"such cells out with the filters (e.g. --models vae).") from None
        if config in seen:
            continue
        seen.add(config)
        name = run_dir_name(config)
        cells.append(Cell(config, Path(runs_dir) / profile / name,
                          records_dir(report_dir, profile) / name, purpose))
    if not cells:
        raise ConfigError(f"No cell of the {profile} profile's plan matches these filters "
                          f"(`vampprior status --profile {profile}` lists its cells with their purposes; "
                          f"--seeds runs the plain grid, which has no init, learned_data or paper_code cells).")
    return cells


# -- running ----------------------------------------------------------------------------------------
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


def run_cell(cell: Cell, notebook: Path, data_dir=None, rerun: bool = False,
             threads: int | None = None, checkpoint_every: float = 30.0) -> str:
    """Execute the experiment notebook for one cell: 'done', 'skipped', 'failed', or 'busy' when
    another process is running in its run directory (then nothing here is touched: that process
    keeps the record when it finishes, or the next run of the main job does)."""
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
        return _execute(cell, notebook, data_dir, rerun, threads, checkpoint_every)


def _execute(cell, notebook, data_dir, rerun, threads, checkpoint_every) -> str:
    """run_cell's work, with the cell's run directory ours."""
    import papermill

    failure = cell.run_dir / FAILURE
    c = cell.config
    overrides = {k: v for k, v in c.to_dict().items()
                 if v != make_config(c.dataset, c.prior, c.profile).to_dict()[k]
                 and k not in ("dataset", "prior", "profile")}
    # The kernel finds its run directory and the data through the environment, so the executed
    # notebook kept in the record holds no paths of this machine.
    env = dict(VAE_RUNS_DIR=str(cell.run_dir.parent.parent.resolve()))
    if data_dir:
        env["VAE_DATA_DIR"] = str(Path(data_dir).resolve())
    try:
        # the kernel's standard error (TensorFlow's C++ start-up lines, which no environment
        # variable silences; a crash's last words) goes to its log, not to this terminal
        with _environment(env), open(cell.run_dir / KERNEL_LOG, "ab") as log, fd2_to(log):
            papermill.execute_notebook(
                str(notebook), str(cell.run_dir / NOTEBOOK),
                parameters=dict(dataset=c.dataset, prior=c.prior, profile=c.profile,
                                settings=overrides, threads=threads,
                                checkpoint_every=checkpoint_every, progress=False),
                **PAPERMILL_OPTIONS)
    except Exception as err:  # the executed notebook keeps the error; record it and go on
        atomic_write_json(failure, dict(cell=cell.label, error=type(err).__name__,
                                        message=str(err)[-4000:],
                                        traceback=traceback.format_exc()[-4000:],
                                        notebook=str(cell.run_dir / NOTEBOOK),
                                        kernel_log=str(cell.run_dir / KERNEL_LOG),
                                        time=time.strftime("%Y-%m-%dT%H:%M:%S")))
        copy_record(cell.run_dir, cell.record_dir)  # the report marks the cell failed (a complete
        return "failed"                               # record of an earlier run is kept as it is)
    failure.unlink(missing_ok=True)
    if rerun and is_complete(cell.record_dir):
        (cell.record_dir / METRICS).unlink()
    copy_record(cell.run_dir, cell.record_dir)
    return "done"


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
        return (f"trained {epoch} epochs (best {best}); test log-likelihood with "
                f"S={c.eval_samples}")
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


def run_report(profile="quick", runs_dir=None, report_dir=None, datasets=None, priors=None,
               seeds=None, models=None, data_dir=None, notebooks_dir=None, k_sweep=True,
               rerun=False, workers=1, scheduler=None, retries=1, threads=None, settings=None,
               checkpoint_every=30.0, log=print, purposes=None) -> dict:
    """Run every cell, then build the report. Returns counts of done/skipped/failed cells (and
    busy ones, running in another process, if any).

    ``workers`` > 1 or a ``scheduler`` runs the cells on Dask (:mod:`vae_lib.pipeline.distributed`; each
    cell's TensorFlow then uses its worker's threads); otherwise one after the other here, with
    TensorFlow on ``threads`` threads (None: every core)."""
    # absolute, as Dask workers started in another folder must see them (and the data) too
    runs_dir = Path(runs_dir or default_runs_dir()).resolve()
    report_dir = Path(report_dir or default_report_dir()).resolve()
    data_dir = Path(data_dir).resolve() if data_dir else None
    experiment = notebook_path("experiment", notebooks_dir)
    report_notebook = notebook_path("report", notebooks_dir)
    cells = plan(profile, runs_dir, report_dir, datasets, priors, seeds, models, k_sweep, settings, purposes)
    # refused now rather than after hours of training: a record is kept when its cell ends
    check_writable(runs_dir / profile, "runs folder", "--runs-dir")
    check_writable(records_dir(report_dir, profile), "report folder", "--report-dir")
    counts = {"done": 0, "skipped": 0, "failed": 0}
    started = time.perf_counter()
    log(f"profile {profile}: {len(cells)} cells; runs in {runs_dir / profile}, records in "
        f"{records_dir(report_dir, profile)}")
    if workers > 1 or scheduler:
        from .distributed import run_cells

        todo = [c for c in cells if rerun or not is_complete(c.record_dir)]
        counts = run_cells(todo, experiment, data_dir, rerun, workers, scheduler, retries,
                           runs_dir, report_dir, checkpoint_every, log)
        counts["skipped"] += len(cells) - len(todo)
    else:
        live = sys.stderr.isatty()  # a status line while a cell runs; a log file gets none
        for i, cell in enumerate(cells, 1):
            t0, head = time.perf_counter(), f"[{i}/{len(cells)}] {cell.label}"
            if not live:
                log(f"{head} ...", end=" ", flush=True)
            with watching(cell, head, live and (rerun or not is_complete(cell.record_dir))):
                status = run_cell(cell, experiment, data_dir, rerun, threads, checkpoint_every)
            counts[status] = counts.get(status, 0) + 1
            kept = "; its earlier record is kept" if is_complete(cell.record_dir) else ""
            note = {"failed": f" (see {cell.run_dir / FAILURE}{kept})",
                    "busy": f" (another process is running in {cell.run_dir}; left to it)"}
            log((f"{head} ... " if live else "") + f"{status} in {time.perf_counter() - t0:.0f} s"
                + note.get(status, ""), flush=True)
    log(f"cells finished in {time.perf_counter() - started:.0f} s: {counts}")
    if counts.get("busy"):
        log(f"{counts['busy']} cell(s) busy: another process is running them; a main job keeps a "
            f"cell's record when it finishes (after a `vampprior train`, the next `vampprior report` "
            f"does). Until then this report shows them as not run.")
    html = build_report(profile, report_dir, report_notebook)
    log(f"report: {html}")
    counts["html"] = str(html)
    return counts


def build_report(profile, report_dir, report_notebook: Path) -> Path:
    """Execute the report notebook over the records of ``profile`` and render it to HTML
    (``report_dir/<profile>/index.html``; the figures beside it are linked, not embedded)."""
    import tempfile

    import nbformat
    import papermill
    from nbconvert import HTMLExporter

    out_dir = (Path(report_dir) / profile).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        executed, kernel_log = Path(tmp) / "report.ipynb", Path(tmp) / KERNEL_LOG
        try:
            with open(kernel_log, "ab") as log, fd2_to(log):
                papermill.execute_notebook(
                    str(report_notebook), str(executed),
                    parameters=dict(profile=profile, report_dir=str(out_dir)), **PAPERMILL_OPTIONS)
        except Exception:  # the kernel's last words belong with the error
            sys.stderr.write(kernel_log.read_text(errors="replace")[-3000:])
            raise
        notebook = portable(nbformat.read(executed, 4))
        body, _ = HTMLExporter(exclude_input=True, exclude_input_prompt=True,
                               exclude_output_prompt=True).from_notebook_node(
            notebook,
            resources={"metadata": {"name": f"VAE with a VampPrior: {profile} report"}})
    html = out_dir / "index.html"
    html.write_text(body)
    if profile == "paper" and out_dir == (REPO / "report" / "paper").resolve():
        update_readme_table(out_dir / "table1.md")
    return html


README_MARKERS = ("<!-- paper-table1 -->", "<!-- /paper-table1 -->")


def update_readme_table(table_md: Path, readme: Path = REPO / "README.md") -> bool:
    """Put the paper report's Table 1 into the README, between its markers (the README then shows
    what the committed report shows). False where the README has no markers."""
    text, table = readme.read_text(), Path(table_md).read_text().strip()
    start, end = README_MARKERS
    if start not in text or end not in text:
        return False
    head, rest = text.split(start, 1)
    readme.write_text(f"{head}{start}\n{table}\n{end}{rest.split(end, 1)[1]}")
    return True


def parse_settings(items) -> dict:
    """``["epochs=8", "weight_init=he", "max_train=None"]`` -> {"epochs": 8, "weight_init": "he",
    "max_train": None}: JSON values where they parse (numbers, true/false, null; also None), else
    strings."""
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set takes KEY=VALUE, got {item!r}.")
        try:
            out[key] = None if value == "None" else json.loads(value)
        except ValueError:
            out[key] = value
    return out


EXIT_BUSY = 3  # the report was rendered, but cells another process runs show as not run yet


def main_report(args) -> int:
    if args.workers < 1 or args.retries < 0 or (args.threads is not None and args.threads < 1):
        raise ConfigError("--workers and --threads must be at least 1, and --retries at least 0.")
    if args.render_only:
        if args.rerun:
            raise ConfigError("--render-only runs nothing, so it cannot --rerun; choose one.")
        check_profile(args.profile)
        html = build_report(args.profile, args.report_dir or default_report_dir(),
                            notebook_path("report", args.notebooks))
        print(f"report: {html}", file=sys.stderr)
        return 0
    counts = run_report(args.profile, args.runs_dir, args.report_dir, args.datasets, args.priors,
                        tuple(args.seeds) if args.seeds else None, args.models, args.data_dir,
                        args.notebooks, not args.no_k_sweep, args.rerun, args.workers,
                        args.scheduler, args.retries, args.threads, parse_settings(args.set),
                        args.checkpoint_every, log=lambda *a, **k: print(*a, **k, file=sys.stderr),
                        purposes=args.purposes)
    if counts["failed"]:
        return 1
    return EXIT_BUSY if counts.get("busy") else 0
