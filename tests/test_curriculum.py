"""Curricula (``villages.train.levels``): the samplers' statistics on toy scores, determinism
under a seed, the disambiguating budget, and a trainer run that resumes with its level buffer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from villages.policies.neural import read_checkpoint
from villages.scenarios import load
from villages.train.levels import LevelSampler, LevelSpace, PrioritizedReplay, make_sampler
from villages.train.ppo import Args, train

SPACE = LevelSpace(role=1, own=1, others=(2, 3, 4), budget=0.1)


def fill(sampler: PrioritizedReplay, n: int, score_of) -> None:
    """Play n new levels once, scored by score_of(level index) (regret) / as success (learnability)."""
    seeds, worn, slot = sampler.draw(n)
    values = np.array([score_of(i) for i in range(n)])
    sampler.update(seeds, worn, slot, regret=values, success=values)


def replay_counts(sampler: PrioritizedReplay, draws: int = 400) -> np.ndarray:
    counts = np.zeros(sampler.capacity)
    for _ in range(draws):
        _, _, slot = sampler.draw(8)
        np.add.at(counts, slot[slot >= 0], 1)
    return counts


def test_generator_keeps_the_disambiguating_budget():
    seeds, worn = SPACE.generate(20_000, np.random.RandomState(0))
    share = (worn != SPACE.own).mean()
    assert abs(share - 0.1) < 0.01
    assert set(worn[worn != SPACE.own].tolist()) == {2, 3, 4}
    assert len(set(seeds.tolist())) == len(seeds)


def test_plr_replays_high_regret_levels_more_often():
    s = PrioritizedReplay(SPACE, seed=0, score="regret", capacity=8, replay_prob=1.0, staleness=0.0)
    fill(s, 8, lambda i: i / 10)  # slot i scores i / 10
    counts = replay_counts(s)
    assert counts[7] > counts[4] > counts[0]
    assert counts[7] > 3 * counts[0]


def test_sfl_replays_levels_solved_about_half_the_time():
    s = PrioritizedReplay(SPACE, seed=0, score="learnability", capacity=8, replay_prob=1.0, staleness=0.0)
    fill(s, 8, lambda i: i / 7)  # success 0, 1/7, ..., 1: learnability peaks in the middle
    counts = replay_counts(s)
    middle, ends = counts[3] + counts[4], counts[0] + counts[7]
    assert middle > 3 * ends
    assert s.score[0] == 0.0 and s.score[7] == 0.0


def test_staleness_brings_back_levels_not_played_for_long():
    s = PrioritizedReplay(SPACE, seed=0, score="regret", capacity=8, replay_prob=1.0, staleness=1.0)
    fill(s, 8, lambda i: i / 10)
    counts = replay_counts(s)
    assert counts.min() > 0.5 * counts.max()  # pure staleness: every level comes back in turn


def test_a_new_level_replaces_the_lowest_score_only_if_it_beats_it():
    s = PrioritizedReplay(SPACE, seed=0, score="regret", capacity=4, replay_prob=0.0)
    fill(s, 4, lambda i: 1.0 + i)
    seeds, worn, slot = s.draw(2)
    s.update(seeds, worn, slot, regret=np.array([0.5, 9.0]), success=np.zeros(2))
    assert 9.0 in s.score and 0.5 not in s.score and 1.0 not in s.score


@pytest.mark.parametrize("curriculum", ["dr", "plr", "sfl"])
def test_samplers_are_deterministic_under_a_seed_and_resume_from_their_state(curriculum):
    def run(sampler, rounds):
        out = []
        for r in range(rounds):
            seeds, worn, slot = sampler.draw(6)
            sampler.update(seeds, worn, slot, regret=(seeds % 7) / 7.0, success=(seeds % 5) / 4.0)
            out.append((seeds.copy(), worn.copy(), slot.copy()))
        return out

    make = lambda: make_sampler(curriculum, SPACE, 3, 8, 0.5, 0.3, 0.3)  # noqa: E731
    a, b = run(make(), 10), run(make(), 10)
    assert all(np.array_equal(x, y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))
    first = make()
    run(first, 4)
    resumed = make()
    resumed.load_state_dict(first.state_dict())
    assert all(np.array_equal(x, y) for ra, rb in zip(run(first, 6), run(resumed, 6)) for x, y in zip(ra, rb))


def test_a_scenario_without_a_diversity_pool_is_refused():
    with pytest.raises(ValueError, match="no \\[diversity\\] role and pool"):
        LevelSpace.of(load("training"), 0.1)
    space = LevelSpace.of(load("diverse-training"), 0.05)
    assert space.own not in space.others and len(space.others) == 6


def tiny(**kw) -> Args:
    return Args(**{"scenario": "diverse-training", "level_budget": 0.25, "level_buffer": 16, "num_worlds": 8,
                   "num_steps": 32, "total_steps": 8 * 32 * 12, "progress": False, "tensorboard": False,
                   "processes": 1, "checkpoint_every": 2, **kw})


@pytest.mark.timeout(300)
@pytest.mark.parametrize("curriculum", ["plr", "sfl"])
def test_a_curriculum_run_resumes_exactly_with_its_level_buffer(tmp_path, curriculum):
    """Stopped after update 8 (its checkpoint written, mid-episode, a buffer of levels already scored), then resumed: the
    weights, the metrics rows (with the levels/* statistics) and the buffer equal the uninterrupted run's."""
    args = tiny(curriculum=curriculum)
    ref = train(args, tmp_path / "ref", log=lambda *_: None)

    class Stop(Exception):
        pass

    def stop(update, total):
        if update == 8:
            raise Stop

    with pytest.raises(Stop):
        train(args, tmp_path / "run", log=lambda *_: None, on_update=stop)
    final = train(args, tmp_path / "run", resume=True, log=lambda *_: None)
    a, b = read_checkpoint(ref)["model"], read_checkpoint(final)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = lambda d: [{k: v for k, v in json.loads(x).items() if k != "charts/SPS"}  # noqa: E731
                      for x in (d / "metrics.jsonl").read_text().splitlines()]
    assert rows(tmp_path / "run") == rows(tmp_path / "ref")
    last = rows(tmp_path / "ref")[-1]
    assert last["levels/buffer_size"] == 16 and 0 < last["levels/played_disambiguating"] < 1
    buffer = json.loads((tmp_path / "ref" / "levels.json").read_text())["buffer"]
    assert len(buffer) == 16 and [b["score"] for b in buffer] == sorted((b["score"] for b in buffer), reverse=True)
    sa = read_checkpoint(tmp_path / "ref" / "checkpoint.pt", resumable=True)["curriculum"]["sampler"]
    sb = read_checkpoint(tmp_path / "run" / "checkpoint.pt", resumable=True)["curriculum"]["sampler"]
    assert torch.equal(sa["score"], sb["score"]) and torch.equal(sa["seeds"], sb["seeds"])


def test_bad_curriculum_settings_are_refused(tmp_path):
    from villages.validation import InputError

    with pytest.raises(InputError, match="--curriculum: expected one of none, dr, plr, sfl"):
        train(tiny(curriculum="accel"), tmp_path / "a", log=lambda *_: None)
    with pytest.raises(InputError, match="--level-budget"):
        train(tiny(curriculum="dr", level_budget=1.5), tmp_path / "b", log=lambda *_: None)


def test_dr_sampler_is_the_base_sampler():
    assert type(make_sampler("dr", SPACE, 0, 8, 0.5, 0.3, 0.3)) is LevelSampler


@pytest.mark.timeout(600)
def test_sweep_curriculum_end_to_end(tmp_path):
    """The experiment on a tiny budget: every cell is trained, evaluated and summarized (graded
    retention, verdicts, per identity, played share), and the page and plot are written."""
    from villages.experiments.curriculum import run_curriculum_sweep

    r = run_curriculum_sweep(tmp_path, methods=("dr", "plr"), budgets=(0.25,), n_seeds=1, steps=2048, episodes=2,
                             log=lambda *_: None)
    assert [(p["method"], p["budget"]) for p in r["points"]] == [("dr", 0.25), ("plr", 0.25)]
    for p in r["points"]:
        assert len(p["per_seed"]) == 1 and len(p["retention_pooled"]) == 3
        assert 0 <= p["played_disambiguating"][0] <= 1
        idents = p["per_seed"][0]["identities"]  # (4 probe episodes: some of the pool's identities)
        assert idents and set(idents) <= set(load("diverse-training").diversity.pool)
    text = (tmp_path / "curriculum.md").read_text()
    assert "| plr | 25% |" in text and (tmp_path / "curriculum.png").stat().st_size > 1000


@pytest.mark.timeout(600)
def test_sweep_diversity_end_to_end(tmp_path):
    from villages.experiments.sweep import run_sweep

    r = run_sweep(tmp_path, fractions=(0.0, 1.0), n_seeds=1, steps=2048, episodes=2, reuse=None, log=lambda *_: None)
    assert [p["fraction"] for p in r["points"]] == [0.0, 1.0]
    assert all(len(p["per_seed"]) == 1 and len(p["retention_pooled"]) == 3 for p in r["points"])
    assert (tmp_path / "sweep.md").exists() and (tmp_path / "sweep.png").stat().st_size > 1000
