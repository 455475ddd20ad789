"""The main job: run every cell of a profile's plan (:mod:`.plans`), one after the other here or on
Dask (:mod:`.distributed`), each through :func:`.cells.run_cell`, then execute the report notebook
over the records and render it to HTML (the paper report also puts its Table 1 into the README).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from ..datasets import check_data_dir
from .cells import KERNEL_LOG, PAPERMILL_OPTIONS, REPO, notebook_path, run_cell
from .config import default_report_dir, default_runs_dir
from .io import fd2_to
from .nbclean import portable
from .plans import plan, records_dir
from .provenance import gpus_visible
from .rundir import FAILURE, check_writable, is_complete
from .status import cpu_estimate, watching


def run_report(profile="quick", runs_dir=None, report_dir=None, datasets=None, priors=None,
               seeds=None, models=None, data_dir=None, notebooks_dir=None, k_sweep=True,
               rerun=False, workers=1, scheduler=None, retries=1, threads=None, settings=None,
               checkpoint_every=30.0, log=print, purposes=None, gpu_cells_on_cpu=False) -> dict:
    """Run every cell, then build the report. Returns counts of done/skipped/failed cells (and
    busy ones, running in another process, if any).

    ``workers`` > 1 or a ``scheduler`` runs the cells on Dask (:mod:`vae_lib.pipeline.distributed`; each
    cell's TensorFlow then uses its worker's threads); otherwise one after the other here, with
    TensorFlow on ``threads`` threads (None: every core). Cells that need a GPU (the convolutional
    models at the paper's protocol) are left out where none is visible, each with its estimated
    time on this CPU, unless ``gpu_cells_on_cpu``."""
    # absolute, as Dask workers started in another folder must see them (and the data) too
    runs_dir = Path(runs_dir or default_runs_dir()).resolve()
    report_dir = Path(report_dir or default_report_dir()).resolve()
    notebooks = (notebook_path("training", notebooks_dir), notebook_path("evaluation", notebooks_dir))
    report_notebook = notebook_path("report", notebooks_dir)
    cells = plan(profile, runs_dir, report_dir, datasets, priors, seeds, models, k_sweep, settings, purposes)
    # refused now rather than after hours of training: a record is kept when its cell ends
    check_writable(runs_dir / profile, "runs folder", "--runs-dir")
    check_writable(records_dir(report_dir, profile), "report folder", "--report-dir")
    counts = {"done": 0, "skipped": 0, "failed": 0}
    if not gpus_visible() and not gpu_cells_on_cpu:
        waiting = [c for c in cells if c.needs_gpu and (rerun or not is_complete(c.record_dir))]
        for cell in waiting:
            log(f"{cell.label}: needs a GPU, none is visible: {cpu_estimate(cell)}; left out "
                f"(--gpu-cells-on-cpu runs it here anyway)")
        cells = [c for c in cells if c not in waiting]
        if waiting:
            counts["needs a GPU"] = len(waiting)
    if not scheduler:  # (a cluster's workers may see folders this machine does not)
        if any(rerun or not is_complete(c.record_dir) for c in cells):
            check_data_dir(data_dir)  # once, not by every cell's kernel
        # the kernels run in the repository's folder: a relative path means the one this job runs in
        data_dir = data_dir or os.environ.get("VAE_DATA_DIR")
    data_dir = Path(data_dir).expanduser().resolve() if data_dir else None
    started = time.perf_counter()
    log(f"profile {profile}: {len(cells)} cells; runs in {runs_dir / profile}, records in "
        f"{records_dir(report_dir, profile)}")
    if workers > 1 or scheduler:
        from .distributed import run_cells

        todo = [c for c in cells if rerun or not is_complete(c.record_dir)]
        counts = run_cells(todo, notebooks, data_dir, rerun, workers, scheduler, retries,
                           runs_dir, report_dir, checkpoint_every, log)
        counts["skipped"] += len(cells) - len(todo)
    else:
        live = sys.stderr.isatty()  # a status line while a cell runs; a log file gets none
        for i, cell in enumerate(cells, 1):
            t0, head = time.perf_counter(), f"[{i}/{len(cells)}] {cell.label}"
            if not live:
                log(f"{head} ...", end=" ", flush=True)
            with watching(cell, head, live and (rerun or not is_complete(cell.record_dir))):
                status = run_cell(cell, notebooks, data_dir, rerun, threads, checkpoint_every)
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
