"""Has the importance-sampled log-likelihood converged at the protocol's S?

The estimate logsumexp_s w_s - log S is a lower bound in expectation that rises towards log p(x) as
S grows; where the encoder is a poor proposal (a median ESS of 2-3 of 5000 on Caltech 101 and Frey
Faces) it is still rising at S=5000. This scores a fixed random subset of the test images with
several S, from trained runs (their checkpoints), so that the report can show how far from
converged each estimate is, and whether a difference between two priors holds at larger S.

    python -m vae_lib.pipeline.convergence RUN_DIR [RUN_DIR ...] [--samples 500 1000 5000 20000 50000]
                                  [--images 200] [--out report/paper/is_convergence.json]

The file keeps one entry per run, with the per-image estimates at every S so that differences can
be paired; each run is written as soon as it is scored. Rerunning scores only what is missing: new
runs, and new S of runs already there (on the same images; another --images rescores the run).
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, VaeLibError
from .io import atomic_write_json, read_json
from .rundir import CONFIG, variant_of

SAMPLE_SIZES = (500, 1000, 5000, 20000, 50000)
NUM_IMAGES = 200
SEED = 2018  # the draws' seed: independent of the test evaluation's (the run's own seed)


def image_subset(num_test: int, num_images: int = NUM_IMAGES) -> np.ndarray:
    """The same test images for every run of a dataset (sorted indices), so estimates pair up."""
    pick = np.random.default_rng(0).choice(num_test, min(num_images, num_test), replace=False)
    return np.sort(pick)


def score_at_sample_sizes(model, images, sample_sizes=SAMPLE_SIZES, seed=SEED, progress=None) -> dict:
    """Per-image log p(x) estimates and median ESS at each S. Each S is an evaluation of its own
    from the same seed; a pass's draws depend on S (its seed counter and shape do), so the
    estimates at two S are neither independent nor nested."""
    from ..estimators import ImportanceSampler

    out = {}
    for s in sample_sizes:
        result = ImportanceSampler(model, s).evaluate(images, seed=seed)
        out[str(s)] = dict(log_px=[round(float(v), 4) for v in result.log_px],
                           ess_median=float(np.median(result.ess)))
        if progress:
            progress(s, result)
    return out


def score_run(run_dir, sample_sizes=SAMPLE_SIZES, num_images=NUM_IMAGES, data_dir=None, progress=None,
              known: dict | None = None) -> dict:
    """Score one trained run directory: what the report needs to label and pair it. ``known``: the
    run's entry so far, whose sample sizes are kept (only the missing ones are scored) where it
    was scored on the same images with the same seed, from the same trained model (its best epoch
    and validation loss: a run retrained under the same name is scored afresh)."""
    from .provenance import provenance
    from .records import load_run

    run = load_run(run_dir, data_dir)
    indices = image_subset(len(run.dataset.test), num_images)
    trained = {k: (run.metrics or {}).get(k) for k in ("best_epoch", "best_valid_loss")}
    by_samples = {}
    if (known and known["images"] == indices.tolist() and known["draw_seed"] == SEED
            and known.get("trained", trained) == trained):  # (entries older than "trained": kept)
        by_samples = dict(known["by_samples"])
    missing = [s for s in sample_sizes if str(s) not in by_samples]
    if by_samples and not missing:
        return known
    by_samples.update(score_at_sample_sizes(run.model, run.dataset.test[indices], missing, progress=progress))
    c = run.config
    return dict(run=Path(run_dir).name, dataset=c.dataset, model=c.model, prior=c.prior,
                components=c.components, seed=c.seed, variant=variant_of(c), images=indices.tolist(),
                draw_seed=SEED, trained=trained, by_samples=by_samples,
                provenance=provenance())


def read_convergence(path) -> list[dict]:
    """The entries of an is_convergence.json (none where there is no file)."""
    path = Path(path)
    return read_json(path)["runs"] if path.is_file() else []


def mean_by_samples(e: dict) -> tuple[list[int], list[float]]:
    sizes = sorted(int(s) for s in e["by_samples"])
    return sizes, [float(np.mean(e["by_samples"][str(s)]["log_px"])) for s in sizes]


def paired_by_samples(a: dict, b: dict) -> list[tuple[int, float, float]]:
    """(S, mean of a - b per image, its standard error) at every S both have (same images)."""
    if a["images"] != b["images"]:
        return []
    out = []
    for s in sorted(set(a["by_samples"]) & set(b["by_samples"]), key=int):
        d = np.asarray(a["by_samples"][s]["log_px"]) - np.asarray(b["by_samples"][s]["log_px"])
        out.append((int(s), float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))))
    return out


def scope_text(entries) -> str:
    """Which runs and how many test images ``entries`` cover, e.g. "seed 0 runs, 200 test images"."""
    seeds = sorted({e["seed"] for e in entries})
    sizes = sorted({len(e["images"]) for e in entries})
    return (f"seed {'/'.join(map(str, seeds))} run{'s' if len(entries) > 1 else ''}, "
            f"{'/'.join(map(str, sizes))} test images")


def run_label(e: dict) -> str:
    return (f"{e['prior']}{' (HVAE)' if e['model'] == 'hvae' else ''}"
            f"{' ' + e['variant'] if e['variant'] else ''}, seed {e['seed']}")


def baseline_entry(e: dict, entries, baseline="standard"):
    """The baseline prior's entry for the same dataset, model, K, seed, variant and images."""
    for o in entries:
        if (o["prior"] == baseline and o["images"] == e["images"]
                and all(o[k] == e[k] for k in ("dataset", "model", "components", "seed", "variant"))):
            return o
    return None


@dataclass
class PastProtocol:
    """A run scored at the protocol's S and beyond: its mean estimate at S and at the largest S,
    and (where its baseline prior's run of the same seed was scored too) the paired difference to
    it, (mean, s.e.), at both."""

    entry: dict
    top: int  # the largest S
    mean_at_s: float
    mean_at_top: float
    paired_at_s: tuple[float, float] | None
    paired_at_top: tuple[float, float] | None

    @property
    def rise(self) -> float:
        return self.mean_at_top - self.mean_at_s


def past_protocol(entries, protocol_samples: int, baseline="standard") -> list[PastProtocol]:
    """Every run scored at the protocol's S and above, in the report's order (by dataset and
    model, the baseline prior first)."""
    out = []
    for e in sorted(entries, key=lambda e: (e["dataset"], e["model"], e["prior"] != baseline, e["prior"], e["seed"])):
        sizes, means = mean_by_samples(e)
        if protocol_samples not in sizes or sizes[-1] <= protocol_samples:
            continue
        partner = baseline_entry(e, entries, baseline) if e["prior"] != baseline else None
        paired = {s: (d, se) for s, d, se in paired_by_samples(e, partner)} if partner else {}
        out.append(PastProtocol(e, sizes[-1], means[sizes.index(protocol_samples)], means[-1],
                                paired.get(protocol_samples), paired.get(sizes[-1])))
    return out


@dataclass
class MonteCarloCheck:
    """The Monte Carlo error of a record's estimates, measured: the same images scored twice at the
    protocol's S with independent samples (the record's evaluation and this check's), so each
    image's two estimates differ by a draw of variance 2 sigma_i^2. ``empirical``: the per-image
    sigma, sqrt(var(difference) / 2), over the checked images; ``predicted``: the delta method's
    per-image error sqrt(1/ESS - 1/S) on the same images (root mean square), which
    assumes the weights' variance is well estimated from S of them, and understates it where
    the weights are heavy-tailed (a small ESS)."""

    entry: dict
    empirical: float
    predicted: float
    n_images: int

    @property
    def ratio(self) -> float:
        return self.empirical / self.predicted

    def mean_stderr(self, n_test: int) -> float:
        """The Monte Carlo standard error of a mean over ``n_test`` images (independent across
        images) with this per-image error."""
        return self.empirical / math.sqrt(n_test)


def monte_carlo_check(entry: dict, log_px: np.ndarray, ess: np.ndarray, protocol_samples: int):
    """A :class:`MonteCarloCheck` from a convergence entry scored at the protocol's S and its run's
    record (per-image ``log_px`` and ``ess`` over the run's test images, which the entry's
    ``images`` index); None if the entry has no such S or fewer than 2 images."""
    scored = entry["by_samples"].get(str(protocol_samples))
    images = np.asarray(entry["images"])
    if scored is None or len(images) < 2 or images.max() >= len(log_px):
        return None
    difference = np.asarray(scored["log_px"], np.float64) - np.asarray(log_px, np.float64)[images]
    predicted = float(np.sqrt(np.mean(1.0 / np.asarray(ess, np.float64)[images] - 1.0 / protocol_samples)))
    return MonteCarloCheck(entry, float(np.std(difference, ddof=1) / math.sqrt(2)), predicted, len(images))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vae_lib.pipeline.convergence",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", help="trained run directories (with checkpoint.npz)")
    parser.add_argument("--samples", type=int, nargs="+", default=list(SAMPLE_SIZES))
    parser.add_argument("--images", type=int, default=NUM_IMAGES)
    parser.add_argument("--data-dir")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="report/paper/is_convergence.json")
    args = parser.parse_args(argv)
    if args.images < 2 or min(args.samples) < 1:
        raise ConfigError("--images must be at least 2 (for a standard error) and every --samples positive.")
    for run_dir in args.run_dirs:  # all checked before hours of scoring
        if not (Path(run_dir) / CONFIG).is_file():
            raise ConfigError(f"{run_dir} is not a run directory (no {CONFIG}); give trained run "
                              f"directories (VAE_RUNS_DIR/<profile>/<run>, with their checkpoint).")
    from .experiment import use_threads

    use_threads(args.threads)
    out = Path(args.out)
    if not out.parent.is_dir():  # before hours of scoring, not after
        raise ConfigError(f"--out's folder {out.parent.resolve()} does not exist: run from the "
                          f"repository's root (the default is report/paper/is_convergence.json) or "
                          f"give --out a path in an existing folder.")
    entries = {e["run"]: e for e in read_convergence(out)}
    for run_dir in args.run_dirs:
        name, known = Path(run_dir).name, entries.get(Path(run_dir).name)
        report = lambda s, r: print(f"{name}: S={s}: mean {r.log_px.mean():.3f}, median ESS "
                                    f"{np.median(r.ess):.1f}", flush=True)
        scored = score_run(run_dir, args.samples, args.images, args.data_dir, report, known)
        if scored is known:
            print(f"{name}: already scored")
            continue
        entries[name] = scored
        atomic_write_json(out, dict(runs=[entries[k] for k in sorted(entries)]))
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except VaeLibError as err:
        raise SystemExit(f"python -m vae_lib.pipeline.convergence: error: {err}") from None
