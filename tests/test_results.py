"""The report's arithmetic on synthetic records: rows from record folders, summaries over seeds,
paired per-image differences, Table 1 in HTML and Markdown, results.csv, the README splice."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from helpers import synthetic_record as _record
from vae_lib.pipeline.references import REFERENCE
from vae_lib.pipeline.results import (collect_rows, model_differences, paired_difference, select, spread_text,
                                      summarize, write_results_csv)
from vae_lib.pipeline.results import test_ll_of as per_image_ll  # (a name pytest does not collect)
from vae_lib.pipeline.rundir import changes_text, copy_record
from vae_lib.pipeline.tables import model_paired_table_html, paired_table_html, table1_html, table1_markdown


@pytest.fixture
def records(tmp_path):
    rng = np.random.default_rng(0)
    base = {s: -90 + rng.normal(size=50) for s in (0, 1, 2)}
    root = tmp_path / "runs"
    for s in (0, 1, 2):
        _record(root, "static_mnist", "standard", s, base[s])
        _record(root, "static_mnist", "vampprior", s, base[s] + 2 + 0.1 * s + 0.01 * rng.normal(size=50))
    _record(root, "static_mnist", "mog", 0, base[0] - 1)
    _record(root, "frey_faces", "standard", 0, -1800 + rng.normal(size=20))
    _record(root, "frey_faces", "vampprior", 0, failed=True)
    _record(root, "frey_faces", "mog", 0)  # started, not finished
    _record(root, "frey_faces", "standard", 0, -1810 + rng.normal(size=20), weight_init="he")
    return root, base


def test_rows_come_from_the_records_with_status_variant_and_relative_paths(records):
    root, _ = records
    rows = collect_rows(root, relative_to=root.parent)
    status = {(r["dataset"], r["prior"], r["seed"], r["variant"]): r["status"] for r in rows}
    assert status[("frey_faces", "vampprior", 0, "")] == "failed"
    assert status[("frey_faces", "mog", 0, "")] == "incomplete"
    assert status[("frey_faces", "standard", 0, "inithe")] == "complete"
    assert {changes_text(r["config"]) for r in rows if r["dataset"] == "frey_faces"} == {"", "weight_init=he"}
    assert len(select(rows, dataset="static_mnist")) == 7
    assert all(r["run"].startswith("runs/") for r in rows)
    assert select(rows, dataset="static_mnist", prior="vampprior")[0]["reference_ll"] == REFERENCE["static_mnist"]["vampprior"]
    assert select(rows, dataset="static_mnist", prior="vampprior")[0]["paper_ll"] == -85.57


def test_reference_numbers_go_only_to_the_profiles_own_cells(tmp_path):
    """The reference's and the paper's numbers go to the profile's own grid cells (its K, its
    settings): not to a K-sweep run (another K, 100 epochs), a run with another K alone, or a
    variant (another initialisation)."""
    root = tmp_path / "runs"
    _record(root, "static_mnist", "vampprior", 0, [-86.0, -87.0], components=50, epochs=100, warmup_epochs=25)
    _record(root, "static_mnist", "vampprior", 0, [-86.0, -87.0], components=100)
    _record(root, "frey_faces", "standard", 0, [-1800.0, -1801.0], weight_init="he")
    _record(root, "frey_faces", "standard", 0, [-1790.0, -1791.0])
    by_run = {(r["dataset"], r["components"], r["variant"]): r for r in collect_rows(root)}
    assert by_run[("static_mnist", 50, "ep100__wu25")]["reference_ll"] is None
    assert by_run[("static_mnist", 50, "ep100__wu25")]["paper_ll"] is None
    assert by_run[("static_mnist", 100, "")]["reference_ll"] is None and by_run[("static_mnist", 100, "")]["paper_ll"] is None
    assert by_run[("frey_faces", 500, "inithe")]["reference_ll"] is None
    assert by_run[("frey_faces", 500, "")]["reference_ll"] == REFERENCE["frey_faces"]["standard"]
    assert [key for key, r in by_run.items() if r["own_cell"]] == [("frey_faces", 500, "")]


def test_a_failed_rerun_keeps_the_complete_record_and_a_finished_one_replaces_it(tmp_path):
    record = _record(tmp_path / "records", "frey_faces", "standard", 0, [-1800.0, -1802.0])
    (record / "history.csv").write_text("epoch\n1\n")
    before = {p.name: p.read_bytes() for p in record.iterdir()}
    failed = _record(tmp_path / "rerun", "frey_faces", "standard", 0, failed=True)
    (failed / "history.csv").write_text("epoch\n1\n2\n")
    assert copy_record(failed, record) is False
    assert {p.name: p.read_bytes() for p in record.iterdir()} == before, "no mix of two runs"
    finished = _record(tmp_path / "rerun2", "frey_faces", "standard", 0, [-1790.0, -1792.0])
    assert copy_record(finished, record) is True
    [row] = collect_rows(tmp_path / "records")
    assert row["status"] == "complete" and row["test_ll"] == -1791.0 and not (record / "failure.json").exists()


def test_summaries_are_the_standard_error_for_one_seed_and_the_std_over_seeds_for_several(records):
    root, base = records
    rows = collect_rows(root)
    one = summarize(select(rows, dataset="static_mnist", prior="mog"))
    assert (one.n_seeds, one.err_kind) == (1, "s.e.")
    assert one.err == pytest.approx(base[0].std(ddof=1) / np.sqrt(50))
    three = summarize(select(rows, dataset="static_mnist", prior="standard"))
    means = np.array([base[s].mean() for s in (0, 1, 2)])
    assert (three.n_seeds, three.err_kind) == (3, "std over seeds")
    assert three.mean == pytest.approx(means.mean()) and three.err == pytest.approx(means.std(ddof=1))
    assert summarize([]) is None


def test_paired_differences_pair_images_and_seeds(records):
    """VampPrior = standard + 2 + 0.1 seed (+ tiny noise) image by image: the paired difference is
    2.1 +- 0.1 (std over the seeds' means), far tighter than the unpaired spread of the two."""
    root, _ = records
    rows = collect_rows(root)
    d = paired_difference(select(rows, dataset="static_mnist", prior="vampprior"),
                          select(rows, dataset="static_mnist", prior="standard"))
    assert sorted(d.per_seed) == [0, 1, 2] and d.err_kind == "std over seeds"
    assert d.mean == pytest.approx(2.1, abs=0.01) and d.err == pytest.approx(0.1, abs=0.01)
    single = paired_difference(select(rows, dataset="static_mnist", prior="mog"),
                               select(rows, dataset="static_mnist", prior="standard"))
    assert list(single.per_seed) == [0] and single.mean == pytest.approx(-1.0) and single.err == pytest.approx(0.0, abs=1e-9)
    table = paired_table_html(rows, ["static_mnist"], ["standard", "vampprior", "mog"])
    assert "+2.10 &plusmn; 0.10" in table and "3 seeds" in table


def test_table1_marks_failed_incomplete_and_not_run_cells_and_shows_bits_per_dim(records):
    root, _ = records
    rows = collect_rows(root)
    html = table1_html(rows, ["static_mnist", "frey_faces"], ["standard", "vampprior", "vampprior_data", "mog"])
    frey = html[html.index("frey_faces"):]
    assert "<em>failed</em>" in frey and "<em>record incomplete</em>" in frey and "<em>not run</em>" in frey
    assert "bits/dim" in frey
    assert "3 seeds" in html and f"{REFERENCE['static_mnist']['vampprior']:.2f}" in html and "paper: -85.57" in html
    markdown = table1_markdown(rows, ["static_mnist", "frey_faces"], ["standard", "vampprior", "mog"])
    assert markdown.splitlines()[0] == "| dataset | standard | vampprior | mog |"
    assert "(3 seeds)" in markdown and "| failed / ref. -2257.76 | record incomplete |" in markdown


def test_table1_says_how_many_of_the_planned_seeds_are_recorded_and_which_failed(records):
    """static MNIST MoG: 1 of the plan's 3 seeds; the standard prior: all 3; a failed seed beside
    complete ones is named, not hidden."""
    root, base = records
    _record(root, "static_mnist", "mog", 1, failed=True)
    rows = collect_rows(root)
    planned = {("static_mnist", "vae", p): {0, 1, 2} for p in ("standard", "mog")}
    markdown = table1_markdown(rows, ["static_mnist"], ["standard", "mog"], planned=planned)
    standard, mog = markdown.splitlines()[2].split(" | ")[1:3]
    assert standard.endswith("(3 seeds) / ref. -93.08")
    assert mog.startswith(f"**{base[0].mean() - 1:.2f}**") and mog.endswith("(1 of 3 seeds, 1 failed) |")
    assert "1 of 3 seeds, 1 failed" in table1_html(rows, ["static_mnist"], ["standard", "mog"], planned=planned)
    three, one = (summarize(select(rows, dataset="static_mnist", prior=p)) for p in ("standard", "mog"))
    assert spread_text([three]) == "the standard deviation across seeds"
    assert spread_text([one, None]) == "the standard error over the test images (one seed)"
    assert spread_text([three, one]) == ("the standard deviation across seeds or the standard error over "
                                         "the test images (one seed)")


def test_table1_has_a_row_for_another_model_where_it_ran_or_the_paper_has_a_number(records):
    """The HVAE rows: one where an HVAE record exists (Frey Faces here), one for each result of the
    paper still to reproduce (static and dynamic MNIST: not run, with the paper's number), none
    elsewhere; the VAE keeps a row for every dataset."""
    root, _ = records
    _record(root, "frey_faces", "vampprior", 0, -1790 + np.zeros(20), model="hvae")
    rows = collect_rows(root)
    datasets = ["static_mnist", "dynamic_mnist", "fashion_mnist", "frey_faces"]
    lines = table1_markdown(rows, datasets, ["standard", "vampprior"], models=("vae", "hvae")).splitlines()
    labels = [line.split(" | ")[0][2:] for line in lines[2:]]
    assert labels == datasets + ["static_mnist (HVAE)", "dynamic_mnist (HVAE)", "frey_faces (HVAE)"]
    assert lines[labels.index("static_mnist (HVAE)") + 2].endswith("| not run | not run / paper -83.19 |")
    assert "**-1790.00**" in lines[-1]


def test_table1_tells_cells_outside_the_plan_from_cells_not_run_yet(records):
    """With the plan given, a cell with no record is "not run" if the plan has it and "not
    planned" otherwise (the paper plan runs dynamic MNIST with two priors only); a cell with a
    record shows its number either way."""
    root, _ = records
    rows = collect_rows(root)
    datasets, priors = ["static_mnist", "dynamic_mnist"], ["standard", "vampprior", "mog"]
    planned = {("static_mnist", "vae", p) for p in priors} | {("dynamic_mnist", "vae", "standard"),
                                                              ("dynamic_mnist", "vae", "vampprior")}
    lines = table1_markdown(rows, datasets, priors, planned=planned).splitlines()
    dynamic = lines[3].split(" | ")
    assert dynamic[0] == "| dynamic_mnist" and dynamic[1:] == ["not run", "not run", "not planned |"]
    assert "not planned" not in lines[2]
    html = table1_html(rows, datasets, priors, planned=planned)
    assert html.count("<em>not planned</em>") == 1
    assert "not planned" not in table1_markdown(rows, datasets, priors)  # no plan: all planned
    with_hvae = planned | {("fashion_mnist", "hvae", "vampprior")}
    lines = table1_markdown(rows, datasets + ["fashion_mnist"], priors, models=("vae", "hvae"),
                            planned=with_hvae).splitlines()
    assert "| fashion_mnist (HVAE) | not planned | not run | not planned |" in lines, "a planned row is shown"


def test_hvae_against_the_vae_is_paired_by_image_and_seed(records):
    """The HVAE's table: a row only where both models ran (static MNIST VampPrior, 2 common
    seeds; not the standard prior, which has no HVAE run), the difference paired per image and
    seed (+1.5 here, the same in both seeds: std 0), not the difference of noisy means; each
    model's summary is over the same seeds as the difference."""
    root, base = records
    rng = np.random.default_rng(1)
    vae_vp = {s: per_image_ll(select(collect_rows(root), dataset="static_mnist", prior="vampprior", seed=s)[0])
              for s in (0, 1)}
    for s in (0, 1):
        _record(root, "static_mnist", "vampprior", s, vae_vp[s] + 1.5, model="hvae")
    _record(root, "frey_faces", "vampprior", 0, -1790 + rng.normal(size=20), model="hvae")
    rows = collect_rows(root)
    found = model_differences(rows, ["static_mnist", "frey_faces"], ["standard", "vampprior"])
    assert [(d, p) for d, p, *_ in found] == [("static_mnist", "vampprior")]
    _, _, hvae, vae, diff = found[0]
    assert sorted(diff.per_seed) == [0, 1] and diff.err_kind == "std over seeds"
    assert diff.mean == pytest.approx(1.5) and diff.err == pytest.approx(0.0, abs=1e-9)
    assert vae.n_seeds == hvae.n_seeds == 2  # the seeds both have, not the VAE's third
    assert hvae.mean - vae.mean == pytest.approx(diff.mean)
    table = model_paired_table_html(rows, ["static_mnist", "frey_faces"], ["standard", "vampprior"])
    assert table.count("<tr><th>") == 2  # the head and one row
    assert "+1.50 &plusmn; 0.00" in table and "HVAE &minus; VAE" in table


def test_a_difference_counts_where_its_95_percent_interval_excludes_zero():
    from scipy import stats
    from vae_lib.pipeline.results import PairedDifference, verdict

    def one_seed(mean, se):
        return PairedDifference({0: (mean, se)}, mean, se, "paired s.e.")

    assert verdict(one_seed(1.97, 1.0), "the HVAE") == "the HVAE is better"
    assert verdict(one_seed(-1.97, 1.0), "mog") == "mog is worse"
    assert verdict(one_seed(1.95, 1.0), "mog") == verdict(one_seed(-1.95, 1.0), "mog") == \
        "no clear difference (its 95% interval contains 0)"
    assert verdict(one_seed(5.0, float("nan")), "mog").startswith("no interval")  # one test image

    # several seeds: the same call as a one-sample t test of the per-seed means at 5%
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(2, 6))
        means = rng.normal(rng.normal(0, 1.5), 1.0, n)
        d = PairedDifference({s: (m, 0.1) for s, m in enumerate(means)}, float(means.mean()),
                             float(means.std(ddof=1)), "std over seeds")
        p = stats.ttest_1samp(means, 0.0).pvalue
        if abs(p - 0.05) < 1e-6:
            continue
        expected = ("x is better" if means.mean() > 0 else "x is worse") if p < 0.05 else \
            "no clear difference (its 95% interval contains 0)"
        assert verdict(d, "x") == expected


def test_results_csv_has_one_row_per_record(records, tmp_path):
    root, _ = records
    rows = collect_rows(root, relative_to=root.parent)
    write_results_csv(rows, tmp_path / "results.csv")
    with open(tmp_path / "results.csv") as f:
        read = list(csv.DictReader(f))
    assert len(read) == len(rows) == 11
    assert {"dataset", "model", "prior", "components", "seed", "profile", "status", "epochs",
            "test_ll", "test_ll_stderr", "run"} <= set(read[0])


def test_readme_table_is_spliced_between_its_markers(tmp_path):
    from vae_lib.pipeline.runner import README_MARKERS, update_readme_table

    readme, table = tmp_path / "README.md", tmp_path / "table1.md"
    start, end = README_MARKERS
    readme.write_text(f"# title\n{start}\nold\n{end}\nrest\n")
    table.write_text("| a |\n|---|\n")
    assert update_readme_table(table, readme)
    assert readme.read_text() == f"# title\n{start}\n| a |\n|---|\n{end}\nrest\n"
    readme.write_text("no markers\n")
    assert not update_readme_table(table, readme)


def test_histogram_says_per_prior_how_many_images_it_leaves_out_and_keeps_colours():
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.colors import to_rgba

    from vae_lib.plots import ll_histogram

    values = {"standard": np.arange(100.0), "vampprior": np.arange(100.0) + 50}
    ax = ll_histogram(values, lower_percentile=10, colors={"standard": "C3", "vampprior": "C0"})
    lo = np.percentile(np.concatenate(list(values.values())), 10)
    label = ax.get_xlabel()
    assert f"standard {int(np.sum(values['standard'] < lo))}/100" in label
    assert "vampprior 0/100" in label
    assert [to_rgba(p.get_edgecolor()) for p in ax.patches] == [to_rgba("C3"), to_rgba("C0")]


def test_a_record_names_the_code_of_every_training_segment_or_says_it_was_not_recorded(tmp_path):
    """A run trained from commit a (one thread), resumed at b from a modified checkout (two threads)
    and again at a: both named once each, in order; a record from before segments were recorded
    says its start commit was not recorded (its git_commit is only the commit that evaluated it)."""
    segments = [dict(from_epoch=0, commit="a" * 40, modified=False, threads=1),
                dict(from_epoch=7, commit="b" * 40, modified=True, threads=2),
                dict(from_epoch=9, commit="a" * 40, modified=False, threads=1)]
    _record(tmp_path, "static_mnist", "standard", 0, np.zeros(10), metrics=dict(training_segments=segments))
    _record(tmp_path, "static_mnist", "standard", 1, np.zeros(10))
    first, second = collect_rows(tmp_path)
    assert first["trained_by"] == "aaaaaaaaaa (1 thread); bbbbbbbbbb modified (2 threads)"
    assert second["trained_by"] == "start commit not recorded" and second["git_commit"] == "abc"


def test_sample_spread_is_zero_for_copies_and_the_pixel_sd_in_grey_levels():
    """Copies of one image spread 0; two images, one black and one white, spread the s.d. of
    (0, 255) = 180.3 at every pixel; pixels of N(0.5, 0.1) noise about 25.5 grey levels."""
    from vae_lib.pipeline.results import sample_spread

    one = np.random.default_rng(0).uniform(size=(1, 28, 28))
    assert sample_spread(np.repeat(one, 20, axis=0)) == pytest.approx(0.0, abs=1e-9)
    assert sample_spread(np.stack([np.zeros(560), np.ones(560)])) == pytest.approx(255 / np.sqrt(2))
    noise = np.random.default_rng(1).normal(0.5, 0.1, size=(4000, 100))
    assert sample_spread(noise) == pytest.approx(25.5, rel=0.02)


def test_nearly_uniform_counts_images_whose_pixels_barely_spread():
    """Three constant images plus noise of s.d. 0.01 (a VampPrior's start) and two images half
    black, half white (s.d. 0.5): three are nearly uniform at the 0.05 threshold, none at 0.005."""
    from vae_lib.pipeline.results import nearly_uniform

    rng = np.random.default_rng(0)
    flat = 0.5 + 0.01 * rng.normal(size=(3, 28, 28))
    half = np.concatenate([np.zeros((2, 392)), np.ones((2, 392))], axis=1).reshape(2, 28, 28)
    images = np.concatenate([flat, half])
    assert nearly_uniform(images) == 3
    assert nearly_uniform(images, threshold=0.005) == 0
