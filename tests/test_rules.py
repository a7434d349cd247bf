"""Unit rules of the game on hand-built states, and the "no rule names an alliance" test.

Numbers are read from ``GameConfig`` rather than hard-coded, so that a balance pass that
keeps the shape of the rules keeps these tests green, and one that breaks the shape
(e.g. levies stop being the cheapest head) makes them fail.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import (
    assert_events_equal,
    assert_states_equal,
    biased_legal,
    check_state,
    make_small_world,
    noop_step,
    place_army,
    total_troops,
)

from villages.game import (
    action_layout,
    action_mask,
    init_state,
    players_leave,
    sample_legal,
    set_relation,
    step,
)
from villages.game.config import (
    UNITS,
    ALLY,
    ARMY_RETURN,
    ARMY_SETTLE,
    ARMY_SUPPORT,
    AXE,
    BARRACKS,
    CAVALRY,
    FARM,
    LEVY,
    MARKET,
    NO_OWNER,
    PEACE,
    RAM,
    SPEAR,
    WALL,
    WAR,
)
from villages.game.rules import travel_ticks

CFG, LAYOUT = make_small_world(luck=0.0)
P, U = CFG.n_players, CFG.n_units
BARB = CFG.barbarian_player
# Site layout of the small world: seat 0 -> site 0, seat 1 -> 1, seat 2 -> 2, 3, seat 3 -> 4, 5,
# seats 4..9 -> sites 6..11, barbarians 12..15, free sites 16..23. Alliances 0 (seats 0, 1)
# and 1 (seats 2, 3) are at war.
TARGET, ATTACKER, ATTACKER_HOME = 0, 2, 2


def world():
    s = init_state(CFG, LAYOUT, [0])
    assert s.owner[0, TARGET] == 0 and s.owner[0, ATTACKER_HOME] == ATTACKER
    return s


def fight(attackers, defenders, wall=0, integrity=50.0, cfg=CFG, with_events=False):
    """One battle at site 0 (seat 0) by seat 2's army; returns (before, after, battle columns, damage)."""
    s = init_state(cfg, LAYOUT, [0])
    s.troops[0, TARGET] = defenders
    s.buildings[0, TARGET, WALL] = wall
    s.integrity[0, TARGET] = integrity
    place_army(s, 0, 0, owner=ATTACKER, src=ATTACKER_HOME, dst=TARGET, troops=attackers)
    s1, ev = noop_step(cfg, s)
    bt = ev.get("battle")
    assert len(bt["world"]) == 1
    damage = 0.0 if bt["destroyed"][0] else integrity + cfg.integrity_regen - s1.integrity[0, TARGET]
    out = (s, s1, {k: v[0] for k, v in bt.items()}, damage)
    return out + (ev,) if with_events else out


def army_of_cost(budget, shares) -> np.ndarray:
    """Units bought with ``budget`` (total of all resources) split by cost ``shares`` [U]."""
    cost = CFG.unit_cost.sum(1)
    return np.floor(budget * np.asarray(shares, float) / cost).astype(np.int64)


TYPICAL_DEFENCE = np.array([10, 10, 10, 0, 0])  # the starting garrison of a player village
TYPICAL_WALL = 2


# --- units and economy ------------------------------------------------------------


def test_levies_are_the_cheapest_head():
    cost = CFG.unit_cost.sum(1)
    assert np.argmin(cost) == LEVY and np.argmin(cost / CFG.unit_pop) == LEVY
    assert CFG.unit_pop[LEVY] == 1
    # ... and nearly useless: less than half the attack per resource of the attack units.
    atk_per_cost = CFG.unit_attack / cost
    assert atk_per_cost[LEVY] < 0.5 * min(atk_per_cost[AXE], atk_per_cost[CAVALRY])


def test_levy_spam_maximises_head_count():
    """Training only one unit type from the same village and resources: levies give the most heads."""
    heads = {}
    for u in range(U):
        s = world()
        v = ATTACKER_HOME
        s.buildings[0, v, FARM] = 12
        s.buildings[0, v, BARRACKS] = CFG.unit_barracks_level.max()
        s.resources[0, v] = 5000.0
        s.buildings[0, v, 0] = 10  # headquarters: storage for the 5000
        act = action_layout(CFG).row_action(0, f"train_{UNITS[u]}")  # row 0 is one's home
        before = s.troops[0, v, u]
        for _ in range(40):
            a = np.zeros((1, P), np.int64)
            a[0, ATTACKER] = act
            s, _ = step(CFG, s, a)
        heads[u] = s.troops[0, v, u] - before
    assert max(heads, key=heads.get) == LEVY, heads


def test_balanced_army_beats_single_types_of_equal_cost():
    """A mix of axes, cavalry and rams wins against a typical defence and damages the village more
    than the same resource cost spent on any single unit type (levies, spears and rams lose; axes
    or cavalry alone win but cannot siege)."""
    mix = np.zeros(U)
    mix[[AXE, CAVALRY, RAM]] = [0.45, 0.4, 0.15]
    budget = next(b for b in range(500, 50001, 500)
                  if fight(army_of_cost(b, mix), TYPICAL_DEFENCE, TYPICAL_WALL)[2]["attacker_won"]) * 1.5
    _, _, bt_mix, dmg_mix = fight(army_of_cost(budget, mix), TYPICAL_DEFENCE, TYPICAL_WALL)
    assert bt_mix["attacker_won"] and dmg_mix > 0
    for u in range(U):
        _, _, bt, dmg = fight(army_of_cost(budget, np.eye(U)[u]), TYPICAL_DEFENCE, TYPICAL_WALL)
        assert dmg < dmg_mix, f"{UNITS[u]}-only army of equal cost did as much damage"
        if u in (LEVY, SPEAR, RAM):
            assert bt["attack"] < bt_mix["attack"]


@pytest.mark.xfail(reason="combat model: defence per unit is the attack-share-weighted mix of infantry and "
                          "cavalry defence, so attack/defence of a mix is quadratic-over-linear (convex) in the "
                          "mix and never exceeds the better pure type; counters do not make mixing pay in "
                          "raw strength (only rams' siege damage does)", strict=False)
def test_balanced_army_has_better_strength_ratio_than_best_single_type():
    mix = np.zeros(U)
    mix[[AXE, CAVALRY]] = [0.5, 0.5]
    budget = 3000

    def ratio(shares):
        _, _, bt, _ = fight(army_of_cost(budget, shares), TYPICAL_DEFENCE, TYPICAL_WALL)
        return bt["attack"] / bt["defence"]

    assert ratio(mix) > max(ratio(np.eye(U)[AXE]), ratio(np.eye(U)[CAVALRY]))


def test_wall_helps_the_defender():
    attackers = np.array([0, 0, 12, 0, 0])
    results = [fight(attackers, TYPICAL_DEFENCE, wall=w)[2] for w in range(6)]
    defence = [r["defence"] for r in results]
    assert all(np.diff(defence) > 0)
    assert all(np.diff([r["attacker_lost"].sum() for r in results]) >= 0)
    # An attack strength between the wall-0 and wall-5 defence wins without the wall and loses with it.
    n_axes = int(np.ceil((defence[0] + defence[5]) / 2 / CFG.unit_attack[AXE]))
    assert fight(np.array([0, 0, n_axes, 0, 0]), TYPICAL_DEFENCE, wall=0)[2]["attacker_won"]
    assert not fight(np.array([0, 0, n_axes, 0, 0]), TYPICAL_DEFENCE, wall=5)[2]["attacker_won"]


def test_battle_losses_and_loot():
    s, s1, bt, dmg = fight(np.array([0, 0, 40, 5, 2]), TYPICAL_DEFENCE, wall=1)
    assert bt["attacker_won"] and not bt["destroyed"]
    assert (bt["defender_lost"] == TYPICAL_DEFENCE).all() and (s1.troops[0, TARGET] == 0).all()
    assert 0 < bt["attacker_lost"].sum() < bt["sent"].sum()
    assert dmg == CFG.damage_per_win + CFG.damage_per_ram * (bt["sent"] - bt["attacker_lost"])[RAM]
    assert s1.buildings[0, TARGET, WALL] == 0  # rams knock a wall level down
    survivors = bt["sent"] - bt["attacker_lost"]
    available = (s1.resources[0, TARGET] + bt["loot"]).sum()  # what the village held at the battle
    assert available >= s.resources[0, TARGET].sum()
    assert np.isclose(bt["loot"].sum(), min((survivors * CFG.unit_loot).sum(), available)) and bt["loot"].sum() > 0
    # The survivors head home with the loot.
    assert s1.army_active[0, 0] and s1.army_kind[0, 0] == ARMY_RETURN and s1.army_dst[0, 0] == ATTACKER_HOME
    assert (s1.army_troops[0, 0] == survivors).all() and np.allclose(s1.army_loot[0, 0], bt["loot"])
    # ... and unload it on arrival.
    s2 = s1
    for _ in range(int(s1.army_arrive[0, 0] - s1.tick[0]) + 1):
        s2, ev = noop_step(CFG, s2)
    assert not s2.army_active[0, 0]
    assert (s2.troops[0, ATTACKER_HOME] == s.troops[0, ATTACKER_HOME] + survivors).all()


def test_defender_wins_against_weak_attack():
    _, s1, bt, dmg = fight(np.array([20, 0, 0, 0, 0]), TYPICAL_DEFENCE, wall=1)
    assert not bt["attacker_won"] and dmg == 0
    assert (bt["attacker_lost"] == bt["sent"]).all()
    assert not s1.army_active[0, 0]  # nothing left to march home
    assert (bt["defender_lost"] <= TYPICAL_DEFENCE).all()


def test_razing_a_village_and_elimination():
    s, s1, bt, _, ev = fight(np.array([0, 0, 40, 0, 0]), TYPICAL_DEFENCE, integrity=1.0, with_events=True)
    assert bt["attacker_won"] and bt["destroyed"] and bt["defender"] == 0 and bt["attacker"] == ATTACKER
    assert s1.owner[0, TARGET] == NO_OWNER
    assert s1.integrity[0, TARGET] == 0 and (s1.buildings[0, TARGET] == 0).all() and (s1.troops[0, TARGET] == 0).all()
    assert (s1.resources[0, TARGET] == 0).all()
    # Seat 0 had one village: it is eliminated, and only noop is legal for it from now on.
    assert list(ev.get("eliminated")["player"]) == [0]
    assert not s1.player_active[0, 0]
    m = action_mask(CFG, s1, np.arange(P))
    assert m[0, 0].sum() == 1 and m[0, 0, 0]
    check_state(CFG, s1)


def test_losing_one_of_two_villages_is_not_elimination():
    s = world()
    s.integrity[0, 4] = 1.0  # seat 3 owns sites 4 and 5
    place_army(s, 0, 0, owner=0, src=0, dst=4, troops=[0, 0, 60, 0, 0])
    s1, ev = noop_step(CFG, s)
    assert ev.get("battle")["destroyed"].all()
    assert not ev.count("eliminated") and s1.player_active[0, 3]


def test_returning_army_is_lost_when_home_is_gone():
    s = world()
    place_army(s, 0, 0, owner=ATTACKER, src=ATTACKER_HOME, dst=ATTACKER_HOME, troops=[0, 0, 7, 0, 0], kind=ARMY_RETURN)
    s.owner[0, ATTACKER_HOME] = NO_OWNER
    s.troops[0, ATTACKER_HOME] = 0
    s.buildings[0, ATTACKER_HOME] = 0
    s.resources[0, ATTACKER_HOME] = 0
    s.integrity[0, ATTACKER_HOME] = 0
    before = total_troops(s)
    s1, ev = noop_step(CFG, s)
    lost = ev.get("army_lost")
    assert list(lost["player"]) == [ATTACKER] and (lost["troops"][0] == [0, 0, 7, 0, 0]).all()
    assert not s1.army_active[0, 0]
    assert (total_troops(s1) == before - [0, 0, 7, 0, 0]).all()


def test_one_arrival_per_village_per_tick():
    s = world()
    place_army(s, 0, 3, owner=ATTACKER, src=ATTACKER_HOME, dst=TARGET, troops=[0, 0, 1, 0, 0])
    place_army(s, 0, 1, owner=3, src=4, dst=TARGET, troops=[0, 0, 1, 0, 0])
    s1, ev = noop_step(CFG, s)
    assert list(ev.get("battle")["army"]) == [1]  # the lowest slot first
    assert s1.army_active[0, 3] and s1.army_kind[0, 3] == 0
    s2, ev2 = noop_step(CFG, s1)
    assert list(ev2.get("battle")["army"]) == [3]


def test_travel_time_is_distance_times_slowest_pace():
    s = world()
    L = action_layout(CFG)
    s.troops[0, ATTACKER_HOME] = [0, 0, 5, 2, 1]
    s.troops[0, 3] = 0
    rows = s.row_village[0, ATTACKER]
    row = int(np.nonzero((s.owner[0, rows] >= 0) & (s.player_alliance[0, np.maximum(s.owner[0, rows], 0)] != 1))[0][0])
    dst = rows[row]
    a = np.zeros((1, P), np.int64)
    a[0, ATTACKER] = L.row_action(row, "attack")
    assert action_mask(CFG, s, np.arange(P))[0, ATTACKER, a[0, ATTACKER]]
    s1, ev = step(CFG, s, a)
    la = ev.get("launch")
    assert la["src"][0] == ATTACKER_HOME and la["dst"][0] == dst
    assert (la["troops"][0] == [0, 0, 5, 2, 1]).all()  # spears never attack; everything offensive goes
    pace = CFG.unit_speed[[AXE, CAVALRY, RAM]].max()
    assert la["arrive"][0] - la["tick"][0] == max(1, np.ceil(s.distance[0, ATTACKER_HOME, dst] * pace))
    assert travel_ticks(CFG, np.array([2.0]), np.array([[3, 0, 0, 0, 0]]))[0] == np.ceil(2.0 * CFG.unit_speed[LEVY])
    assert (s1.troops[0, ATTACKER_HOME] == [0, 0, 0, 0, 0]).all()


def test_support_joins_an_ally_garrison_and_may_exceed_its_farm():
    s = world()
    s.troops[0, 1] = [0, 0, 0, 0, 0]
    s.troops[0, 0, SPEAR] = 45
    s.buildings[0, 0, FARM] = 5
    place_army(s, 0, 0, owner=0, src=0, dst=1, troops=[0, 45, 0, 0, 0], kind=ARMY_SUPPORT)
    s.troops[0, 0, SPEAR] = 0
    s1, ev = noop_step(CFG, s)
    sup = ev.get("support")
    assert list(sup["village"]) == [1] and (s1.troops[0, 1] == [0, 45, 0, 0, 0]).all()
    assert not s1.army_active[0, 0]
    from villages.game.actions import village_economy

    pop, cap, _ = village_economy(CFG, s1)
    assert pop[0, 1] <= cap[0, 1] or ev.count("support")  # support is the one way past the farm
    # Support to a village that is no longer friendly turns back.
    s = world()
    place_army(s, 0, 0, owner=0, src=0, dst=ATTACKER_HOME, troops=[0, 5, 0, 0, 0], kind=ARMY_SUPPORT)
    s1, ev = noop_step(CFG, s)
    assert not ev.count("support") and s1.army_kind[0, 0] == ARMY_RETURN


def test_trade_at_the_richest_village_with_a_market():
    s = world()
    L = action_layout(CFG)
    s.resources[0, 3] = [900.0, 100.0]  # seat 2's richest village
    a = np.zeros((1, P), np.int64)
    a[0, ATTACKER] = L.trade
    assert not action_mask(CFG, s, np.arange(P))[0, ATTACKER, L.trade]
    s.buildings[0, 3, MARKET] = 2
    assert action_mask(CFG, s, np.arange(P))[0, ATTACKER, L.trade]
    s1, _ = step(CFG, s, a)
    s0, _ = noop_step(CFG, s)
    rate = CFG.trade_rate_base + 0.05 * 2
    assert np.allclose(s1.resources[0, 3] - s0.resources[0, 3], [-CFG.trade_amount, CFG.trade_amount * rate])


# --- founding ---------------------------------------------------------------------


def test_settlers_found_a_village():
    s = world()
    place_army(s, 0, 0, owner=4, src=6, dst=16, troops=[0] * U, kind=ARMY_SETTLE)
    s1, ev = noop_step(CFG, s)
    assert list(ev.get("found")["village"]) == [16]
    assert s1.owner[0, 16] == 4 and s1.integrity[0, 16] == CFG.integrity_max
    assert (s1.buildings[0, 16] == CFG.start_buildings).all()
    check_state(CFG, s1)


def test_simultaneous_settlers_respect_max_own_villages():
    s = world()
    assert (s.owner[0] == ATTACKER).sum() == CFG.max_own_villages - 1
    place_army(s, 0, 5, owner=ATTACKER, src=2, dst=16, troops=[0] * U, kind=ARMY_SETTLE)
    place_army(s, 0, 2, owner=ATTACKER, src=3, dst=17, troops=[0] * U, kind=ARMY_SETTLE)
    s1, ev = noop_step(CFG, s)
    assert list(ev.get("found")["village"]) == [17]  # the lowest slot settles, the other disbands
    assert (s1.owner[0] == ATTACKER).sum() == CFG.max_own_villages
    assert not s1.army_active[0].any()
    check_state(CFG, s1)


def test_settlers_of_an_eliminated_seat_do_not_found():
    s = world()
    place_army(s, 0, 0, owner=4, src=6, dst=16, troops=[0] * U, kind=ARMY_SETTLE)
    s.owner[0, 6] = NO_OWNER
    s.buildings[0, 6] = 0
    s.troops[0, 6] = 0
    s.resources[0, 6] = 0
    s.integrity[0, 6] = 0
    s.player_active[0, 4] = False
    s1, ev = noop_step(CFG, s)
    assert not ev.count("found") and s1.owner[0, 16] == NO_OWNER and not s1.player_active[0, 4]
    check_state(CFG, s1)


def test_found_command():
    s = world()
    L = action_layout(CFG)
    v = 6  # seat 4's village
    s.buildings[0, v, 0] = 5
    s.resources[0, v] = CFG.found_cost + 10
    rows = s.row_village[0, 4]
    row = int(np.nonzero(s.owner[0, rows] == NO_OWNER)[0][0])
    act = L.row_action(row, "found")
    assert action_mask(CFG, s, np.arange(P))[0, 4, act]
    a = np.zeros((1, P), np.int64)
    a[0, 4] = act
    s1, ev = step(CFG, s, a)
    assert ev.get("launch")["kind"][0] == ARMY_SETTLE
    assert (s1.resources[0, v] < 100).all()
    while not ev.count("found"):
        s1, ev = noop_step(CFG, s1)
    assert s1.owner[0, rows[row]] == 4


# --- diplomacy and leaving --------------------------------------------------------


def test_set_relation_is_symmetric_and_emits_an_event():
    s = init_state(CFG, LAYOUT, [0, 1, 2])
    from villages.game import Events

    ev = Events()
    s1 = set_relation(s, np.array([True, False, True]), 2, 4, WAR, ev)
    assert (s1.relation[[0, 2], 2, 4] == WAR).all() and (s1.relation[[0, 2], 4, 2] == WAR).all()
    assert s1.relation[1, 2, 4] == PEACE and s.relation[0, 2, 4] == PEACE  # input untouched
    d = ev.get("diplomacy")
    assert list(d["world"]) == [0, 2] and (d["relation"] == WAR).all() and (d["player"] == -1).all()
    assert np.array_equal(s1.relation, np.swapaxes(s1.relation, 1, 2))


def test_diplomacy_actions():
    s = world()
    L = action_layout(CFG)
    row_of = {int(x): r for r, x in enumerate(s.alliance_order[0])}
    # Seat 4 (alliance 2) declares war on alliance 3.
    a = np.zeros((1, P), np.int64)
    a[0, 4] = L.diplomacy_action(row_of[3], "declare_war")
    s1, ev = step(CFG, s, a)
    assert s1.relation[0, 2, 3] == WAR == s1.relation[0, 3, 2]
    d = ev.get("diplomacy")
    assert (d["alliance_a"][0], d["alliance_b"][0], d["player"][0]) == (2, 3, 4)
    # Alliance 3 offers peace; alliance 2 accepts.
    a[0, 4] = 0
    a[0, 6] = L.diplomacy_action(row_of[2], "offer_peace")
    s2, _ = step(CFG, s1, a)
    assert s2.offer[0, 3, 2] == PEACE + 1 and s2.relation[0, 2, 3] == WAR
    a[0, 6] = 0
    a[0, 5] = L.diplomacy_action(row_of[3], "accept")
    assert action_mask(CFG, s2, np.arange(P))[0, 5, a[0, 5]]
    s3, ev = step(CFG, s2, a)
    assert s3.relation[0, 2, 3] == PEACE == s3.relation[0, 3, 2] and s3.offer[0, 3, 2] == 0
    assert ev.count("diplomacy") == 1


def test_simultaneous_accepts_keep_relations_symmetric():
    """Both sides accept each other's (different) offers in the same tick: the lower seat's wins."""
    s = world()
    L = action_layout(CFG)
    row_of = {int(x): r for r, x in enumerate(s.alliance_order[0])}
    s.relation[0, 2, 3] = s.relation[0, 3, 2] = WAR
    s.offer[0, 2, 3] = PEACE + 1
    s.offer[0, 3, 2] = ALLY + 1  # (an alliance offer made before the war)
    a = np.zeros((1, P), np.int64)
    a[0, 4] = L.diplomacy_action(row_of[3], "accept")  # alliance 2 accepts alliance 3's ALLY offer
    a[0, 6] = L.diplomacy_action(row_of[2], "accept")  # alliance 3 accepts alliance 2's PEACE offer
    s1, ev = step(CFG, s, a)
    assert s1.relation[0, 2, 3] == s1.relation[0, 3, 2] == ALLY
    assert ev.count("diplomacy") == 1 and (s1.offer[0] == 0).all()
    assert (s1.invalid_actions == 0).all()


def test_two_seats_declaring_the_same_war_emit_one_event():
    s = world()
    L = action_layout(CFG)
    row_of = {int(x): r for r, x in enumerate(s.alliance_order[0])}
    a = np.zeros((1, P), np.int64)
    a[0, 4] = a[0, 5] = L.diplomacy_action(row_of[3], "declare_war")
    a[0, 7] = L.diplomacy_action(row_of[2], "declare_war")
    s1, ev = step(CFG, s, a)
    d = ev.get("diplomacy")
    assert list(d["player"]) == [4] and s1.relation[0, 2, 3] == WAR
    assert (s1.invalid_actions == 0).all()


def test_players_leave():
    s = world()
    place_army(s, 0, 0, owner=ATTACKER, src=ATTACKER_HOME, dst=TARGET, troops=[0, 0, 3, 0, 0], arrive=5)
    place_army(s, 0, 1, owner=0, src=0, dst=ATTACKER_HOME, troops=[0, 0, 3, 0, 0], arrive=5)
    from villages.game import Events

    ev = Events()
    leaving = np.zeros((1, P), bool)
    leaving[0, ATTACKER] = True
    s1 = players_leave(CFG, s, leaving, ev)
    assert (s1.owner[0, [2, 3]] == BARB).all() and not s1.player_active[0, ATTACKER]
    assert (s1.troops[0, [2, 3]] == s.troops[0, [2, 3]]).all()  # garrisons stay, now barbarian
    assert not s1.army_active[0, 0] and s1.army_active[0, 1]
    assert list(ev.get("left")["player"]) == [ATTACKER]
    check_state(CFG, s1)
    # Leaving is not elimination, and the barbarian villages can be attacked by anyone but barbarians.
    s2, ev2 = noop_step(CFG, s1)
    assert not ev2.count("eliminated")
    m = action_mask(CFG, s1, np.arange(P))
    assert m[0, ATTACKER].sum() == 1


# --- no rule names an alliance ----------------------------------------------------


def symmetric_layout():
    """Alliances X=0 and Y=1 in symmetric roles: two seats of one village each, at war."""
    cfg, base = make_small_world(luck=0.1, n_players=8)
    A = cfg.n_alliances
    rel = np.zeros((A, A), np.int64)
    rel[0, 1] = rel[1, 0] = WAR
    rel[2, 3] = rel[3, 2] = WAR
    from villages.game import Layout

    return cfg, Layout(player_alliance=np.array([0, 0, 1, 1, 2, 3, 4, 5]), villages_per_player=np.ones(8, np.int64),
                       banners=base.banners, relation=rel, start_troops=np.array([10, 10, 20, 2, 0]))


def relabel(cfg, layout, perm, seeds, geometry_from, banners_follow=True):
    """init_state with alliance index a renamed perm[a] (banners move with their alliance when
    ``banners_follow``); the map geometry is taken from ``geometry_from`` (init_state places
    alliance 0 in the centre, so geometry would otherwise differ)."""
    from villages.game import Layout

    inv = np.argsort(perm)
    banners = layout.banners[inv] if banners_follow else layout.banners
    lay = Layout(player_alliance=perm[layout.player_alliance], villages_per_player=layout.villages_per_player,
                 banners=banners, relation=np.asarray(layout.relation)[np.ix_(inv, inv)],
                 start_troops=layout.start_troops)
    s = init_state(cfg, lay, seeds)
    for f in ("pos", "distance", "row_village", "home"):
        setattr(s, f, getattr(geometry_from, f).copy())
    s.alliance_order = perm[geometry_from.alliance_order]  # diplomacy-table row r shows the same group
    return s


@pytest.mark.parametrize("banners_follow", [True, False])
def test_no_rule_names_an_alliance(banners_follow):
    """Swap alliances X and Y (indices, and banners when they follow): play is identical seat by
    seat, and everything counted per alliance swaps. (Swapping the *seats* is not an exact symmetry:
    the rules break ties by seat and army slot, deliberately and independently of alliances.)"""
    cfg, layout = symmetric_layout()
    A = cfg.n_alliances
    perm = np.arange(A + 1)
    perm[[0, 1]] = [1, 0]
    seeds = np.arange(12)
    s = init_state(cfg, layout, seeds)
    t = relabel(cfg, layout, perm[:A], seeds, s, banners_follow)
    rng_s, rng_t = np.random.default_rng(0), np.random.default_rng(0)
    destroyed_s = np.zeros(A + 1, np.int64)
    destroyed_t = np.zeros(A + 1, np.int64)
    for tick in range(120):
        ms, mt = action_mask(cfg, s, np.arange(cfg.n_players)), action_mask(cfg, t, np.arange(cfg.n_players))
        assert np.array_equal(ms, mt)
        if tick % 3 == 0:
            a_s, a_t = sample_legal(ms, s.key, s.tick), sample_legal(mt, t.key, t.tick)
        else:
            a_s, a_t = biased_legal(cfg, ms, rng_s, w_attack=200.0), biased_legal(cfg, mt, rng_t, w_attack=200.0)
        assert np.array_equal(a_s, a_t)
        s, ev_s = step(cfg, s, a_s)
        t, ev_t = step(cfg, t, a_t)
        # Same play seat by seat; alliance-valued fields are the relabelled ones.
        assert_states_equal(s, t, skip=("player_alliance", "relation", "offer", "banner", "alliance_order"))
        assert np.array_equal(perm[s.player_alliance], t.player_alliance)
        assert np.array_equal(s.relation[:, np.argsort(perm)][:, :, np.argsort(perm)], t.relation)
        assert np.array_equal(s.offer[:, np.argsort(perm)][:, :, np.argsort(perm)], t.offer)
        bs, bt = ev_s.get("battle"), ev_t.get("battle")
        if bs:
            assert np.array_equal(perm[bs["attacker_alliance"]], bt["attacker_alliance"])
            assert np.array_equal(perm[bs["defender_alliance"]], bt["defender_alliance"])
            np.add.at(destroyed_s, bs["attacker_alliance"], bs["destroyed"])
            np.add.at(destroyed_t, bt["attacker_alliance"], bt["destroyed"])
        assert_events_equal(ev_s, ev_t, skip_kinds=("battle", "launch", "diplomacy"))
    assert destroyed_s[0] > 0 and destroyed_s[1] > 0, destroyed_s
    assert destroyed_t[1] == destroyed_s[0] and destroyed_t[0] == destroyed_s[1]
    assert np.array_equal(destroyed_t[2:], destroyed_s[2:])
