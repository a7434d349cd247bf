"""Determinism and batch parity: same seeds and actions give the same trajectory, bit for bit,
at any batch size."""

from __future__ import annotations

import numpy as np
from conftest import assert_events_equal, assert_states_equal, make_small_world, random_actions

from villages.game import action_mask, concat, encode, init_state, sample_legal, step

CFG, LAYOUT = make_small_world()
P = CFG.n_players


def legal_actions(s, salt=0):
    """Per-world rule: depends only on each world's own mask, key and tick."""
    return sample_legal(action_mask(CFG, s, np.arange(P)), s.key, s.tick, salt=salt)


def test_same_seeds_and_actions_give_identical_states():
    seeds = [5, 17, 17, 123456789]
    runs = []
    for _ in range(2):
        rng = np.random.default_rng(99)
        s = init_state(CFG, LAYOUT, seeds)
        traj = [(s, None)]
        for _ in range(60):
            s, ev = step(CFG, s, random_actions(CFG, s, rng, "mixed"))
            traj.append((s, ev))
        runs.append(traj)
    for (s1, e1), (s2, e2) in zip(*runs):
        assert_states_equal(s1, s2)
        if e1 is not None:
            assert_events_equal(e1, e2)
    # Worlds 1 and 2 share a seed but not their actions; same seed => same map and start.
    first = runs[0][0][0]
    for f in ("pos", "distance", "row_village", "alliance_order", "key"):
        assert np.array_equal(getattr(first, f)[1], getattr(first, f)[2])


def test_init_state_world_depends_on_its_seed_alone():
    a = init_state(CFG, LAYOUT, [3, 8, 1])
    b = init_state(CFG, LAYOUT, [8])
    assert_states_equal(a.select([1]), b)


def test_batch_parity_64_vs_alone():
    """World i of a batch of 64 equals the same seed run alone, for 100 ticks, with per-world actions."""
    B, T = 64, 100
    seeds = np.arange(1000, 1000 + B)
    s = init_state(CFG, LAYOUT, seeds)
    batch_states, batch_events = [], []
    for t in range(T):
        s, ev = step(CFG, s, legal_actions(s, salt=t % 3))
        batch_states.append(s)
        batch_events.append(ev)
    obs_batch = encode(CFG, s, np.arange(P))
    # Run every world alone (the 64 single-world runs are stepped together as a list).
    alone = [init_state(CFG, LAYOUT, [seed]) for seed in seeds]
    for t in range(T):
        for i in range(B):
            alone[i], ev = step(CFG, alone[i], legal_actions(alone[i], salt=t % 3))
            if t % 10 == 9 or t == T - 1:
                assert_states_equal(batch_states[t].select([i]), alone[i])
                assert_events_equal(batch_events[t].select_world(i), ev)
    for i in range(B):
        assert np.array_equal(encode(CFG, alone[i], np.arange(P))[0], obs_batch[i])
    n_battles = sum(e.count("battle") for e in batch_events)
    assert n_battles > 0


def test_concat_and_select_commute_with_step():
    rng = np.random.default_rng(0)
    a = init_state(CFG, LAYOUT, [1, 2, 3])
    b = init_state(CFG, LAYOUT, [4, 5])
    for _ in range(30):
        ab = concat([a, b])
        acts = random_actions(CFG, ab, rng, "mixed")
        ab1, _ = step(CFG, ab, acts)
        a, _ = step(CFG, a, acts[:3])
        b, _ = step(CFG, b, acts[3:])
        assert_states_equal(ab1, concat([a, b]))


def test_set_worlds_resets_only_masked_worlds():
    s = init_state(CFG, LAYOUT, [1, 2, 3])
    for _ in range(10):
        s, _ = step(CFG, s, legal_actions(s))
    fresh = init_state(CFG, LAYOUT, [7, 8, 9])
    before = s.copy()
    s.set_worlds(np.array([False, True, False]), fresh)
    assert_states_equal(s.select([1]), fresh.select([1]))
    assert_states_equal(s.select([0, 2]), before.select([0, 2]))
