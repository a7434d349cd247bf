"""Property-based invariants of the batched engine over random (legal and illegal) play."""

from __future__ import annotations

import os

import numpy as np
from conftest import (
    assert_events_equal,
    assert_states_equal,
    check_state,
    make_small_world,
    per_world_sum,
    random_actions,
    total_troops,
    trained_per_world,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from villages.game import action_layout, action_mask, init_state, players_leave, sample_legal, step
from villages.game.actions import village_economy

CFG, LAYOUT = make_small_world()
P, U = CFG.n_players, CFG.n_units
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
# VILLAGES_TEST_SCALE=20 runs 20x the examples (a longer bug hunt than the default suite).
SCALE = float(os.environ.get("VILLAGES_TEST_SCALE", "1"))


def n_examples(n: int) -> int:
    return max(1, int(n * SCALE))


def check_transition(s0, s1, actions, ev, tainted):
    """Everything one tick may and may not do; ``tainted`` [B, V] is updated in place."""
    B = s0.batch_size
    check_state(CFG, s1)
    assert np.array_equal(s1.tick, s0.tick + 1)

    # Battle accounting: sent = survivors + attacker_lost, and the garrison keeps exactly what it did not lose.
    bt = ev.get("battle")
    if bt:
        w, m, v = bt["world"], bt["army"], bt["village"]
        sent, alost, dtr, dlost = bt["sent"], bt["attacker_lost"], bt["defender_troops"], bt["defender_lost"]
        assert (alost >= 0).all() and (alost <= sent).all()
        assert (dlost >= 0).all() and (dlost <= dtr).all()
        assert np.array_equal(s1.army_troops[w, m] + alost, sent), "sent != survivors + attacker_lost"
        assert np.array_equal(s1.troops[w, v], dtr - dlost), "garrison != defender_troops - defender_lost"
        won = bt["attacker_won"]
        assert np.array_equal(dlost[won], dtr[won]), "a won battle leaves defenders alive"
        assert np.array_equal(alost[~won], sent[~won]), "a lost battle leaves attackers alive"
        assert (bt["destroyed"] <= won).all()
        assert (s1.owner[w[bt["destroyed"]], v[bt["destroyed"]]] == -1).all()
        assert (bt["attacker"] != bt["defender"]).all()
        assert (bt["attacker_alliance"] != bt["defender_alliance"]).all()
        # One battle per village per tick.
        assert len(np.unique(w * CFG.n_villages + v)) == len(w)

    # Global troop ledger.
    diff = total_troops(s1) - total_troops(s0)
    expect = (trained_per_world(ev, B, U) - per_world_sum(ev, "battle", "attacker_lost", B, U)
              - per_world_sum(ev, "battle", "defender_lost", B, U) - per_world_sum(ev, "army_lost", "troops", B, U))
    assert np.array_equal(diff, expect), "troop ledger does not balance"

    # Launch: the troops leave the source village.
    la = ev.get("launch")
    if la:
        assert (la["troops"].sum(-1) > 0)[la["kind"] != 2].all(), "attack/support army without troops"
        assert (la["arrive"] > la["tick"]).all()

    # Population: a training command never takes a village over its farm cap.
    pop0, cap0, _ = village_economy(CFG, s0)
    tr = ev.get("train")
    if tr:
        w, v = tr["world"], tr["village"]
        assert (pop0[w, v] + tr["count"] * CFG.unit_pop[tr["unit"]] <= cap0[w, v]).all()
    # ...so a village is over its cap only if support joined it or it changed hands (armies of the
    # previous owner stay charged to it until they come back).
    sup = ev.get("support")
    if sup:
        tainted[sup["world"], sup["village"]] = True
    tainted |= s1.owner != s0.owner
    pop1, cap1, _ = village_economy(CFG, s1)
    over = (pop1 > cap1) & (s1.owner >= 0)
    assert not (over & ~tainted).any(), "population above the cap without support or an owner change"

    # Invalid actions: counted once per seat, only for active seats, and each has an event.
    inc = s1.invalid_actions - s0.invalid_actions
    assert ((inc == 0) | (inc == 1)).all()
    assert not (inc > 0)[~s0.player_active[:, :P]].any()
    inv = ev.get("invalid")
    n_inv = np.zeros((B, P), np.int64)
    if inv:
        np.add.at(n_inv, (inv["world"], inv["player"]), 1)
        assert np.array_equal(inv["action"], actions[inv["world"], inv["player"]])
    assert np.array_equal(n_inv, inc)


def run_checked(seed, mode, n_ticks, B=3):
    rng = np.random.default_rng(seed)
    s = init_state(CFG, LAYOUT, rng.integers(0, 2**31, size=B))
    check_state(CFG, s)
    tainted = np.zeros(s.owner.shape, bool)
    L = action_layout(CFG)
    for _ in range(n_ticks):
        a = random_actions(CFG, s, rng, mode)
        s1, ev = step(CFG, s, a)
        check_transition(s, s1, a, ev, tainted)
        if mode in ("legal", "biased"):
            # Legal commands are executed unless the world runs out of army slots.
            roomy = (~s.army_active).sum(1) >= P
            assert (s1.invalid_actions == s.invalid_actions)[roomy].all(), "a legal action was counted invalid"
        out = (a < 0) | (a >= L.n_actions)
        inc = s1.invalid_actions - s.invalid_actions
        assert np.array_equal(inc[out], s.player_active[:, :P][out].astype(np.int64)), "out-of-range action not counted"
        s = s1
    return s


@settings(max_examples=n_examples(40), **SETTINGS)
@given(seed=st.integers(0, 2**32 - 1), mode=st.sampled_from(["legal", "biased", "any", "mixed"]),
       n_ticks=st.integers(1, 60))
def test_invariants_random_play(seed, mode, n_ticks):
    run_checked(seed, mode, n_ticks)


def test_invariants_long_war():
    """A long war-heavy run reaches razing, elimination and lost armies, all with the invariants held."""
    rng = np.random.default_rng(7)
    B = 16
    s = init_state(CFG, LAYOUT, np.arange(B))
    tainted = np.zeros(s.owner.shape, bool)
    seen = set()
    for _ in range(CFG.episode_length):
        a = random_actions(CFG, s, rng, "biased")
        s1, ev = step(CFG, s, a)
        check_transition(s, s1, a, ev, tainted)
        seen.update(k for k in ev.kinds() if ev.count(k))
        if ev.count("battle") and ev.get("battle")["destroyed"].any():
            seen.add("destroyed")
        s = s1
    assert {"battle", "destroyed", "eliminated", "support", "train", "build", "launch"} <= seen, seen


@settings(max_examples=n_examples(25), **SETTINGS)
@given(data=st.data())
def test_invariants_hypothesis_actions(data):
    """Actions drawn by hypothesis itself (so failures shrink to a short command list)."""
    L = action_layout(CFG)
    seed = data.draw(st.integers(0, 1000), label="seed")
    n_ticks = data.draw(st.integers(1, 25), label="ticks")
    s = init_state(CFG, LAYOUT, [seed])
    tainted = np.zeros(s.owner.shape, bool)
    action = st.one_of(st.integers(-2, L.n_actions + 2), st.integers(L.row_base, L.n_actions - 1),
                       st.integers(-(2**63), 2**63 - 1))
    for t in range(n_ticks):
        a = np.array([data.draw(st.lists(action, min_size=P, max_size=P), label=f"tick{t}")], np.int64)
        s1, ev = step(CFG, s, a)
        check_transition(s, s1, a, ev, tainted)
        s = s1


def _warm_state(seed, n_ticks, B=2, mode="biased"):
    rng = np.random.default_rng(seed)
    s = init_state(CFG, LAYOUT, rng.integers(0, 2**31, size=B))
    for _ in range(n_ticks):
        s, _ = step(CFG, s, random_actions(CFG, s, rng, mode))
    return s, rng


@settings(max_examples=n_examples(15), **SETTINGS)
@given(seed=st.integers(0, 2**32 - 1), warm=st.integers(0, 60))
def test_mask_is_exact(seed, warm):
    """For one seat acting alone, the rules execute an action iff the mask allows it; an illegal
    action changes nothing but the counter (state and events equal a no-op), and every legal
    non-noop action has an effect."""
    s, rng = _warm_state(seed, warm, B=1)
    L = action_layout(CFG)
    seat = int(rng.integers(P))
    mask = action_mask(CFG, s, np.arange(P))[0, seat]
    n = L.n_actions
    batch = s.select(np.zeros(n, np.int64))
    acts = np.zeros((n, P), np.int64)
    acts[:, seat] = np.arange(n)
    s1, ev = step(CFG, batch, acts)
    counted = (s1.invalid_actions - batch.invalid_actions)[:, seat] > 0
    active = bool(s.player_active[0, seat])
    assert np.array_equal(counted, ~mask & active), (
        f"mask/rules disagree on {[L.names[i] for i in np.nonzero(counted != (~mask & active))[0]]}")
    noop = s1.select([0])
    for i in range(n):
        one = s1.select([i])
        if not mask[i] or i == 0:
            assert_states_equal(one, noop, skip=("invalid_actions",))
            assert_events_equal(ev.select_world(i), ev.select_world(0), skip_kinds=("invalid",))
        else:
            differs = [f for f in ("owner", "resources", "buildings", "troops", "relation", "offer", "army_active")
                       if not np.array_equal(getattr(one, f), getattr(noop, f))]
            # (A village built up or traded in this tick can be razed in the same tick.)
            razed = ev.select_world(i).get("battle").get("destroyed", np.zeros(0, bool)).any()
            assert differs or razed, f"legal action {L.names[i]} did nothing"


@settings(max_examples=n_examples(15), **SETTINGS)
@given(seed=st.integers(0, 2**32 - 1), warm=st.integers(0, 50))
def test_illegal_actions_are_noops_among_others(seed, warm):
    """With every other seat acting, replacing one seat's command by an illegal one (out of range or
    masked) gives the same next state and events as a noop, plus one count."""
    s, rng = _warm_state(seed, warm, B=2, mode="mixed")
    L = action_layout(CFG)
    mask = action_mask(CFG, s, np.arange(P))
    base = sample_legal(mask, s.key, s.tick, salt=3)
    seat = rng.integers(P, size=2)
    illegal = np.empty(2, np.int64)
    for b in range(2):
        off = np.nonzero(~mask[b, seat[b]])[0]
        choices = [-1, L.n_actions, 2**40] + ([int(rng.choice(off))] if len(off) else [])
        illegal[b] = choices[rng.integers(len(choices))]
    a_noop, a_bad = base.copy(), base.copy()
    a_noop[[0, 1], seat] = 0
    a_bad[[0, 1], seat] = illegal
    s_noop, e_noop = step(CFG, s, a_noop)
    s_bad, e_bad = step(CFG, s, a_bad)
    assert_states_equal(s_noop, s_bad, skip=("invalid_actions",))
    assert_events_equal(e_noop, e_bad, skip_kinds=("invalid",))
    inc = s_bad.invalid_actions - s_noop.invalid_actions
    expect = np.zeros_like(inc)
    expect[[0, 1], seat] = s.player_active[[0, 1], seat]
    assert np.array_equal(inc, expect)


def test_inactive_seats_ignore_commands():
    s, rng = _warm_state(1, 5, B=2)
    s = players_leave(CFG, s, np.eye(2, P, k=3, dtype=bool))  # world 0 seat 3, world 1 seat 4
    a = sample_legal(action_mask(CFG, s, np.arange(P)), s.key, s.tick)
    a2 = a.copy()
    a2[0, 3] = 5
    a2[1, 4] = -7
    s1, e1 = step(CFG, s, a)
    s2, e2 = step(CFG, s, a2)
    assert_states_equal(s1, s2)
    assert_events_equal(e1, e2)
    mask = action_mask(CFG, s, np.arange(P))
    assert mask[0, 3].sum() == 1 and mask[0, 3, 0] and mask[1, 4].sum() == 1


def test_step_does_not_modify_its_input():
    s, rng = _warm_state(3, 20, B=4)
    before = s.copy()
    for _ in range(5):
        step(CFG, s, random_actions(CFG, s, rng, "mixed"))
    assert_states_equal(s, before)


def test_players_leave_ledger():
    """Leaving removes exactly the troops of the leavers' armies; their villages keep theirs as barbarians."""
    s, rng = _warm_state(11, 40, B=8)
    leaving = rng.random((8, P)) < 0.3
    ev_before = total_troops(s)
    s2 = players_leave(CFG, s, leaving)
    check_state(CFG, s2)
    really = leaving & s.player_active[:, :P]
    gone = ((s.army_troops * (s.army_active & np.take_along_axis(really, s.army_owner, 1))[..., None]).sum(1))
    assert np.array_equal(total_troops(s2), ev_before - gone)


# --- the optimised hot path against straightforward reference implementations --------------


def reference_sample_legal(mask, key, tick, salt=0):
    from villages.game import rng

    B, n, _ = mask.shape
    u = rng.uniform(key[:, None], 11, tick[:, None], np.arange(n)[None, :], salt)
    k = np.floor(u * mask.sum(-1)).astype(np.int64)
    return (np.cumsum(mask, -1) > k[..., None]).argmax(-1)


def reference_action_mask(cfg, state, players, diplomacy=True):
    """The engine's first, plain version of ``action_mask`` (dense [B, n, V] and [B, V, K] arrays)."""
    from villages.game.config import ALLY, BARRACKS, FARM, HQ, MARKET, NO_OWNER, PEACE, SPEAR, WAR

    players = np.atleast_1d(np.asarray(players, dtype=np.int64))
    L = action_layout(cfg)
    B, n, N, A = state.batch_size, len(players), cfg.n_rows, cfg.n_alliances
    bi = np.arange(B)

    def g(x, idx):
        return x[bi.reshape((B,) + (1,) * (idx.ndim - 1)), idx]

    army_pop = np.zeros(state.owner.shape)
    pop = (state.army_troops * cfg.unit_pop).sum(-1) * state.army_active
    np.add.at(army_pop, (np.repeat(bi, cfg.max_armies), state.army_src.ravel()), pop.ravel())
    pop_used = (state.troops * cfg.unit_pop).sum(-1) + army_pop
    pop_cap = cfg.pop_cap(state.buildings[..., FARM])
    owns = state.owner[:, None, :] == players[None, :, None]

    def pick(score):
        masked = np.where(owns, score[:, None, :], -np.inf)
        best = masked.argmax(-1)
        return best, np.take_along_axis(masked, best[..., None], -1)[..., 0]

    off = (state.troops * (cfg.unit_attack * cfg.unit_offensive + cfg.unit_offensive)).sum(-1)
    attack_src, off_value = pick(off.astype(float))
    support_src, sp_value = pick(state.troops[..., SPEAR].astype(float))
    main, _ = pick(state.resources.sum(-1))
    n_own = owns.sum(-1)
    level = state.buildings
    cost = cfg.building_cost()[np.arange(cfg.n_buildings), np.minimum(level, cfg.building_max_level)]
    res = state.resources[:, :, None, :]
    can_build = ((res[..., 0] >= cost[..., 0]) & (res[..., 1] >= cost[..., 1]) & (level < cfg.building_max_level)
                 & (state.owner >= 0)[..., None])
    batch_cost = cfg.unit_cost * cfg.unit_batch[:, None]
    can_train = ((res[..., 0] >= batch_cost[:, 0]) & (res[..., 1] >= batch_cost[:, 1])
                 & ((pop_used + 0.0)[..., None] + cfg.unit_pop * cfg.unit_batch <= pop_cap[..., None])
                 & (state.buildings[..., BARRACKS, None] >= cfg.unit_barracks_level) & (state.owner >= 0)[..., None])

    mask = np.zeros((B, n, L.n_actions), dtype=bool)
    mask[..., 0] = True
    active = state.player_active[:, players]
    free_slot = (~state.army_active).any(-1)[:, None]
    my = state.player_alliance[:, players]
    main_res = g(state.resources, main)
    market = g(state.buildings[..., MARKET], main) > 0
    mask[..., 1] = active & market & (main_res[..., 0] >= cfg.trade_amount)
    mask[..., 2] = active & market & (main_res[..., 1] >= cfg.trade_amount)
    if np.any(diplomacy):
        other = state.alliance_order[:, None, :]
        b3 = bi[:, None, None]
        rel = state.relation[b3, my[..., None], other]
        to_me = state.offer[b3, other, my[..., None]]
        by_me = state.offer[b3, my[..., None], other]
        ok = active[..., None] & (other != my[..., None]) & np.asarray(diplomacy, bool).reshape(-1)[None, :, None]
        d = L.diplomacy
        mask[..., d: d + A] = ok & (rel != WAR)
        mask[..., d + A: d + 2 * A] = ok & (rel == WAR) & (by_me != PEACE + 1)
        mask[..., d + 2 * A: d + 3 * A] = ok & (rel == PEACE) & (by_me != ALLY + 1)
        mask[..., d + 3 * A: d + 4 * A] = ok & (to_me > 0)
    rv = state.row_village[:, players]
    row_owner = g(state.owner, rv)
    row_alliance = np.where(row_owner >= 0, g(state.player_alliance, np.maximum(row_owner, 0)), -1)
    rel = state.relation[bi[:, None, None], my[..., None], np.maximum(row_alliance, 0)]
    mine = row_owner == players[None, :, None]
    same = row_alliance == my[..., None]
    occupied = row_owner >= 0
    act = active[..., None] & free_slot[..., None]
    rows = mask[..., L.row_base:].reshape(B, n, N, L.n_verbs)
    rows[..., 0] = act & occupied & ~same & (off_value > 0)[..., None]
    friendly = occupied & (row_owner != cfg.barbarian_player) & (same | (rel == ALLY))
    rows[..., 1] = act & friendly & (sp_value > 0)[..., None] & (rv != support_src[..., None])
    can_found = (main_res >= cfg.found_cost).all(-1) & (n_own < cfg.max_own_villages) & (n_own > 0)
    rows[..., 2] = act & (row_owner == NO_OWNER) & can_found[..., None]
    K = cfg.n_buildings
    rows[..., 3: 3 + K] = (active[..., None] & mine)[..., None] & g(can_build, rv)
    rows[..., 3 + K:] = (active[..., None] & mine)[..., None] & g(can_train, rv)
    return mask


@settings(max_examples=n_examples(10), **SETTINGS)
@given(seed=st.integers(0, 2**32 - 1), warm=st.integers(0, 80), mode=st.sampled_from(["legal", "biased", "mixed"]))
def test_mask_and_sampler_match_reference(seed, warm, mode):
    s, rng = _warm_state(seed, warm, B=8, mode=mode)
    # Some hand-made variety: rich villages (trade, found), odd seat lists, diplomacy per seat.
    s.resources[rng.random(s.resources.shape[:2]) < 0.2] = 1000.0
    s.buildings[..., 6] = rng.integers(0, 3, size=s.buildings.shape[:2])
    for players, dip in ((np.arange(P), True), (np.array([3, 0, 3]), np.array([True, False, True])),
                         (np.arange(P), False)):
        ref = reference_action_mask(CFG, s, players, dip)
        got = action_mask(CFG, s, players, dip)
        assert got.dtype == bool and got.shape == ref.shape
        assert np.array_equal(got, ref)
        for salt in (0, 5):
            assert np.array_equal(sample_legal(got, s.key, s.tick, salt), reference_sample_legal(ref, s.key, s.tick, salt))


def test_sample_legal_edge_cases():
    rng = np.random.default_rng(0)
    for B, n in ((5, 4), (9, 10)):  # (few rows and many rows take different paths)
        for n_actions in (1, 7, 8, 9, 64, 267, 300):
            mask = rng.random((B, n, n_actions)) < rng.choice([0.0, 0.01, 0.5, 1.0], size=(B, n, 1))
            key, tick = rng.integers(0, 2**63, B, dtype=np.uint64), rng.integers(0, 100, B)
            got = sample_legal(mask, key, tick)
            assert np.array_equal(got, reference_sample_legal(mask, key, tick))
            legal = np.take_along_axis(mask, got[..., None], -1)[..., 0]
            assert (legal | (mask.sum(-1) == 0)).all() and (got[mask.sum(-1) == 0] == 0).all()


def test_level_tables_match_the_config_formulas():
    from villages.game.tables import tables

    t = tables(CFG)
    lv = np.arange(t.levels)
    for table, formula in ((t.production, CFG.production), (t.storage, CFG.storage), (t.pop_cap, CFG.pop_cap)):
        assert np.array_equal(table, formula(lv)) and np.array_equal(table, formula(lv.reshape(-1, 1)[:, 0]))
        assert all(table[i] == formula(np.array([i]))[0] for i in lv)
