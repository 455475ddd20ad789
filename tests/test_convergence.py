"""The convergence check of importance sampling (vae_lib.pipeline.convergence) on trained smoke runs."""
from __future__ import annotations

import json

import numpy as np
import pytest

from vae_lib.pipeline.tables import convergence_table_html
from vae_lib.pipeline.convergence import (image_subset, main, mean_by_samples,
                                 paired_by_samples, read_convergence, scope_text)
from vae_lib.errors import ConfigError
from vae_lib.estimators import ImportanceSampler
from vae_lib.pipeline.records import load_run

pytestmark = pytest.mark.slow  # both read the smoke grid (minutes of training, once a session)


def test_scores_trained_runs_at_several_sample_sizes_and_pairs_them(smoke_grid, tmp_path, capsys):
    """Two trained static-MNIST runs scored at S = 2, 50, 1000 on 40 test images: the same images
    for both (so they pair), each S's per-image values equal to the importance sampler's own with
    the recorded seed, the mean estimate rising with S (the IWAE bound's expectation does), and a
    second call with the same runs scores nothing again."""
    runs, _, done, _ = smoke_grid
    assert done.returncode == 0, done.stderr[-2000:]
    run_dirs = [runs / "smoke" / f"static_mnist__{p}__K20__seed0" for p in ("standard", "vampprior")]
    out = tmp_path / "is_convergence.json"
    argv = [*map(str, run_dirs), "--samples", "2", "50", "1000", "--images", "40", "--out", str(out)]
    assert main(argv) == 0
    standard, vampprior = read_convergence(out)
    assert (standard["prior"], vampprior["prior"]) == ("standard", "vampprior")
    assert standard["images"] == vampprior["images"] == image_subset(100, 40).tolist()

    run = load_run(run_dirs[1])
    images = run.dataset.test[np.array(vampprior["images"])]
    again = ImportanceSampler(run.model, 50).evaluate(images, seed=vampprior["draw_seed"]).log_px
    np.testing.assert_allclose(vampprior["by_samples"]["50"]["log_px"], again, atol=1e-4)

    for e in (standard, vampprior):
        sizes, means = mean_by_samples(e)
        assert sizes == [2, 50, 1000] and means[0] < means[1] < means[2], means
    paired = paired_by_samples(vampprior, standard)
    assert [s for s, _, _ in paired] == [2, 50, 1000]
    assert paired[1][1] == pytest.approx(np.mean(np.subtract(vampprior["by_samples"]["50"]["log_px"],
                                                             standard["by_samples"]["50"]["log_px"])))
    assert all(d == 0 and se == 0 for _, d, se in paired_by_samples(standard, standard))
    table = convergence_table_html([vampprior, standard], 50)  # the report's table, S=50 as protocol
    rise = mean_by_samples(vampprior)[1][2] - mean_by_samples(vampprior)[1][1]
    assert "vampprior, seed 0" in table and f"{paired[1][1]:+.2f} &plusmn; {paired[1][2]:.2f}" in table
    assert f"{paired[2][1]:+.2f}" in table and f"{rise:+.2f}" in table

    before = out.read_text()
    capsys.readouterr()
    assert main(argv) == 0
    assert out.read_text() == before and capsys.readouterr().out.count("already scored") == 2
    assert json.loads(before)["runs"][0]["provenance"]["git"]
    # the protocol's S as the largest: nothing rose past it, so no row
    assert "seed 0" not in convergence_table_html([vampprior, standard], 1000)
    assert scope_text([vampprior, standard]) == "seed 0 runs, 40 test images"

    # one more S: only it is scored, what was there is kept as it was
    assert main([str(run_dirs[0]), "--samples", "3", "50", "--images", "40", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "S=3:" in printed and "S=50:" not in printed
    grown = read_convergence(out)[0]
    assert sorted(map(int, grown["by_samples"])) == [2, 3, 50, 1000]
    assert grown["by_samples"]["50"] == standard["by_samples"]["50"]
    # other images: the run is scored again on them
    assert main([str(run_dirs[0]), "--samples", "3", "--images", "30", "--out", str(out)]) == 0
    assert list(read_convergence(out)[0]["by_samples"]) == ["3"] and len(read_convergence(out)[0]["images"]) == 30
    # the same name, another trained model (its best epoch differs): scored afresh
    saved = json.loads(out.read_text())
    saved["runs"][0]["trained"]["best_epoch"] = -1
    out.write_text(json.dumps(saved))
    capsys.readouterr()
    assert main([str(run_dirs[0]), "--samples", "3", "--images", "30", "--out", str(out)]) == 0
    assert "already scored" not in capsys.readouterr().out and read_convergence(out)[0]["trained"]["best_epoch"] > 0
    with pytest.raises(ConfigError, match="does not exist"):
        main([str(run_dirs[0]), "--out", str(tmp_path / "missing" / "is_convergence.json")])


def test_a_folder_that_is_not_a_run_is_refused_before_any_scoring(smoke_grid, tmp_path):
    """A wrong path anywhere in the list stops the command before the first run is scored."""
    runs = smoke_grid[0]
    good = runs / "smoke" / "static_mnist__standard__K20__seed0"
    with pytest.raises(ConfigError, match="not a run directory"):
        main([str(good), str(tmp_path), "--out", str(tmp_path / "c.json")])
    assert not (tmp_path / "c.json").exists()
    with pytest.raises(ConfigError, match="at least 2"):
        main([str(good), "--images", "1", "--out", str(tmp_path / "c.json")])


def test_the_monte_carlo_check_measures_the_error_the_delta_method_understates():
    """Constructed: 4000 images whose two estimates are the truth plus independent N(0, 2^2) noise
    (the record's and the check's), with an ESS of 5 everywhere (delta method: sqrt(1/5 - 1/5000)
    = 0.447 per image): the check measures 2 (to sampling error), a ratio of about 4.5, and the
    error of a mean over 10,000 images 2 / 100 = 0.02. The record is indexed by the entry's images."""
    from vae_lib.pipeline.convergence import monte_carlo_check

    rng = np.random.default_rng(0)
    truth = rng.normal(-90, 10, size=10_000)
    record = truth + rng.normal(0, 2, size=10_000)
    images = np.sort(rng.choice(10_000, 4000, replace=False))
    entry = dict(images=images.tolist(), by_samples={"5000": dict(log_px=(truth[images] + rng.normal(0, 2, 4000)).tolist())})
    check = monte_carlo_check(entry, record, np.full(10_000, 5.0), 5000)
    assert check.predicted == pytest.approx(np.sqrt(1 / 5 - 1 / 5000))
    assert check.empirical == pytest.approx(2.0, rel=0.05)
    assert check.ratio == pytest.approx(2.0 / 0.447, rel=0.05)
    assert check.mean_stderr(10_000) == pytest.approx(0.02, rel=0.05)
    assert monte_carlo_check(entry, record, np.full(10_000, 5.0), 500) is None  # not scored at that S
