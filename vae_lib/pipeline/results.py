"""Results gathered from run records, for the report: rows, results.csv, seed summaries, paired
per-image differences between priors, and the verdict a paired difference gives. The report's
tables are :mod:`.tables`; the numbers we compare with, :mod:`.references`."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .config import K_SWEEP_SETTINGS, PROFILES, RunConfig
from .io import atomic_write_csv, read_json
from .references import PAPER, REFERENCE
from .rundir import CONFIG, FAILURE, METRICS, read_config, variant_of

CSV_COLUMNS = ["dataset", "model", "prior", "components", "seed", "variant", "profile", "status",
               "epochs", "epochs_trained", "best_epoch", "stopped_early", "eval_samples", "n_train",
               "n_test", "test_ll", "test_ll_stderr", "test_ll_mc_stderr", "test_ess_median",
               "test_elbo", "test_bits_per_dim", "train_seconds", "seconds_per_epoch",
               "eval_seconds", "reference_ll", "paper_ll", "git_commit", "trained_by", "run"]
NOT_RECORDED = "start commit not recorded"


def trained_by(metrics: dict) -> str:
    """The code that trained a record, segment by segment (each start or resume: its commit, whether
    that checkout was modified, its threads), once per distinct segment; NOT_RECORDED for records
    made before segments were recorded, whose metrics.json names only the commit that evaluated
    them (``git_commit``), which a run that resumed across commits does not identify."""
    segments = metrics.get("training_segments") or []
    if not segments:
        return NOT_RECORDED
    texts = []
    for segment in segments:
        threads = segment.get("threads")
        text = ((segment.get("commit") or "unknown commit")[:10] + (" modified" if segment.get("modified") else "")
                + ("" if threads is None else f" ({threads} thread{'s' if threads != 1 else ''})"))
        if text not in texts:
            texts.append(text)
    return "; ".join(texts)


def collect_rows(records, relative_to=None) -> list[dict]:
    """One row per record under ``records`` (a folder of run records or run directories):
    complete, failed, or incomplete. ``run`` is the record's path relative to ``relative_to``."""
    rows = []
    for path in sorted(Path(records).glob(f"*/{CONFIG}")):
        run_dir = path.parent
        config = read_config(run_dir)
        # own_cell: one of the profile's own grid cells (its K and settings; not the K sweep's nor
        # a variant's), Table 1's. The reference's and the paper's numbers go to these only; a
        # reduced profile's report says that its budget is not the paper's.
        own_cell = (not variant_of(config)
                    and config.components == PROFILES.get(config.profile, {}).get("components"))
        row = dict(dataset=config.dataset, model=config.model, prior=config.prior,
                   components=config.components, seed=config.seed, variant=variant_of(config),
                   own_cell=own_cell,
                   profile=config.profile, epochs=config.epochs, eval_samples=config.eval_samples,
                   status="incomplete", config=config, run_dir=run_dir,
                   run=str(run_dir.relative_to(relative_to) if relative_to else run_dir),
                   reference_ll=(REFERENCE.get(config.dataset, {}).get(config.prior)
                                 if config.model == "vae" and own_cell else None),
                   paper_ll=PAPER.get((config.dataset, config.model, config.prior)) if own_cell else None)
        if (run_dir / METRICS).is_file():
            metrics = read_json(run_dir / METRICS)
            row.update({k: metrics[k] for k in CSV_COLUMNS if k in metrics})
            row["git_commit"] = (metrics.get("provenance", {}).get("git", {}) or {}).get("commit")
            row["trained_by"] = trained_by(metrics)
            row.update(status="complete", metrics=metrics)
        elif (run_dir / FAILURE).is_file():
            failure = read_json(run_dir / FAILURE)
            row.update(status="failed", error=failure.get("error"), message=failure.get("message"))
        rows.append(row)
    return rows


def write_results_csv(rows, path) -> None:
    atomic_write_csv(path, rows, CSV_COLUMNS)


def select(rows, status="complete", **where) -> list[dict]:
    """Rows whose fields equal ``where`` (and of ``status``, unless None)."""
    return [r for r in rows if (status is None or r["status"] == status)
            and all(r.get(k) == v for k, v in where.items())]


def grid_components(profile: str) -> int:
    return PROFILES[profile]["components"]


def sweep_variant(profile: str) -> str:
    """The variant string of the K sweep's runs (settings they change from the profile's)."""
    return variant_of(RunConfig(**{**PROFILES[profile], **K_SWEEP_SETTINGS[profile], "profile": profile}))


def test_ll_of(row) -> np.ndarray:
    with np.load(Path(row["run_dir"]) / "test_ll.npz") as f:
        return f["log_px"]


@dataclass
class Summary:
    """A cell over its seeds: the mean test LL and its error (the standard error over the test
    images for one seed, the standard deviation across seeds for several)."""

    mean: float
    err: float
    n_seeds: int
    err_kind: str
    seeds: tuple


def summarize(rows) -> Summary | None:
    """Mean test LL over the (complete) ``rows``, one per seed; None when there are none."""
    if not rows:
        return None
    values = np.array([r["test_ll"] for r in rows], np.float64)
    seeds = tuple(sorted(r["seed"] for r in rows))
    if len(rows) == 1:
        return Summary(float(values[0]), float(rows[0]["test_ll_stderr"]), 1, "s.e.", seeds)
    return Summary(float(values.mean()), float(values.std(ddof=1)), len(rows), "std over seeds", seeds)


def spread_text(summaries) -> str:
    """What the error of these summaries is: the standard deviation across seeds, the standard
    error over the test images (one seed), or either (as many seeds as each has)."""
    kinds = {s.err_kind for s in summaries if s is not None}
    words = [w for kind, w in (("std over seeds", "the standard deviation across seeds"),
                               ("s.e.", "the standard error over the test images (one seed)")) if kind in kinds]
    return " or ".join(words) or "none (no runs)"


@dataclass
class PairedDifference:
    """test LL of ``rows`` minus that of ``baseline`` on the same test images, paired by seed:
    ``per_seed`` (mean difference, its standard error over images) for each common seed;
    ``mean`` their mean, ``err`` the std across seeds (several seeds) or the paired standard error
    over the images (one seed)."""

    per_seed: dict
    mean: float
    err: float
    err_kind: str
    # one seed only, after with_seed_spread: the seed-to-seed spread folded into err (None: not
    # measured on its dataset, and then no verdict)
    seed_spread: float | None = None
    needs_seed_spread: bool = False
    seed_spread_from: str | None = None  # the comparable dataset it was measured on, if not its own


def seed_spread(differences) -> float | None:
    """The seed-to-seed spread of a paired difference, pooled over the ``differences`` that have
    several seeds: the root mean square of their std over seeds (None if none has)."""
    spreads = [d.err for d in differences if d is not None and len(d.per_seed) > 1 and math.isfinite(d.err)]
    return float(np.sqrt(np.mean(np.square(spreads)))) if spreads else None


def with_seed_spread(difference: PairedDifference, spread: float | None,
                     measured_on: str | None = None) -> PairedDifference:
    """A one-seed difference whose error includes the seed-to-seed spread (:func:`seed_spread` of
    comparable differences, in quadrature with its paired s.e. over images): a difference of two
    single training runs varies with their seeds, which its paired s.e. does not see.
    ``measured_on``: the comparable dataset the spread comes from, where its own has none. With no
    measured spread it is marked as needing one (:func:`verdict` then gives none). A difference
    over several seeds already has that spread in its std and is returned as it is."""
    if len(difference.per_seed) != 1 or difference.seed_spread is not None or difference.needs_seed_spread:
        return difference  # several seeds, or given its spread already
    if spread is None:
        return replace(difference, needs_seed_spread=True)
    return replace(difference, err=float(math.hypot(difference.err, spread)), seed_spread=spread,
                   err_kind="paired s.e. and seed spread", seed_spread_from=measured_on)


def interval_halfwidth(difference: PairedDifference) -> float:
    """Half-width of the two-sided 95% interval of a paired difference's mean: over n >= 2 seeds
    the t interval t(0.975, n - 1) x std / sqrt(n) (with 3 seeds 2.48 std); for one seed 1.96
    times its error (the paired s.e. over the test images, with the seed-to-seed spread where
    :func:`with_seed_spread` added it; NaN where it found none to add)."""
    from scipy import stats  # here, not at import: the report's other helpers do not need it

    n = len(difference.per_seed)
    if n == 1:
        if difference.needs_seed_spread and difference.seed_spread is None:
            return float("nan")
        return float(stats.norm.ppf(0.975)) * difference.err
    return float(stats.t.ppf(0.975, n - 1)) * difference.err / math.sqrt(n)


def _unmeasured_spread(difference: PairedDifference) -> bool:
    return len(difference.per_seed) == 1 and difference.needs_seed_spread and difference.seed_spread is None


def _spread_room(difference: PairedDifference) -> float:
    """The largest seed-to-seed spread under which a one-seed difference would still exclude 0
    (NaN or <= 0: it would not even with none)."""
    return (difference.mean / 1.959963984540054) ** 2 - difference.err ** 2  # the normal 97.5% point


def verdict_kind(difference: PairedDifference) -> str:
    """"better", "worse", "unclear" (the interval contains 0) or "none" (no interval: too few
    images, or one seed whose seed-to-seed spread is not measured and would decide it): what
    :func:`verdict` says, as a word to compare two verdicts by."""
    if _unmeasured_spread(difference):
        room = _spread_room(difference)
        return "none" if math.isfinite(room) and room > 0 else "unclear"
    half = interval_halfwidth(difference)
    if not math.isfinite(half):
        return "none"
    return "better" if difference.mean > half else "worse" if difference.mean < -half else "unclear"


def verdict(difference: PairedDifference, subject: str) -> str:
    """What a paired difference says of ``subject``: better or worse where its 95% interval
    excludes zero, else no clear difference. A one-seed difference whose seed-to-seed spread is
    not measured gets no verdict; it is told how large that spread could be with the difference
    still excluding zero."""
    kind = verdict_kind(difference)
    if kind == "better":
        return f"{subject} is better"
    if kind == "worse":
        return f"{subject} is worse"
    if kind == "unclear":
        return "no clear difference (its 95% interval contains 0)"
    if _unmeasured_spread(difference):
        return (f"no verdict on one seed: the seed-to-seed spread is not measured on this dataset "
                f"({subject} would be {'better' if difference.mean > 0 else 'worse'} were it below "
                f"{math.sqrt(_spread_room(difference)):.2f} nats)")
    return "no interval (too few test images or seeds to estimate its error)"


def paired_difference(rows, baseline_rows) -> PairedDifference | None:
    base = {r["seed"]: r for r in baseline_rows}
    per_seed = {}
    for r in rows:
        if r["seed"] in base:
            a, b = test_ll_of(r), test_ll_of(base[r["seed"]])
            if a.shape != b.shape:
                continue
            d = a - b
            per_seed[r["seed"]] = (float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d))))
    if not per_seed:
        return None
    means = np.array([m for m, _ in per_seed.values()])
    if len(per_seed) == 1:
        (m, se), = per_seed.values()
        return PairedDifference(per_seed, m, se, "paired s.e.")
    return PairedDifference(per_seed, float(means.mean()), float(means.std(ddof=1)), "std over seeds")


def _is_planned(planned, dataset, model, prior, **_) -> bool:
    """Whether the profile's plan has the cell (``planned``: (dataset, model, prior) keys; None: all)."""
    return planned is None or (dataset, model, prior) in planned


def cell_summary(rows, planned=None, needs_gpu=(), **where) -> tuple[Summary | None, str]:
    """The summary of the complete rows matching ``where`` and what to say beside it: their seeds
    ("3 seeds"; "1 of 3 seeds" while the plan has more, when ``planned`` maps each (dataset, model,
    prior) to its seeds; failed ones); or, with no complete row, why: failed, record incomplete (a
    copy cut short: the next main job completes it), not run, needs a GPU (the (dataset, model,
    prior) keys in ``needs_gpu``), or not planned."""
    found = select(rows, status=None, **where)
    statuses = [r["status"] for r in found]
    s = summarize([r for r in found if r["status"] == "complete"])
    if s is None:
        if not found and not _is_planned(planned, **where):
            return None, "not planned"
        if "failed" in statuses:
            return None, "failed"
        if "incomplete" in statuses:
            return None, "record incomplete"
        return None, "needs a GPU" if (where["dataset"], where["model"], where["prior"]) in needs_gpu else "not run"
    key = (where["dataset"], where["model"], where["prior"])
    n_planned = len(planned.get(key, ())) if isinstance(planned, dict) else 0
    notes = [f"{s.n_seeds} of {n_planned} seeds" if n_planned > s.n_seeds
             else f"{s.n_seeds} seeds" if s.n_seeds > 1 else "",
             f"{statuses.count('failed')} failed" if "failed" in statuses else ""]
    return s, ", ".join(n for n in notes if n)


def model_differences(rows, datasets, priors, model="hvae", baseline="vae"):
    """(dataset, prior, ``model``'s summary, ``baseline``'s summary, paired difference) wherever
    both models have complete runs of the profile's own cells, over the seeds both have (so the
    two summaries and the difference describe the same runs); the difference is per image and
    seed, ``model`` minus ``baseline``."""
    out = []
    for dataset in datasets:
        for prior in priors:
            where = dict(dataset=dataset, prior=prior, own_cell=True)
            a, b = select(rows, model=model, **where), select(rows, model=baseline, **where)
            common = {r["seed"] for r in a} & {r["seed"] for r in b}
            a, b = [r for r in a if r["seed"] in common], [r for r in b if r["seed"] in common]
            d = paired_difference(a, b)
            if d is not None:
                out.append((dataset, prior, summarize(a), summarize(b), d))
    return out


NEARLY_UNIFORM = 0.05  # an image whose pixels spread less than this (s.d., in [0, 1]) is nearly uniform


def nearly_uniform(images, threshold: float = NEARLY_UNIFORM) -> int:
    """How many of ``images`` (in [0, 1], one per row or image-shaped) are nearly uniform: their
    pixels' standard deviation below ``threshold``; for a VampPrior's pseudo-inputs, those that
    training has barely moved from their near-constant start."""
    images = np.asarray(images, np.float64)
    return int(np.sum(images.reshape(len(images), -1).std(axis=1) < threshold))


def sample_spread(samples) -> float:
    """How much a model's samples differ from one another: the standard deviation across the samples
    of each pixel, averaged over the pixels, in 8-bit grey levels (``samples`` in [0, 1], one per
    row, as records.read_images gives them). Near 0: the samples are copies of one image, whatever
    their likelihood says."""
    samples = np.asarray(samples, np.float64).reshape(len(samples), -1)
    if len(samples) < 2:
        return float("nan")
    return float(255.0 * samples.std(axis=0, ddof=1).mean())
