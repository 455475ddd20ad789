"""The main job: run the experiment notebook with papermill for every dataset x prior (and the
K sweep), then execute the report notebook and render it to HTML.

Each cell gets its own run directory under ``runs_dir/<profile>/``. A complete cell (one with
metrics.json) is skipped; an interrupted one resumes from its checkpoint; a failed one keeps its
executed notebook with the error, gets a ``failure.json``, and the others go on.
"""
from __future__ import annotations

import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from .config import (K_SWEEPS, RunConfig, check_profile, default_report_dir, default_runs_dir,
                     make_config)
from .datasets import DATASETS, check_name
from .errors import ConfigError
from .experiment import is_complete, prepare_run_dir
from .io import atomic_write_json
from .priors import PRIORS, check_prior_name

REPO = Path(__file__).resolve().parent.parent
# papermill options for every notebook: no per-cell progress bar of its own, and a kernel that
# does not print its transport warning once per run.
PAPERMILL_OPTIONS = dict(kernel_name="python3", progress_bar=False,
                         extra_arguments=["--IPKernelApp.log_level=ERROR"], cwd=str(REPO))


@dataclass(frozen=True)
class Cell:
    config: RunConfig
    run_dir: Path
    purpose: str  # "grid" or "k_sweep"

    @property
    def label(self) -> str:
        c = self.config
        return f"{c.dataset}/{c.prior} K={c.components} seed={c.seed}"


def run_dir_name(config: RunConfig) -> str:
    return f"{config.dataset}__{config.prior}__K{config.components}__seed{config.seed}"


def plan(profile: str, runs_dir, datasets=DATASETS, priors=PRIORS, seeds=(0,),
         k_sweep: bool = True) -> list[Cell]:
    """The cells of the grid, then the K sweep (VampPrior on static_mnist), without duplicates."""
    check_profile(profile)
    for name in datasets:
        check_name(name)
    for name in priors:
        check_prior_name(name)
    root = Path(runs_dir) / profile
    cells, seen = [], set()

    def add(config, purpose):
        if config not in seen:
            seen.add(config)
            cells.append(Cell(config, root / run_dir_name(config), purpose))

    for seed in seeds:
        for dataset in datasets:
            for prior in priors:
                add(make_config(dataset, prior, profile, seed=seed), "grid")
    if k_sweep and "static_mnist" in datasets:
        for seed in seeds:
            for k in K_SWEEPS[profile]:
                add(make_config("static_mnist", "vampprior", profile, components=k, seed=seed), "k_sweep")
    return cells


def notebook_path(name: str, notebooks_dir=None) -> Path:
    path = Path(notebooks_dir or REPO / "notebooks") / f"{name}.ipynb"
    if not path.is_file():
        raise ConfigError(f"Cannot find {path}. Run `vampprior report` from a clone of the "
                          f"repository, or pass --notebooks DIR.")
    return path


def run_cell(cell: Cell, notebook: Path, data_dir=None) -> str:
    """Execute the experiment notebook for one cell: 'done', 'skipped' or 'failed'."""
    import papermill

    if is_complete(cell.run_dir):
        return "skipped"
    prepare_run_dir(cell.run_dir, cell.config)  # checks an existing directory before any work
    failure = cell.run_dir / "failure.json"
    c = cell.config
    try:
        papermill.execute_notebook(
            str(notebook), str(cell.run_dir / "experiment.ipynb"),
            parameters=dict(dataset=c.dataset, prior=c.prior, profile=c.profile,
                            components=c.components, epochs=c.epochs, eval_samples=c.eval_samples,
                            seed=c.seed, run_dir=str(cell.run_dir), data_dir=data_dir,
                            progress=False),
            **PAPERMILL_OPTIONS)
    except Exception as err:  # the executed notebook keeps the error; record it and go on
        atomic_write_json(failure, dict(cell=cell.label, error=type(err).__name__,
                                        message=str(err)[-4000:],
                                        traceback=traceback.format_exc()[-4000:],
                                        notebook=str(cell.run_dir / "experiment.ipynb"),
                                        time=time.strftime("%Y-%m-%dT%H:%M:%S")))
        return "failed"
    failure.unlink(missing_ok=True)
    return "done"


def run_report(profile="quick", runs_dir=None, report_dir=None, datasets=DATASETS,
               priors=PRIORS, seeds=(0,), data_dir=None, notebooks_dir=None,
               k_sweep=True, log=print) -> dict:
    """Run every cell, then build the report. Returns counts of done/skipped/failed cells."""
    runs_dir = runs_dir or default_runs_dir()
    report_dir = report_dir or default_report_dir()
    experiment = notebook_path("experiment", notebooks_dir)
    report_notebook = notebook_path("report", notebooks_dir)
    cells = plan(profile, runs_dir, datasets, priors, seeds, k_sweep)
    counts = {"done": 0, "skipped": 0, "failed": 0}
    started = time.perf_counter()
    log(f"profile {profile}: {len(cells)} runs into {Path(runs_dir) / profile}")
    for i, cell in enumerate(cells, 1):
        t0 = time.perf_counter()
        log(f"[{i}/{len(cells)}] {cell.label} ...", end=" ", flush=True)
        status = run_cell(cell, experiment, data_dir)
        counts[status] += 1
        log(f"{status} in {time.perf_counter() - t0:.0f} s"
            + (f" (see {cell.run_dir / 'failure.json'})" if status == "failed" else ""), flush=True)
    log(f"runs finished in {time.perf_counter() - started:.0f} s: {counts}")
    html = build_report(profile, runs_dir, report_dir, report_notebook)
    log(f"report: {html}")
    counts["html"] = str(html)
    return counts


def build_report(profile, runs_dir, report_dir, report_notebook: Path) -> Path:
    """Execute the report notebook over ``runs_dir/<profile>`` and render it to HTML."""
    import nbformat
    import papermill
    from nbconvert import HTMLExporter

    report_dir = Path(report_dir).resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    executed = report_dir / "report.ipynb"
    papermill.execute_notebook(
        str(report_notebook), str(executed),
        parameters=dict(runs_dir=str(Path(runs_dir).resolve()), profile=profile,
                        report_dir=str(report_dir)),
        **PAPERMILL_OPTIONS)
    body, _ = HTMLExporter(exclude_input=True, exclude_input_prompt=True,
                           exclude_output_prompt=True).from_notebook_node(
        nbformat.read(executed, 4), resources={"metadata": {"name": f"VAE with a VampPrior: {profile} report"}})
    html = report_dir / "index.html"
    html.write_text(body)
    return html


def main_report(args) -> int:
    counts = run_report(args.profile, args.runs_dir, args.report_dir, args.datasets, args.priors,
                        tuple(args.seeds), args.data_dir, args.notebooks, not args.no_k_sweep,
                        log=lambda *a, **k: print(*a, **k, file=sys.stderr))
    return 1 if counts["failed"] else 0
