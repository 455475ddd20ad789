"""The report's "What we found": its findings, written from the records' numbers each time the report
is built, section by section. Each rule is a function of the numbers (tested on constructed ones
in tests/test_verdicts.py); the report notebook gathers the numbers and displays the text.

"Better" or "worse" means the paired difference's 95% interval excludes zero
(:func:`vae_lib.pipeline.results.verdict`). A difference of one seed's runs carries the
seed-to-seed spread measured on the same dataset's several-seed differences
(:func:`seed_spreads`), or, on a dataset with none, on its comparable dataset's
(:data:`COMPARABLE_DATASETS`); where neither measures it, it gets no verdict.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import make_config
from .convergence import mean_by_samples, scope_text
from .records import read_history
from .references import PAPER, PAPER_SOURCE, REFERENCE, REFERENCE_SAMPLES, REFERENCE_SOURCE, RERUNS
from .results import (interval_halfwidth, paired_difference, seed_spread, select, summarize, verdict,
                      verdict_kind, with_seed_spread)
from .registry import model_label
from .rundir import variant_of
from ..schedule import kl_weight


# A dataset without several-seed differences of its own takes its seed-to-seed spread from these,
# and why they are comparable: dynamic MNIST has static MNIST's digits, networks and split sizes;
# only the binarization differs.
COMPARABLE_DATASETS = {"dynamic_mnist": ("static_mnist", "the same digits and networks")}


@dataclass
class Evidence:
    """What the findings are written from: the report's rows and what its sections computed."""

    rows: list  # results.collect_rows of the profile's records
    profile: str
    models: list
    datasets: list
    priors: list
    planned: dict  # (dataset, model, prior) -> seeds, of the plan's Table 1 cells
    K: int  # the profile's number of components
    S: int  # the profile's importance samples
    warmup_epochs: int
    conv: list = field(default_factory=list)  # is_convergence.json entries
    past_s: list = field(default_factory=list)  # convergence.past_protocol(conv, S)
    rises: dict = field(default_factory=dict)  # dataset -> rises of the estimate past S
    hvae_vs_vae: list = field(default_factory=list)  # results.model_differences(rows, ..., "hvae", "vae")
    code_diffs: dict = field(default_factory=dict)  # (dataset, variant) -> VampPrior - standard, paired
    code_settings: dict = field(default_factory=dict)  # variant -> what it is, in words
    he_variant: str = ""  # the variant name of the paper code's initialisation
    learned_diffs: dict = field(default_factory=dict)  # dataset -> learned - fixed pseudo-inputs, paired
    flat_counts: dict = field(default_factory=dict)  # dataset -> (nearly uniform, shown) pseudo-inputs
    sample_spreads: dict = field(default_factory=dict)  # (dataset, prior) -> [(seed, spread, flat, stored)]
    prior_diffs: dict = field(default_factory=dict)  # filled by prior_sections
    seed_spreads: dict = field(default_factory=dict)  # dataset -> seed-to-seed spread (computed)
    # (dataset, model, prior) -> that prior's paired difference to the standard prior, before the
    # seed spread is added (computed once: seed_spreads and prior_sections both read it)
    raw_prior_diffs: dict = field(default_factory=dict)
    needs_gpu: set = field(default_factory=set)  # (dataset, model, prior) of the plan's cells that need a GPU

    def __post_init__(self):
        """Measure each dataset's seed-to-seed spread on the raw differences, then give it to the
        one-seed ones held here (the sections do so for those they compute)."""
        self.raw_prior_diffs = {}
        for model in self.models:
            for dataset in self.datasets:
                base = self.grid_cell(dataset, "standard", model)
                for prior in [p for p in self.priors if p != "standard"]:
                    self.raw_prior_diffs[dataset, model, prior] = paired_difference(
                        self.grid_cell(dataset, prior, model), base)
        self.seed_spreads = seed_spreads(self)
        self.hvae_vs_vae = [(dataset, prior, a, b, self.spread(d, dataset)) for dataset, prior, a, b, d in self.hvae_vs_vae]
        self.code_diffs = {key: self.spread(d, key[0]) for key, d in self.code_diffs.items()}
        self.learned_diffs = {dataset: self.spread(d, dataset) for dataset, d in self.learned_diffs.items()}

    def spread(self, d, dataset):
        """``d`` with its dataset's seed-to-seed spread if it has one seed (results.with_seed_spread),
        or its comparable dataset's (:data:`COMPARABLE_DATASETS`) where its own is not measured."""
        if d is None:
            return None
        if dataset not in self.seed_spreads and dataset in COMPARABLE_DATASETS:
            other = COMPARABLE_DATASETS[dataset][0]
            if other in self.seed_spreads:
                return with_seed_spread(d, self.seed_spreads[other], measured_on=other)
        return with_seed_spread(d, self.seed_spreads.get(dataset))

    def why_missing(self, dataset, model, prior) -> str:
        """Why a cell has no result, in the words of Table 1: it needs a GPU (the plan leaves it out
        on a CPU), is not run yet, or is not in the plan."""
        key = (dataset, model, prior)
        return ("needs a GPU" if key in self.needs_gpu else "not run yet" if key in self.planned
                else "not planned")

    def grid_cell(self, dataset, prior, model="vae"):
        """The complete rows of one of the profile's own Table 1 cells (all its seeds)."""
        return select(self.rows, dataset=dataset, model=model, prior=prior, profile=self.profile, own_cell=True)


def error_text(d):
    if d.seed_spread is not None:
        (_, se), = d.per_seed.values()
        if d.seed_spread_from:
            why = dict(COMPARABLE_DATASETS.values()).get(d.seed_spread_from, "a comparable dataset")
            whose = f"the seed-to-seed spread {d.seed_spread:.2f} of {d.seed_spread_from} ({why}; not measured on this one)"
        else:
            whose = f"the dataset's seed-to-seed spread {d.seed_spread:.2f}"
        return f"paired s.e. {se:.2f} and {whose}: {d.err:.2f}, 1 seed"
    return f"{d.err_kind} {d.err:.2f}, {len(d.per_seed)} seed(s)"


def difference_numbers(d):
    return f"{d.mean:+.2f} nats per image, {error_text(d)}"


def difference_text(d, subject):
    return f"{d.mean:+.2f} nats per image ({error_text(d)}): {verdict(d, subject)}"


def prior_sections(ev: Evidence) -> tuple[list, dict]:
    """Each prior against the standard prior, and the HVAE against the VAE, paired; with the
    paired differences to the standard prior by (dataset, model, prior), for later sections."""
    sections = []
    lines, prior_diffs = [], {}  # (dataset, model, prior) -> paired difference to the standard prior
    for (dataset, model, prior), raw in ev.raw_prior_diffs.items():
        d = ev.spread(raw, dataset)
        if d is not None:
            prior_diffs[dataset, model, prior] = d
            lines.append(f"- {dataset} ({model_label(model)}): {prior} &minus; standard = "
                         f"{difference_text(d, prior)}.")
    sections.append(("Each prior against the standard prior (paired)", lines))
    sections.append(("The HVAE against the VAE (paired, same prior)",
                     [f"- {dataset}, {prior}: HVAE &minus; VAE = {difference_text(d, 'the HVAE')}."
                      for dataset, prior, _, _, d in ev.hvae_vs_vae]))
    return sections, prior_diffs


def paper_section(ev: Evidence) -> tuple[str, list]:
    """Our cells against the paper's numbers (verdicts only at the paper's protocol)."""
    rows, profile, planned, K = ev.rows, ev.profile, ev.planned, ev.K
    grid_cell = ev.grid_cell
    lines = []  # the paper's numbers (verdicts only at the paper's protocol)
    for (dataset, model, prior), value in PAPER.items():
        ours = summarize(grid_cell(dataset, prior, model))
        head = f"- {dataset}, {model_label(model)} + {prior}: "
        if ours is None:
            lines.append(head + ev.why_missing(dataset, model, prior) + f" (the paper: {value:.2f}).")
            continue
        gap = ours.mean - value
        verdict_text = ("" if profile != "paper" else
                        ": reproduced, within two of our errors" if abs(gap) <= 2 * ours.err else
                        f": {'not reproduced' if gap < 0 else 'above it'}, {abs(gap):.2f} nats "
                        f"{'below' if gap < 0 else 'above'} ({abs(gap) / ours.err:.1f} of our errors)")
        line = (head + f"{ours.mean:.2f} &plusmn; {ours.err:.2f} ({ours.err_kind}, {ours.n_seeds} seed(s)) "
                f"against the paper's {value:.2f}{verdict_text}.")
        # the same cell with the paper code's initialisation and optimizer, where the plan has it
        code_rows = select(rows, dataset=dataset, model=model, prior=prior, components=K,
                           variant=variant_of(make_config(dataset, prior, profile, model=model,
                                                          weight_init="he", optimizer="adamnormgrad")))
        if code_rows:
            code, d = summarize(code_rows), ev.spread(paired_difference(code_rows, grid_cell(dataset, prior, model)), dataset)
            line += (f" With the paper code's initialisation and optimizer: {code.mean:.2f} &plusmn; "
                     f"{code.err:.2f} ({code.n_seeds} seed(s)), {code.mean - value:+.2f} from the paper's"
                     + ("" if d is None else f"; paired against ours, {difference_text(d, f'that {model_label(model)}')}")
                     + ".")
        lines.append(line)
    return (f"Against the paper ({PAPER_SOURCE})", lines)


def reruns_section(ev: Evidence) -> tuple[str, list]:
    """Ours against public reruns of the paper's code (references.RERUNS), each with its source: the
    same cell within two combined errors (ours, and the spread the rerun gives, in quadrature) or
    not; and, where the paper's number has a rerun, whether the paper's own code reaches it.
    Verdicts only at the paper's protocol."""
    lines, sources = [], []

    def cite(source):
        if source not in sources:
            sources.append(source)
        return sources.index(source) + 1

    for (dataset, model, prior), rerun in RERUNS.items():
        ours = summarize(ev.grid_cell(dataset, prior, model))
        head = f"- {dataset}, {model_label(model)} + {prior}: "
        theirs = rerun.text()
        if ours is None:
            if (dataset, model, prior) in ev.planned:
                lines.append(head + f"{ev.why_missing(dataset, model, prior)} (the rerun "
                             f"[{cite(rerun.source)}]: {theirs}).")
            continue
        gap = ours.mean - rerun.value
        combined = float(np.hypot(ours.err, rerun.spread or 0.0))
        line = (head + f"ours {ours.mean:.2f} &plusmn; {ours.err:.2f} ({ours.err_kind}, {ours.n_seeds} seed(s)) "
                f"against the rerun's {theirs} [{cite(rerun.source)}]: ours {gap:+.2f}")
        if ev.profile == "paper":
            line += (", within two combined errors" if abs(gap) <= 2 * combined else
                     f", {'above' if gap > 0 else 'below'} it by {abs(gap) / combined:.1f} combined errors")
            line += f" ({combined:.2f}: ours and the rerun's spread in quadrature)"
        else:
            line += f" (ours at the **{ev.profile}** budget: no verdict)"
        paper = PAPER.get((dataset, model, prior))
        if paper is not None:
            line += (f". The paper's {paper:.2f} is {abs(rerun.value - paper):.2f} nats "
                     f"{'above' if paper > rerun.value else 'below'} this rerun of its own code")
        lines.append(line + ".")
    lines += [f"- [{i}] {source}." for i, source in enumerate(sources, 1)]
    return ("Against public reruns of the paper's code (cited; not results of ours)", lines)


def bits_per_dim_per_nat(rows) -> float | None:
    """Bits per dimension per nat of test log-likelihood, read off the first of ``rows`` (one
    dataset's rows: it is 1 / (pixels x ln 2)); None without rows or bits/dim in their records."""
    if not rows or "test_bits_per_dim" not in rows[0]["metrics"]:
        return None
    return rows[0]["metrics"]["test_bits_per_dim"] / -rows[0]["metrics"]["test_ll"]


def reference_section(ev: Evidence) -> tuple[str, list]:
    """Ours against the reference report: margins, what the larger S accounts for, Frey Faces'
    scale, and where the two disagree on which prior is better."""
    rows, K, S = ev.rows, ev.K, ev.S
    grid_cell = ev.grid_cell
    prior_diffs = ev.prior_diffs
    # The reference report: how far ours is above its numbers, what the larger S accounts for (the
    # convergence check scores the same images at the reference's S and at ours), and its gaps.
    lines = []
    # Frey Faces first: if the reference's numbers lie much further from ours than our runs lie from
    # each other, they are on another scale, and its cells are left out of the counts below.
    frey = select(rows, dataset="frey_faces", model="vae")  # every Frey Faces VAE run, variants too
    incomparable, frey_line = set(), None
    per_nat = bits_per_dim_per_nat(frey)
    if per_nat is not None:
        frey_cells = [(p, summarize(grid_cell("frey_faces", p)), ref) for p, ref in REFERENCE["frey_faces"].items()]
        frey_cells = [(p, s, ref) for p, s, ref in frey_cells if s is not None]
        ours_spread = max(r["test_ll"] for r in frey) - min(r["test_ll"] for r in frey)
        frey_gaps = [s.mean - ref for _, s, ref in frey_cells]
        if frey_cells:
            if min(frey_gaps) > 2 * ours_spread:
                incomparable.add("frey_faces")
            frey_line = ("- Frey Faces in bits/dim, ours vs the reference's: "
                         + "; ".join(f"{p} {-s.mean * per_nat:.2f} vs {-ref * per_nat:.2f}" for p, s, ref in frey_cells)
                         + f". Ours are {min(frey_gaps):.0f} to {max(frey_gaps):.0f} nats per image higher, "
                           f"where all {len(frey)} of our Frey Faces VAE runs (every prior, seed and "
                           f"setting) lie within {ours_spread:.0f} nats of each other"
                         + ("; the reference does not say which likelihood it used (below), so its Frey "
                            "Faces numbers are most likely on another scale, ours being higher says "
                            "nothing about the models, and they are left out of the counts above."
                            if "frey_faces" in incomparable else "."))
    s_gain = {}  # dataset -> the largest rise of a seed-0 estimate from the reference's S to ours
    for e in ev.conv:
        sizes, means = mean_by_samples(e)
        if (S > REFERENCE_SAMPLES and REFERENCE_SAMPLES in sizes and S in sizes and e["model"] == "vae"
                and not e["variant"]):
            gain = means[sizes.index(S)] - means[sizes.index(REFERENCE_SAMPLES)]
            s_gain[e["dataset"]] = max(gain, s_gain.get(e["dataset"], gain))
    margins = []  # (dataset, margin, our error) of the comparable cells
    for dataset, by_prior in REFERENCE.items():
        parts = []
        for prior, ref in by_prior.items():
            ours = summarize(grid_cell(dataset, prior))
            if ours is not None:
                if dataset not in incomparable:
                    margins.append((dataset, ours.mean - ref, ours.err))
                parts.append(f"{prior} {ours.mean:.2f} vs {ref:.2f} ({ours.mean - ref:+.2f})")
        if parts:
            lines.append(f"- {dataset}: " + "; ".join(parts) + ".")
    if margins:
        clear = [m for m in margins if m[1] > 2 * m[2]]
        count = (f"- Ours is higher in {sum(m[1] > 0 for m in margins)} of {len(margins)} cells"
                 + (" (Frey Faces left out, below)" if incomparable else "")
                 + f", by more than two of our errors in {len(clear)}.")
        if S != REFERENCE_SAMPLES:
            count += f" The reference scored with S={REFERENCE_SAMPLES}, we with S={S}"
            gains = {d: g for d, g in s_gain.items() if d not in incomparable}
            checked = [m for m in margins if m[0] in gains]
            if gains:
                count += (f"; on the convergence check's images our estimates at S={REFERENCE_SAMPLES} were "
                          f"lower by up to " + ", ".join(f"{g:.2f} ({d})" for d, g in sorted(gains.items()))
                          + f" nats. Less that much, ours is still higher by more than two errors in "
                            f"{sum(m[1] - gains[m[0]] > 2 * m[2] for m in checked)} of the {len(checked)} "
                            f"cells with a check.")
            else:
                count += "."
        lines.append(count)
    # Where the VampPrior (or VampPrior-data) gains on the standard prior: the reference (the difference
    # of its numbers) and ours (paired); say plainly where the two disagree in sign.
    gaps, reversed_ = [], []
    for dataset, by_prior in REFERENCE.items():
        for prior in [p for p in by_prior if p != "standard"]:
            d = prior_diffs.get((dataset, "vae", prior))
            if d is None:
                continue
            ref_gap = by_prior[prior] - by_prior["standard"]
            gaps.append(f"{dataset}/{prior} {ref_gap:+.2f} vs {d.mean:+.2f}")
            if (ref_gap > 0) != (d.mean > 0) and abs(d.mean) > interval_halfwidth(d):  # a clear reversal
                reversed_.append((dataset, prior, ref_gap, d))
    if gaps:
        lines.append("- Gain over the standard prior, the reference's (its two numbers) vs ours (paired): "
                     + "; ".join(gaps) + ".")
    for dataset, prior, ref_gap, d in reversed_:
        he = ev.code_diffs.get((dataset, ev.he_variant)) if prior == "vampprior" else None
        line = (f"- **On {dataset}, {prior} is {'worse' if d.mean < 0 else 'better'} than the standard "
                f"prior in our runs** ({difference_numbers(d)}), where the reference report's numbers "
                f"{'gain' if ref_gap > 0 else 'lose'} {abs(ref_gap):.2f}: "
                + ("the paper's claim that the VampPrior beats the standard prior on every dataset "
                   if prior == "vampprior" else "the reference's ranking "))
        if he is None:
            line += "does not hold in our runs."
        else:
            he_vamp = summarize(select(rows, dataset=dataset, model="vae", prior="vampprior", components=K, variant=ev.he_variant))
            ours_std = summarize(grid_cell(dataset, "standard"))
            line += (f"does not hold with our initialisation. With the paper code's, VampPrior &minus; "
                     f"standard = {difference_text(he, 'the VampPrior')} (section *The small datasets*)"
                     + (f"; but that VampPrior ({he_vamp.mean:.2f}) stays "
                        f"{'below' if he_vamp.mean < ours_std.mean else 'above'} our standard prior "
                        f"({ours_std.mean:.2f}): it wins against a baseline trained worse."
                        if he_vamp is not None and ours_std is not None and he_vamp.mean < ours_std.mean else "."))
        lines.append(line)
    if frey_line:
        lines.append(frey_line)
    return (f"Against {REFERENCE_SOURCE}", lines)


def code_settings_section(ev: Evidence) -> tuple[str, list]:
    """Whether each of the paper code's settings, alone, changes which prior wins."""
    lines = []  # does each of the paper code's settings, alone, change which prior wins?
    for (dataset, variant), d in ev.code_diffs.items():
        ours = ev.code_diffs.get((dataset, ""))
        if not variant or d is None or ours is None:
            continue
        ours_says, it_says = verdict(ours, "the VampPrior"), verdict(d, "the VampPrior")
        lines.append(f"- {dataset}, {ev.code_settings[variant]}: VampPrior &minus; standard = {d.mean:+.2f} nats "
                     f"per image ({error_text(d)}), against {ours.mean:+.2f} with ours: "
                     + (f"the same verdict, {it_says}." if verdict_kind(d) == verdict_kind(ours) else
                        f"**the verdict changes**, from '{ours_says}' to '{it_says}'."))
    frey = frey_bits_line(ev)
    return ("The paper code's settings on the small datasets (paired, section *The small datasets*)",
            lines + ([frey] if frey else []))


def frey_bits_line(ev: Evidence) -> str | None:
    """Frey Faces in bits/dim (lower is better), ours against each of the paper code's settings
    run alone on the same seeds (paired), and which setting moves the number most; None without
    such runs. The paper's own Frey Faces number is not compared: no source for it was read."""
    per_nat = bits_per_dim_per_nat(select(ev.rows, dataset="frey_faces", model="vae"))
    if per_nat is None:
        return None
    parts, moves = [], {}  # moves: setting -> its largest change in bits/dim over the priors
    for prior in ("standard", "vampprior"):
        ours_rows = ev.grid_cell("frey_faces", prior)
        ours = summarize(ours_rows)
        if ours is None:
            continue
        items = []
        for variant, label in ev.code_settings.items():
            rows = select(ev.rows, dataset="frey_faces", model="vae", prior=prior, components=ev.K, variant=variant)
            d = paired_difference(rows, ours_rows) if variant else None
            if d is None or len(d.per_seed) < 2:
                continue
            bits = -d.mean * per_nat  # the setting's bits/dim minus ours
            moves[label] = max(moves.get(label, 0.0), abs(bits))
            kind = verdict_kind(d)
            word = {"worse": "ours better", "better": "ours worse"}.get(kind, "no clear difference")
            items.append(f"{label} {-summarize(rows).mean * per_nat:.2f} ({bits:+.3f} &plusmn; "
                         f"{d.err * per_nat:.3f}, {len(d.per_seed)} seeds: {word})")
        if items:
            parts.append(f"{prior}: ours {-ours.mean * per_nat:.2f} ({ours.n_seeds} seed(s)), " + ", ".join(items))
    if not parts:
        return None
    largest = max(moves, key=moves.get)
    return ("- Frey Faces in bits/dim (lower is better), ours against the paper code's settings one at a "
            "time (each setting's number, then its paired difference to ours, std over seeds): "
            + "; ".join(parts) + f". The largest change comes from {largest} ({moves[largest]:.2f} bits/dim). "
            "The paper's own Frey Faces number is not compared: no source for it could be read here.")


def training_section(ev: Evidence) -> tuple[str, list]:
    """Cells whose every seed's best epoch came inside the KL warm-up, and VampPriors whose
    pseudo-inputs mostly stayed flat."""
    models, datasets, K = ev.models, ev.datasets, ev.K
    grid_cell = ev.grid_cell
    lines = []  # how the runs trained: cells whose best epoch came inside the KL warm-up
    warmup = ev.warmup_epochs


    def last_epoch_losses(runs):
        """(training loss, validation loss) of the runs' last epochs, means over the runs; None when a
        run has no history."""
        last = [read_history(r["run_dir"])[-1:] for r in runs]
        if not runs or not all(last):
            return None
        return tuple(float(np.mean([h[0][key] for h in last])) for key in ("train_loss", "valid_loss"))


    for model in models:
        for dataset in datasets:
            base = None  # the standard prior's last-epoch losses, read once a dataset
            for prior in ev.priors:
                runs = grid_cell(dataset, prior, model)
                if not runs or not all(r["metrics"]["best_epoch"] < warmup for r in runs):
                    continue
                losses = last_epoch_losses(runs)
                if losses is None:
                    continue
                best = sorted(r["metrics"]["best_epoch"] for r in runs)
                fit = (f"at the last epoch training loss {losses[0]:.1f} and validation loss {losses[1]:.1f} "
                       f"nats (means over seeds")
                if prior != "standard":
                    base = base or last_epoch_losses(grid_cell(dataset, "standard", model))
                    if base is not None:
                        fit += f"; the standard prior's: {base[0]:.1f} and {base[1]:.1f}"
                fit += ")"
                lines.append(f"- {dataset} ({model_label(model)}), {prior}: every seed's best validation loss came "
                             f"during the KL warm-up (epochs {', '.join(map(str, best))} of {warmup}, KL weight "
                             f"{kl_weight(best[0], warmup):.2f} to {kl_weight(best[-1], warmup):.2f}); {fit}: "
                             f"it overfits the {runs[0]['metrics']['n_train']} training "
                             f"images early, and the weights kept (the best validation epoch's, as the "
                             f"protocol says) were trained with the KL term down-weighted.")
    for dataset, (flat, shown) in ev.flat_counts.items():
        if flat >= shown / 2:
            lines.append(f"- {dataset}, vampprior: {flat} of the {shown} pseudo-inputs shown (of {K}; the "
                         f"first seed's run) are still nearly uniform at the kept epoch, near-copies of their "
                         f"start (section *Pseudo-inputs*): many of its components likely coincide.")
    lines += sample_spread_lines(ev)
    return ("How the runs trained", lines)


LESS_VARIED = 0.8  # a prior's samples "vary less" below this share of the standard prior's spread


def sample_spread_lines(ev: Evidence) -> list:
    """A prior whose samples vary less than the standard prior's on every seed (each of its seeds'
    pixel s.d. across samples below the lowest of the standard prior's, and their mean below
    LESS_VARIED of the standard prior's mean): said, with its nearly uniform pseudo-inputs, and
    with whether its likelihood is nonetheless the higher."""
    lines = []
    for (dataset, prior), points in ev.sample_spreads.items():
        base = ev.sample_spreads.get((dataset, "standard"))
        if prior == "standard" or not base:
            continue
        values, base_values = [v for _, v, _, _ in points], [v for _, v, _, _ in base]
        if max(values) >= min(base_values) or np.mean(values) >= LESS_VARIED * np.mean(base_values):
            continue
        line = (f"- **On {dataset}, the {prior}'s samples vary less than the standard prior's**: the pixel s.d. "
                f"across samples is {min(values):.1f}&ndash;{max(values):.1f} grey levels over its {len(values)} "
                f"seed(s) against {min(base_values):.1f}&ndash;{max(base_values):.1f} (section *How varied are "
                f"the samples?*)")
        flats = [(f, n) for _, _, f, n in points if f is not None]
        if flats:
            line += (f"; {min(f for f, _ in flats)}&ndash;{max(f for f, _ in flats)} of its {flats[0][1]} "
                     f"stored pseudo-inputs per seed are nearly uniform")
        d = ev.prior_diffs.get((dataset, "vae", prior))
        if d is not None and d.mean > interval_halfwidth(d):
            line += ". Its test likelihood is nonetheless the higher: the better likelihood does not come with better samples"
        lines.append(line + ".")
    return lines


def learned_section(ev: Evidence) -> tuple[str, list]:
    """Learned against fixed data-initialised pseudo-inputs, paired."""
    lines = [f"- {dataset}: learned &minus; fixed pseudo-inputs = {difference_text(d, 'learning them')}."
             for dataset, d in ev.learned_diffs.items() if d is not None]
    return ("VampPrior-data: learning the pseudo-inputs (paired)", lines)


def estimates_section(ev: Evidence) -> tuple[str, list]:
    """How far the importance-sampled estimates are from converged, and what Frey Faces' numbers are."""
    profile, S = ev.profile, ev.S
    lines = []
    if ev.rises:  # the convergence check: how far the estimates and the paired differences move past S
        # (how far a paired difference to the standard prior moved, its s.e. at S)
        shifts = [(abs(r.paired_at_top[0] - r.paired_at_s[0]), r.paired_at_s[1]) for r in ev.past_s
                  if r.paired_at_s and r.paired_at_top]
        moved = ""
        if shifts and all(m < se for m, se in shifts):
            moved = (f"; the paired differences to the standard prior moved by at most "
                     f"{max(m for m, _ in shifts):.2f} nats (less than their s.e., "
                     f"{min(se for _, se in shifts):.2f} to {max(se for _, se in shifts):.2f}), so the "
                     f"prior comparisons checked there do not depend on it")
        elif shifts:
            moved = "; some paired differences to the standard prior moved by more than their s.e."
        lines.append(f"- Importance sampling at S={S} has not converged where the ESS is small: from "
                     f"S={S} to the largest S the estimate rose by up to "
                     f"{max(max(r) for r in ev.rises.values()):.2f} nats "
                     f"({', '.join(f'{d} {max(r):.2f}' for d, r in sorted(ev.rises.items()))}){moved} "
                     f"({scope_text([r.entry for r in ev.past_s])}; section *Has the estimate converged*).")
    lines.append("- Frey Faces: our likelihood is a discretized logistic over the 256 grey levels whose "
                 "first and last bins extend to -inf and +inf, so the 256 probabilities sum to one. The "
                 "paper's code uses bins of width 1/256 with no open ends (mass beyond the edges is "
                 "lost, which lowers its log-likelihoods slightly for the same model). Both are "
                 "log-probabilities of 8-bit images in nats, so they compare up to that edge effect; the "
                 "reference report does not say which it used.")
    if profile != "paper":
        lines.append(f"- All of this is at the **{profile}** budget, not the paper's protocol.")
    return ("The estimates themselves", lines)


def seed_spreads(ev: Evidence) -> dict:
    """dataset -> the seed-to-seed spread of a paired difference (results.seed_spread), pooled over
    that dataset's several-seed differences: each prior against the standard prior (each model),
    the HVAE against the VAE, the paper code's settings, and learned pseudo-inputs."""
    by_dataset = {}
    for (dataset, _, _), d in ev.raw_prior_diffs.items():
        by_dataset.setdefault(dataset, []).append(d)
    for dataset, _, _, _, d in ev.hvae_vs_vae:
        by_dataset.setdefault(dataset, []).append(d)
    for (dataset, variant), d in ev.code_diffs.items():
        if variant:  # ours ("") is the prior difference counted above
            by_dataset.setdefault(dataset, []).append(d)
    for dataset, d in ev.learned_diffs.items():
        by_dataset.setdefault(dataset, []).append(d)
    return {dataset: s for dataset, ds in by_dataset.items() if (s := seed_spread(ds)) is not None}


def findings(ev: Evidence) -> list[tuple[str, list]]:
    """(heading, bullet lines) of every section, in the report's order."""
    sections, ev.prior_diffs = prior_sections(ev)
    return sections + [paper_section(ev), reruns_section(ev), reference_section(ev), code_settings_section(ev),
                       training_section(ev), learned_section(ev), estimates_section(ev)]


def findings_markdown(sections) -> str:
    """The sections with any lines, as Markdown: a bold heading, then its bullets."""
    return "\n\n".join(f"**{heading}**\n\n" + "\n".join(body) for heading, body in sections if body)
