"""Paired comparisons (``villages compare``): the statistics and the command."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from villages.cli import app
from villages.scenarios.compare import compare
from villages.stats import paired_diff_ci


def test_paired_ci_cancels_shared_variation():
    rng = np.random.default_rng(0)
    world = rng.normal(0, 5, 200)  # large episode-to-episode variation shared by both
    base = world
    better = world + 0.3 + rng.normal(0, 0.1, 200)
    mean, lo, hi, n = paired_diff_ci([better], base)
    assert n == 200 and 0.25 < lo < mean < hi < 0.35  # unpaired, the CI would span about +-1
    mean2, lo2, hi2, n2 = paired_diff_ci([better, better], base)  # pooled groups: twice the differences
    assert n2 == 400 and mean2 == pytest.approx(mean)


def test_paired_ci_refuses_unmatched_episodes():
    with pytest.raises(ValueError, match="same episodes"):
        paired_diff_ci([np.zeros(3)], np.zeros(4))


def test_a_policy_against_itself_differs_by_exactly_zero():
    res = compare("training", ["raider"], baseline="raider", episodes=3, metrics=("proxy_reward", "attacks"))
    for row in res["rows"]:
        assert row["difference"] == (0.0, 0.0, 0.0)
        assert row["group"] == row["baseline"]


def test_compare_orders_a_raider_above_a_builder():
    res = compare("aurora-control", ["raider"], baseline="builder", episodes=4,
                  metrics=("enemy_villages_destroyed",))
    mean, lo, _ = res["rows"][0]["difference"]
    assert mean > 0 and lo > 0  # the builder never attacks


@pytest.mark.parametrize("args, words", [
    (["raider", "--metrics", "bogus"], "unknown metrics"),
    (["no-such-bot"], "no-such-bot"),
    (["raider", "--baseline", "nope.pt"], "nope.pt"),
])
def test_cli_errors_name_the_bad_input(args, words):
    r = CliRunner().invoke(app, ["compare", *args, "--episodes", "2", "--scenario", "training"])
    assert r.exit_code == 2, r.output
    assert words in r.output


def test_cli_prints_and_writes_json(tmp_path):
    out = tmp_path / "cmp.json"
    r = CliRunner().invoke(app, ["compare", "raider", "--baseline", "builder", "--episodes", "2",
                                 "--scenario", "training", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "group - baseline" in r.output and out.exists()
