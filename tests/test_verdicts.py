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
                                       reference_section, training_section)


def _evidence(root, profile="paper", **extra):
    rows = collect_rows(root, relative_to=root.parent)
    return Evidence(rows, profile, ["vae", "hvae"], ["static_mnist", "frey_faces"],
                    ["standard", "vampprior", "vampprior_data", "mog"], {}, 500, 5000, 100, **extra)


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


def test_reference_numbers_far_from_all_of_ours_are_left_out_as_another_scale(tmp_path):
    """Frey Faces: ours lie within a few nats of each other and hundreds above every reference
    number, so they are left out of the count (and said to be on another scale); static MNIST's
    two cells are counted, one above the reference by more than two errors, one below it."""
    root = tmp_path / "runs"
    bpd = lambda ll: {"test_bits_per_dim": float(-ll.mean() / (560 * np.log(2)))}
    for prior, mean in (("standard", -1735.0), ("vampprior", -1730.0)):
        x = _images(1, 200, mean)
        synthetic_record(root, "frey_faces", prior, 0, x, metrics=bpd(x))
    synthetic_record(root, "static_mnist", "standard", 0, _images(2, 200, -88.0))  # ref. -93.08
    synthetic_record(root, "static_mnist", "vampprior", 0, _images(2, 200, -89.0))  # ref. -88.72
    ev = _evidence(root)
    _, ev.prior_diffs = prior_sections(ev)
    _, lines = reference_section(ev)
    text = "\n".join(lines)
    assert lines[2].startswith("- Ours is higher in 1 of 2 cells (Frey Faces left out, below), by more than "
                               "two of our errors in 1. The reference scored with S=500, we with S=5000")
    assert "most likely on another scale" in text and "left out of the counts above" in text
    reversal = next(line for line in lines if line.startswith("- **On static_mnist, vampprior is worse"))
    assert "the paper's claim that the VampPrior beats the standard prior on every dataset does not hold" in reversal


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
