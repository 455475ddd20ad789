"""Results gathered from run directories, for the report: rows, CSV, Table 1.

The reference numbers are what we compare against, not results of ours: test LL in nats with
1000 epochs and S=500 from the VampPrior reproduction we follow, and the paper's own -85.57
(VampPrior, staticMNIST, S=5000).
"""
from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np

from .io import atomic_write_csv, read_json

REFERENCE_SOURCE = "reproduction of Tomczak & Welling (2018): 1000 epochs, S=500"
REFERENCE = {  # dataset -> prior -> test LL (nats)
    "static_mnist": {"standard": -93.08, "vampprior": -88.72, "vampprior_data": -90.85},
    "fashion_mnist": {"standard": -235.32, "vampprior": -231.94, "vampprior_data": -232.79},
    "frey_faces": {"standard": -2281.16, "vampprior": -2257.76, "vampprior_data": -2286.52},
    "caltech101_silhouettes": {"standard": -137.32, "vampprior": -135.15, "vampprior_data": -142.02},
}
PAPER = {("static_mnist", "vampprior"): -85.57}  # Tomczak & Welling (2018), Table 1, S=5000

CSV_COLUMNS = ["dataset", "prior", "components", "seed", "profile", "status", "epochs",
               "epochs_trained", "best_epoch", "eval_samples", "n_train", "n_test", "test_ll",
               "test_ll_stderr", "test_elbo", "test_bits_per_dim", "train_seconds",
               "seconds_per_epoch", "eval_seconds", "reference_ll", "git_commit", "run_dir"]


def collect_runs(root) -> list[dict]:
    """One row per run directory under ``root``: complete, failed or incomplete."""
    rows = []
    for run_dir in sorted(Path(root).glob("*/config.json")):
        run_dir = run_dir.parent
        config = read_json(run_dir / "config.json")
        row = {k: config.get(k) for k in ("dataset", "prior", "components", "seed", "profile", "epochs",
                                          "eval_samples")}
        row.update(run_dir=str(run_dir), status="incomplete",
                   reference_ll=REFERENCE.get(config["dataset"], {}).get(config["prior"]))
        if (run_dir / "metrics.json").is_file():
            metrics = read_json(run_dir / "metrics.json")
            row.update({k: metrics.get(k) for k in CSV_COLUMNS if k in metrics})
            row["git_commit"] = (metrics.get("provenance", {}).get("git", {}) or {}).get("commit")
            row["status"] = "complete"
            row["metrics"] = metrics
        elif (run_dir / "failure.json").is_file():
            failure = read_json(run_dir / "failure.json")
            row.update(status="failed", error=failure.get("error"), message=failure.get("message"))
        rows.append(row)
    return rows


def write_results_csv(rows, path) -> None:
    atomic_write_csv(path, rows, CSV_COLUMNS)


def summarize(rows, dataset, prior, components=None):
    """Mean test LL over seeds with its error: the standard error for one seed, else the std
    across seeds. None when no run is complete."""
    done = [r for r in rows if r["dataset"] == dataset and r["prior"] == prior
            and r["status"] == "complete" and (components is None or r["components"] == components)]
    if not done:
        return None
    values = np.array([r["test_ll"] for r in done])
    if len(done) == 1:
        return dict(mean=values[0], err=done[0]["test_ll_stderr"], n_seeds=1, err_kind="s.e.")
    return dict(mean=values.mean(), err=values.std(ddof=1), n_seeds=len(done), err_kind="std over seeds")


def table1_html(rows, datasets, priors, components) -> str:
    """Table 1 as HTML: ours (mean +- error) beside the reference, per dataset x prior."""
    head = "".join(f"<th colspan=2>{html.escape(p)}</th>" for p in priors)
    sub = "".join("<th>ours</th><th>reference</th>" for _ in priors)
    body = []
    for dataset in datasets:
        cells = []
        for prior in priors:
            s = summarize(rows, dataset, prior, components)
            status = {r["status"] for r in rows if r["dataset"] == dataset and r["prior"] == prior}
            if s is not None:
                ours = f"{s['mean']:.2f} &plusmn; {s['err']:.2f}"
                if s["n_seeds"] > 1:
                    ours += f"<br><small>{s['n_seeds']} seeds</small>"
            else:
                ours = "<em>failed</em>" if "failed" in status else "<em>missing</em>"
            ref = REFERENCE.get(dataset, {}).get(prior)
            paper = PAPER.get((dataset, prior))
            ref_text = "&ndash;" if ref is None else f"{ref:.2f}"
            if paper is not None:
                ref_text += f"<br><small>paper: {paper:.2f}</small>"
            cells.append(f"<td>{ours}</td><td style='color:#666'>{ref_text}</td>")
        body.append(f"<tr><th>{html.escape(dataset)}</th>{''.join(cells)}</tr>")
    return (f"<table><thead><tr><th rowspan=2>dataset</th>{head}</tr><tr>{sub}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def fmt(value, digits=2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "&ndash;"
    return f"{value:.{digits}f}"
