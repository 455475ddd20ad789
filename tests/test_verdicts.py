"""The report's findings ("What we found"), rule by rule, on constructed records whose numbers say
what each rule must conclude (vae_lib.pipeline.verdicts)."""
from __future__ import annotations

import numpy as np
import pytest

from helpers import synthetic_record
from vae_lib.pipeline.convergence import PastProtocol
from vae_lib.pipeline.results import collect_rows, paired_difference, select
from vae_lib.pipeline.verdicts import (Evidence, code_settings_section, estimates_section, findings,
                                       findings_markdown, paper_section, prior_sections,
                                       reference_section, reruns_section, training_section)


def _evidence(root, profile="paper", planned=None, datasets=("static_mnist", "frey_faces"), **extra):
    rows = collect_rows(root, relative_to=root.parent)
    return Evidence(rows, profile, ["vae", "hvae"], list(datasets),
                    ["standard", "vampprior", "vampprior_data", "mog"], planned or {}, 500, 5000, 100, **extra)


def _images(seed, n=200, mean=-90.0):
    return mean + np.random.default_rng(seed).normal(size=n)


@pytest.fixture
def three_seeds(tmp_path):
    """Static MNIST, 3 seeds: the VampPrior 2 nats per image above the standard prior on every
    seed (with a little noise); the MoG, one seed, 0.01 nats above it."""
    root = tmp_path / "runs"
    for seed in (0, 1, 2):
        base = _images(seed)
        synthetic_record(root, "static_mnist", "standard", seed, base, metrics=dict(best_epoch=300))
        synthetic_record(root, "static_mnist", "vampprior", seed,
                         base + 2.0 + 0.05 * np.random.default_rng(10 + seed).normal(size=200),
                         metrics=dict(best_epoch=300))
    synthetic_record(root, "static_mnist", "mog", 0, _images(0) + 0.01 + 0.5 * np.random.default_rng(3).normal(size=200),
                     metrics=dict(best_epoch=300))
    return root


def test_a_prior_is_better_where_its_paired_interval_excludes_zero(three_seeds):
    sections, diffs = prior_sections(_evidence(three_seeds))
    lines = dict(sections)["Each prior against the standard prior (paired)"]
    vamp = next(line for line in lines if "vampprior &minus;" in line)
    mog = next(line for line in lines if "mog &minus;" in line)
    assert "+2.00 nats per image (std over seeds" in vamp and vamp.endswith("vampprior is better.")
    assert "paired s.e." in mog and mog.endswith("no clear difference (its 95% interval contains 0).")
    assert diffs["static_mnist", "vae", "vampprior"].mean == pytest.approx(2.0, abs=0.01)


def test_the_papers_number_is_reproduced_within_two_of_our_errors_or_not(tmp_path):
    """Three seeds whose means are -85.60, -85.65, -85.70 (std 0.05) against the paper's -85.57:
    reproduced; the HVAE one seed at -84.83 +- 0.22 against -83.19: not reproduced, 1.64 nats
    below, 7.5 of our errors. At a reduced budget, no verdict at all."""
    root = tmp_path / "runs"
    for seed, mean in zip((0, 1, 2), (-85.60, -85.65, -85.70)):
        x = _images(seed, 100)
        synthetic_record(root, "static_mnist", "vampprior", seed, x - x.mean() + mean)
    z = np.random.default_rng(5).normal(size=400)
    x = -84.83 + (z - z.mean()) / z.std(ddof=1) * 0.22 * np.sqrt(400)  # s.e. of the mean 0.22
    synthetic_record(root, "static_mnist", "vampprior", 0, x, model="hvae")
    heading, lines = paper_section(_evidence(root))
    assert heading.startswith("Against the paper")
    vae = next(line for line in lines if "VAE + vampprior" in line and "HVAE" not in line)
    hvae = next(line for line in lines if "HVAE + vampprior" in line)
    assert "-85.65 &plusmn; 0.05 (std over seeds, 3 seed(s)) against the paper's -85.57: reproduced" in vae
    assert "-84.83 &plusmn; 0.22 (s.e., 1 seed(s)) against the paper's -83.19: not reproduced, 1.64 nats below (7.5 of our errors)" in hvae
    assert "- dynamic_mnist, HVAE + vampprior: not planned (the paper: -81.24)." in lines
    _, quick = paper_section(_evidence(root, profile="quick"))
    assert not any("reproduced" in line for line in quick)


def test_reruns_of_the_papers_code_are_cited_and_compared_in_combined_errors(tmp_path):
    """Against the cited reruns (references.RERUNS): the HVAE one seed at -84.83 +- 0.22 against
    the rerun's -84.88 (std 0.06 over 3 seeds): +0.05, within two combined errors (0.23), and the
    paper's -83.19 is 1.69 above that rerun; the VAE standard, 3 seeds at -88.05 (std 0.05),
    against -88.48 (std 0.011): +0.43, above by 8.4 combined errors (0.05). A planned cell not run
    says so; a cell neither run nor planned is left out; each source cited is listed once, numbered. At
    a reduced budget the numbers are shown without a verdict."""
    root = tmp_path / "runs"
    z = np.random.default_rng(5).normal(size=400)
    synthetic_record(root, "static_mnist", "vampprior", 0, -84.83 + (z - z.mean()) / z.std(ddof=1) * 0.22 * 20,
                     model="hvae")
    for seed, mean in zip((0, 1, 2), (-88.00, -88.05, -88.10)):
        x = _images(seed, 100)
        synthetic_record(root, "static_mnist", "standard", seed, x - x.mean() + mean)
    planned = {("dynamic_mnist", "convhvae", "vampprior"): [0]}
    heading, lines = reruns_section(_evidence(root, planned=planned))
    assert heading.startswith("Against public reruns of the paper's code")
    hvae = next(line for line in lines if "HVAE + vampprior" in line and "static_mnist" in line)
    assert ("ours -84.83 &plusmn; 0.22 (s.e., 1 seed(s)) against the rerun's -84.88 (std over seeds 0.06), "
            "3 seeds [2]: ours +0.05, within two combined errors (0.23: ours and the rerun's spread in quadrature). "
            "The paper's -83.19 is 1.69 nats above this rerun of its own code.") in hvae
    vae = next(line for line in lines if "VAE + standard" in line)
    assert "against the rerun's -88.48 (std over seeds 0.01), 3 seeds [1]: ours +0.43, above it by 8.4 combined errors (0.05" in vae
    assert "- dynamic_mnist, convHVAE + vampprior: not run yet (the rerun [3]: -79.67 &plusmn; 0.09)." in lines
    assert not any("dynamic_mnist, VAE" in line for line in lines)  # neither run nor planned
    refs = [line for line in lines if line.startswith("- [")]
    assert len(refs) == 3 and "vanilla runs" in refs[0] and "hvae successes" in refs[1] and "Exemplar-VAE" in refs[2]
    # where the plan leaves the cell out on a CPU, the section says so in Table 1's words
    _, lines = reruns_section(_evidence(root, planned=planned, needs_gpu=set(planned)))
    assert "- dynamic_mnist, convHVAE + vampprior: needs a GPU (the rerun [3]: -79.67 &plusmn; 0.09)." in lines
    gpu = {("dynamic_mnist", "hvae", "vampprior"): [0]}  # as if that cell needed one (constructed)
    _, lines = paper_section(_evidence(root, planned={**planned, **gpu}, needs_gpu=set(gpu)))
    assert "- dynamic_mnist, HVAE + vampprior: needs a GPU (the paper: -81.24)." in lines
    x = _images(0, 100)
    synthetic_record(root, "static_mnist", "standard", 0, x - x.mean() - 95.0, profile="quick")
    _, quick = reruns_section(_evidence(root, profile="quick"))
    assert [line for line in quick if not line.startswith("- [")] == [
        "- static_mnist, VAE + standard: ours -95.00 &plusmn; 0.10 (s.e., 1 seed(s)) against the rerun's "
        "-88.48 (std over seeds 0.01), 3 seeds [1]: ours -6.52 (ours at the **quick** budget: no verdict)."]


def test_reference_numbers_far_from_all_of_ours_are_left_out_as_another_scale(tmp_path):
    """Frey Faces: ours lie within a few nats of each other and hundreds above every reference
    number, so they are left out of the count (and said to be on another scale); static MNIST's
    two cells are counted, one above the reference by more than two errors, one below it; its
    one-seed VampPrior - standard (-1) is a clear reversal of the reference's gain with the seed
    spread (0.1) that its 3-seed MoG - standard difference measures."""
    root = tmp_path / "runs"
    bpd = lambda ll: {"test_bits_per_dim": float(-ll.mean() / (560 * np.log(2)))}
    for prior, mean in (("standard", -1735.0), ("vampprior", -1730.0)):
        x = _images(1, 200, mean)
        synthetic_record(root, "frey_faces", prior, 0, x, metrics=bpd(x))
    synthetic_record(root, "static_mnist", "standard", 0, _images(2, 200, -88.0))  # ref. -93.08
    synthetic_record(root, "static_mnist", "vampprior", 0, _images(2, 200, -89.0))  # ref. -88.72
    for seed in (1, 2):  # a 3-seed MoG - standard difference measures the seed-to-seed spread (~0.1)
        synthetic_record(root, "static_mnist", "standard", seed, _images(2, 200, -88.0))
    for seed, shift in zip((0, 1, 2), (0.4, 0.5, 0.6)):
        synthetic_record(root, "static_mnist", "mog", seed, _images(2, 200, -88.0 + shift))
    ev = _evidence(root)
    _, ev.prior_diffs = prior_sections(ev)
    _, lines = reference_section(ev)
    text = "\n".join(lines)
    assert lines[2].startswith("- Ours is higher in 1 of 2 cells (Frey Faces left out, below), by more than "
                               "two of our errors in 1. The reference scored with S=500, we with S=5000")
    assert "most likely on another scale" in text and "left out of the counts above" in text
    reversal = next(line for line in lines if line.startswith("- **On static_mnist, vampprior is worse"))
    assert "the paper's claim that the VampPrior beats the standard prior on every dataset does not hold" in reversal


def _static_mnist_seeds_with_spread_02(root):
    """Static MNIST's VampPrior and standard prior on 3 seeds, 400 images each: VampPrior - standard
    +2.2, +2.0, +1.8 per image (std 0.2 over seeds)."""
    for seed, gain in zip((0, 1, 2), (2.2, 2.0, 1.8)):
        base = _images(seed, 400)
        synthetic_record(root, "static_mnist", "standard", seed, base)
        synthetic_record(root, "static_mnist", "vampprior", seed,
                         base + gain + 0.01 * np.random.default_rng(seed).normal(size=400))


def test_a_one_seed_verdict_carries_the_seed_spread_of_its_dataset_or_is_not_given(tmp_path):
    """Static MNIST: VampPrior - standard on 3 seeds, per seed +2.2, +2.0, +1.8 (std 0.2 over
    seeds); the HVAE - VAE on one seed, -0.07 with a paired s.e. of about 0.03 (clear on its own):
    with the seed spread 0.2 in quadrature its error is 0.20, and there is no clear difference.
    Frey Faces has one seed only: its difference gets no verdict, but the largest spread under
    which it would hold."""
    root = tmp_path / "runs"
    _static_mnist_seeds_with_spread_02(root)
    vae = select(collect_rows(root, relative_to=root.parent), seed=0, prior="vampprior")[0]
    vae_ll = np.load(vae["run_dir"] / "test_ll.npz")["log_px"]
    z = np.random.default_rng(9).normal(size=400)
    synthetic_record(root, "static_mnist", "vampprior", 0, vae_ll - 0.07 + 0.6 * (z - z.mean()), model="hvae")
    x = _images(4, 200, -1735.0)
    synthetic_record(root, "frey_faces", "standard", 0, x)
    synthetic_record(root, "frey_faces", "vampprior", 0, x + 3.0 + 0.1 * np.random.default_rng(4).normal(size=200))
    rows = collect_rows(root, relative_to=root.parent)
    from vae_lib.pipeline.results import model_differences
    ev = _evidence(root, hvae_vs_vae=model_differences(rows, ["static_mnist"], ["vampprior"]))
    assert ev.seed_spreads == {"static_mnist": pytest.approx(0.2, abs=0.01)}
    sections, _ = prior_sections(ev)
    hvae_line, = dict(sections)["The HVAE against the VAE (paired, same prior)"]
    assert "HVAE &minus; VAE = -0.07 nats per image (paired s.e. 0.03 and the dataset's seed-to-seed spread 0.20: 0.20, 1 seed)" in hvae_line
    assert hvae_line.endswith("no clear difference (its 95% interval contains 0).")
    frey = next(line for line in dict(sections)["Each prior against the standard prior (paired)"] if "frey_faces" in line)
    # +3.0 with a paired s.e. of 0.01: it would hold with a spread up to sqrt((3.0 / 1.96)^2 - 0.01^2) = 1.53
    assert frey.endswith("no verdict on one seed: the seed-to-seed spread is not measured on this dataset "
                         "(vampprior would be better were it below 1.53 nats).")


def test_a_setting_that_changes_the_verdict_is_said_to(tmp_path):
    """Ours: the VampPrior clearly worse (-3 per image on 3 seeds); with the paper code's
    initialisation clearly better (+3): the verdict changes; with its optimizer still worse: the same."""
    root = tmp_path / "runs"
    for seed in (0, 1, 2):
        base = _images(seed, 100, -120.0)
        noise = lambda k: 0.1 * np.random.default_rng(100 * k + seed).normal(size=100)
        for variant, shift in (({}, -3.0), ({"weight_init": "he"}, 3.0), ({"optimizer": "adamnormgrad"}, -2.5)):
            synthetic_record(root, "caltech101_silhouettes", "standard", seed, base, **variant)
            synthetic_record(root, "caltech101_silhouettes", "vampprior", seed, base + shift + noise(len(variant) + 1), **variant)
    rows = collect_rows(root)
    diffs = {}
    labels = {"": "ours", "inithe": "the paper code's initialisation", "optadamnormgrad": "the paper code's optimizer"}
    for variant in labels:
        sel = dict(dataset="caltech101_silhouettes", variant=variant)
        diffs["caltech101_silhouettes", variant] = paired_difference(select(rows, prior="vampprior", **sel),
                                                                     select(rows, prior="standard", **sel))
    ev = _evidence(root, code_diffs=diffs, code_settings=labels)
    _, lines = code_settings_section(ev)
    he = next(line for line in lines if "initialisation" in line)
    adam = next(line for line in lines if "optimizer" in line)
    assert "**the verdict changes**, from 'the VampPrior is worse' to 'the VampPrior is better'" in he
    assert adam.endswith("the same verdict, the VampPrior is worse.")


def test_runs_whose_best_epoch_came_in_the_warm_up_and_flat_pseudo_inputs_are_named(tmp_path):
    root = tmp_path / "runs"
    for seed, best in ((0, 30), (1, 45)):
        folder = synthetic_record(root, "frey_faces", "mog", seed, _images(seed, 50, -1740.0),
                                  metrics=dict(best_epoch=best, n_train=1565))
        (folder / "history.csv").write_text("epoch,train_loss,valid_loss\n150,1600.5,1790.25\n")
    synthetic_record(root, "frey_faces", "standard", 0, _images(0, 50, -1735.0),
                     metrics=dict(best_epoch=300, n_train=1565))
    ev = _evidence(root, flat_counts={"frey_faces": (33, 40), "static_mnist": (3, 40)})
    _, lines = training_section(ev)
    warm = next(line for line in lines if line.startswith("- frey_faces (VAE), mog"))
    assert "epochs 30, 45 of 100, KL weight 0.30 to 0.45" in warm and "training loss 1600.5" in warm
    assert "overfits the 1565 training images early" in warm
    assert not any("standard: every seed" in line for line in lines), "its best epoch came after the warm-up"
    assert any(line.startswith("- frey_faces, vampprior: 33 of the 40 pseudo-inputs") for line in lines)
    assert not any("static_mnist, vampprior" in line for line in lines), "3 of 40 flat is not most"


def _past(dataset, paired_s, paired_top, rise=1.0):
    entry = dict(dataset=dataset, model="vae", prior="vampprior", seed=0, variant="", images=list(range(200)))
    return PastProtocol(entry, 50000, -100.0, -100.0 + rise, paired_s, paired_top)


def test_a_comparison_holds_past_the_protocols_samples_only_if_it_moved_less_than_its_error():
    still = [_past("caltech101_silhouettes", (-4.0, 0.3), (-3.9, 0.3), rise=1.7)]
    moved = [_past("caltech101_silhouettes", (-4.0, 0.3), (-3.0, 0.3), rise=1.7)]
    for past, expected in ((still, "so the prior comparisons checked there do not depend on it"),
                           (moved, "some paired differences to the standard prior moved by more than their s.e.")):
        ev = Evidence([], "paper", ["vae"], ["caltech101_silhouettes"], ["standard"], {}, 500, 5000, 100,
                      past_s=past, rises={"caltech101_silhouettes": [1.7]})
        _, lines = estimates_section(ev)
        assert "rose by up to 1.70 nats (caltech101_silhouettes 1.70)" in lines[0] and expected in lines[0]


def test_the_findings_are_the_sections_with_lines_in_order(three_seeds):
    text = findings_markdown(findings(_evidence(three_seeds)))
    headings = [line for line in text.splitlines() if line.startswith("**")]
    assert headings[0] == "**Each prior against the standard prior (paired)**"
    assert "**The HVAE against the VAE (paired, same prior)**" not in headings  # no lines: left out
    assert headings[-1] == "**The estimates themselves**"


def test_a_prior_whose_samples_vary_less_on_every_seed_is_said_to(tmp_path):
    """Frey Faces: the VampPrior's samples spread 8.7-12.6 grey levels over 3 seeds against the
    standard prior's 15.2-16.7, with 20-34 of 50 pseudo-inputs flat, and its likelihood clearly
    higher: said, with both. The MoG's spreads overlap the standard prior's: nothing said."""
    from vae_lib.pipeline.verdicts import sample_spread_lines

    root = tmp_path / "runs"
    for seed in (0, 1, 2):
        x = _images(seed, 200, -1735.0)
        synthetic_record(root, "frey_faces", "standard", seed, x)
        synthetic_record(root, "frey_faces", "vampprior", seed, x + 8.0 + 0.1 * np.random.default_rng(seed).normal(size=200))
    spreads = {("frey_faces", "standard"): [(0, 15.2, None, None), (1, 16.7, None, None), (2, 16.1, None, None)],
               ("frey_faces", "vampprior"): [(0, 10.0, 34, 50), (1, 8.7, 20, 50), (2, 12.6, 30, 50)],
               ("frey_faces", "mog"): [(0, 19.4, None, None), (1, 15.0, None, None)]}
    ev = _evidence(root, sample_spreads=spreads)
    _, ev.prior_diffs = prior_sections(ev)
    line, = sample_spread_lines(ev)  # and not the MoG (overlapping), nor a prior only a little below:
    ev.sample_spreads = {**spreads, ("frey_faces", "vampprior"): [(0, 14.0, 1, 50), (1, 14.5, 1, 50)]}
    assert sample_spread_lines(ev) == []  # every seed below the standard's lowest, but by under 20%
    ev.sample_spreads = spreads
    assert line == ("- **On frey_faces, the vampprior's samples vary less than the standard prior's**: the pixel "
                    "s.d. across samples is 8.7&ndash;12.6 grey levels over its 3 seed(s) against 15.2&ndash;16.7 "
                    "(section *How varied are the samples?*); 20&ndash;34 of its 50 stored pseudo-inputs per seed "
                    "are nearly uniform. Its test likelihood is nonetheless the higher: the better likelihood does "
                    "not come with better samples.")


def test_frey_faces_in_bits_per_dim_against_the_paper_codes_settings(tmp_path):
    """Ours 2.0 nats per image above the paper code's initialisation for the standard prior (3 seeds,
    small noise): in bits/dim (560 pixels) 2 / (560 ln 2) = 0.0052 lower, ours better; its optimizer
    0.5 nats above ours (ours worse); the initialisation is named the largest change."""
    root = tmp_path / "runs"
    for seed in (0, 1, 2):
        base = _images(seed, 100, -1735.0)
        noise = lambda k: 0.01 * np.random.default_rng(10 * k + seed).normal(size=100)
        for k, (variant, shift) in enumerate((({}, 0.0), ({"weight_init": "he"}, -2.0),
                                              ({"optimizer": "adamnormgrad"}, 0.5))):
            synthetic_record(root, "frey_faces", "standard", seed, base + shift + noise(k), **variant)
    labels = {"": "ours", "inithe": "the paper code's initialisation", "optadamnormgrad": "the paper code's optimizer"}
    ev = _evidence(root, code_settings=labels)
    _, lines = code_settings_section(ev)
    line = next(line for line in lines if line.startswith("- Frey Faces in bits/dim"))
    per_nat = 1 / (560 * np.log(2))
    ours = -np.mean([-1735.0 + _images(s, 100, 0.0).mean() for s in (0, 1, 2)]) * per_nat
    assert f"standard: ours {ours:.2f} (3 seed(s))" in line
    assert f"the paper code's initialisation {ours + 2 * per_nat:.2f} (+0.005 &plusmn; 0.000, 3 seeds: ours better)" in line
    assert "the paper code's optimizer" in line and "-0.001" in line and "ours worse" in line
    assert "The largest change comes from the paper code's initialisation (0.01 bits/dim)" in line
    assert "vampprior:" not in line  # no VampPrior runs here


def test_dynamic_mnist_takes_static_mnists_seed_spread_and_says_so(tmp_path):
    """Dynamic MNIST has one seed only; static MNIST's 3-seed VampPrior - standard differences
    (+2.2, +2.0, +1.8 per image: std 0.2) measure the spread it is given (COMPARABLE_DATASETS):
    +1.0 with a paired s.e. of 0.01 gets the error sqrt(0.01^2 + 0.2^2) = 0.20 and is a
    verdict, its text naming where the spread was measured. Without static MNIST's seeds it gets
    none."""
    root = tmp_path / "runs"
    _static_mnist_seeds_with_spread_02(root)
    x = _images(5, 400, -84.0)
    synthetic_record(root, "dynamic_mnist", "standard", 0, x)
    z = np.random.default_rng(5).normal(size=400)
    synthetic_record(root, "dynamic_mnist", "vampprior", 0, x + 1.0 + 0.2 * (z - z.mean()) / z.std(ddof=1))
    sections, _ = prior_sections(_evidence(root, datasets=("static_mnist", "dynamic_mnist")))
    line = next(line for line in dict(sections)["Each prior against the standard prior (paired)"] if "dynamic_mnist" in line)
    assert ("vampprior &minus; standard = +1.00 nats per image (paired s.e. 0.01 and the seed-to-seed spread 0.20 "
            "of static_mnist (the same digits and networks; not measured on this one): 0.20, 1 seed)") in line
    assert line.endswith("vampprior is better.")
    for seed in (1, 2):  # static MNIST on one seed only: no spread anywhere, no verdict
        for prior in ("standard", "vampprior"):
            (root / f"static_mnist__{prior}__K500__seed{seed}").rename(tmp_path / f"{prior}{seed}")
    sections, _ = prior_sections(_evidence(root, datasets=("static_mnist", "dynamic_mnist")))
    line = next(line for line in dict(sections)["Each prior against the standard prior (paired)"] if "dynamic_mnist" in line)
    assert "no verdict on one seed" in line
