"""The rules written plainly: the specification the fast engine is tested against.

``action_mask``, ``encode`` and ``step`` here have the signatures of the fast ones
(``actions.py``, ``observation.py``, ``rules.py``) and loop over worlds, seats, villages
and armies one at a time, reading the config's formulas directly. They are slow (use
them on a few worlds) and they are the place to read what a rule *is*; the fast modules
are the place to read how it is made fast. ``tests/test_reference.py`` holds the two to
each other on random trajectories of every built-in scenario: masks, events and integer
state exactly, floating-point values to rounding (the fast engine sums in other orders).

Sizes: B worlds, V village sites, P seats (+1 barbarian seat), A alliances (+1
barbarian alliance), M army slots, U units, K buildings, R resources, N rows.
"""

from __future__ import annotations

import numpy as np

from . import rng as rngmod
from .actions import DIPLOMACY_VERBS
from .actions import layout_for as action_layout
from .config import (
    ALLY,
    ARMY_ATTACK,
    ARMY_RETURN,
    ARMY_SETTLE,
    ARMY_SUPPORT,
    BARRACKS,
    BUILDINGS,
    FARM,
    HQ,
    MARKET,
    MINE,
    NO_OWNER,
    PEACE,
    RAM,
    RESOURCES,
    SPEAR,
    TIMBER,
    UNITS,
    WALL,
    WAR,
    GameConfig,
)
from .events import Events
from .observation import SELF_FEATURES
from .observation import layout_for as observation_layout
from .state import State

# --- quantities of one village and one seat ---------------------------------------------


def pop_used(config: GameConfig, s: State, b: int, v: int) -> float:
    """Population of village v: its troops at home and the armies that left from it."""
    used = float(np.dot(s.troops[b, v], config.unit_pop))
    for m in range(config.max_armies):
        if s.army_active[b, m] and s.army_src[b, m] == v:
            used += float(np.dot(s.army_troops[b, m], config.unit_pop))
    return used


def pop_cap(config: GameConfig, s: State, b: int, v: int) -> float:
    return float(config.pop_cap(np.array(s.buildings[b, v, FARM])))


def storage(config: GameConfig, s: State, b: int, v: int) -> float:
    return float(config.storage(np.array(s.buildings[b, v, HQ])))


def own_villages(s: State, b: int, p: int) -> list[int]:
    return [v for v in range(s.owner.shape[1]) if s.owner[b, v] == p]


def best_village(s: State, b: int, p: int, score) -> tuple[int, float]:
    """The seat's village with the highest score (the lowest site on ties), and the score;
    (0, -inf) for a seat without villages."""
    best, value = 0, -np.inf
    for v in own_villages(s, b, p):
        if score(v) > value:
            best, value = v, score(v)
    return best, value


def sources(config: GameConfig, s: State, b: int, p: int) -> dict:
    """Where the seat's attacks, supports, trades and settlers leave from."""
    offence_weight = config.unit_attack * config.unit_offensive + config.unit_offensive
    attack, offence = best_village(s, b, p, lambda v: float(np.dot(s.troops[b, v], offence_weight)))
    support, spears = best_village(s, b, p, lambda v: float(s.troops[b, v, SPEAR]))
    main, _ = best_village(s, b, p, lambda v: float(s.resources[b, v].sum()))
    return dict(attack=attack, has_offense=offence > 0, support=support, has_spears=spears > 0, main=main,
                n_own=len(own_villages(s, b, p)))


def alliance_of_site(s: State, b: int, v: int) -> int:
    """The owner's alliance, -1 for a free site."""
    return -1 if s.owner[b, v] < 0 else int(s.player_alliance[b, s.owner[b, v]])


def can_build(config: GameConfig, s: State, b: int, v: int, k: int) -> bool:
    level = s.buildings[b, v, k]
    if level >= config.building_max_level:
        return False
    cost = config.building_cost()[k, level]
    return bool(np.all(s.resources[b, v] >= cost))


def can_train(config: GameConfig, s: State, b: int, v: int, u: int) -> bool:
    if s.buildings[b, v, BARRACKS] < config.unit_barracks_level[u]:
        return False
    if not np.all(s.resources[b, v] >= config.unit_cost[u] * config.unit_batch[u]):
        return False
    return pop_used(config, s, b, v) + config.unit_pop[u] * config.unit_batch[u] <= pop_cap(config, s, b, v)


def can_found(config: GameConfig, s: State, b: int, p: int, src: dict) -> bool:
    return bool(np.all(s.resources[b, src["main"]] >= config.found_cost)) and 0 < src["n_own"] < config.max_own_villages


# --- the mask ---------------------------------------------------------------------------


def legal_diplomacy(s: State, b: int, mine: int, other: int, verb: str) -> bool:
    if other == mine:
        return False
    rel = s.relation[b, mine, other]
    if verb == "declare_war":
        return rel != WAR
    if verb == "offer_peace":
        return rel == WAR and s.offer[b, mine, other] != PEACE + 1
    if verb == "offer_alliance":
        return rel == PEACE and s.offer[b, mine, other] != ALLY + 1
    return s.offer[b, other, mine] > 0  # accept


def legal_row_verb(config: GameConfig, s: State, b: int, p: int, v: int, verb: str, src: dict) -> bool:
    """Verb on site v for an active seat p (the army verbs need a free army slot)."""
    army_slot_free = not s.army_active[b].all()
    mine = int(s.player_alliance[b, p])
    site_alliance = alliance_of_site(s, b, v)
    occupied = s.owner[b, v] >= 0
    if verb == "attack":
        return army_slot_free and occupied and site_alliance != mine and src["has_offense"]
    if verb == "support":
        friendly = (occupied and s.owner[b, v] != config.barbarian_player
                    and (site_alliance == mine or s.relation[b, mine, site_alliance] == ALLY))
        return army_slot_free and friendly and src["has_spears"] and v != src["support"]
    if verb == "found":
        return army_slot_free and not occupied and can_found(config, s, b, p, src)
    if s.owner[b, v] != p:
        return False
    if verb.startswith("build_"):
        return can_build(config, s, b, v, BUILDINGS.index(verb[len("build_"):]))
    return can_train(config, s, b, v, [f"train_{u}" for u in UNITS].index(verb))


def action_mask(config: GameConfig, state: State, players, diplomacy=True, economy=None) -> np.ndarray:
    """bool[B, n, n_actions]: the legal actions of the listed seats (an inactive seat: noop only).
    ``diplomacy`` (one bool, or one per listed seat) allows the diplomacy verbs; ``economy`` is unused."""
    players = np.atleast_1d(np.asarray(players, dtype=np.int64))
    L = action_layout(config)
    allow_diplomacy = np.broadcast_to(np.asarray(diplomacy, bool), (len(players),))
    mask = np.zeros((state.batch_size, len(players), L.n_actions), bool)
    for b in range(state.batch_size):
        for i, p in enumerate(players):
            mask[b, i, L.noop] = True
            if not state.player_active[b, p]:
                continue
            src = sources(config, state, b, p)
            main = src["main"]
            market = state.buildings[b, main, MARKET] > 0
            mask[b, i, L.trade] = market and state.resources[b, main, 0] >= config.trade_amount
            mask[b, i, L.trade + 1] = market and state.resources[b, main, 1] >= config.trade_amount
            if allow_diplomacy[i]:
                mine = int(state.player_alliance[b, p])
                for row, other in enumerate(state.alliance_order[b]):
                    for verb in DIPLOMACY_VERBS:
                        mask[b, i, L.diplomacy_action(row, verb)] = legal_diplomacy(state, b, mine, int(other), verb)
            for row, v in enumerate(state.row_village[b, p]):
                for verb in L.row_verbs:
                    mask[b, i, L.row_action(row, verb)] = legal_row_verb(config, state, b, p, int(v), verb, src)
    return mask


# --- the observation --------------------------------------------------------------------


def _log(x: float) -> float:
    return np.log1p(max(x, 0.0)) / 6.0


def encode(config: GameConfig, state: State, players, out=None, economy=None) -> np.ndarray:
    """float32[B, n, size]: what each listed seat sees (``ObservationLayout`` names the columns)."""
    players = np.atleast_1d(np.asarray(players, dtype=np.int64))
    O = observation_layout(config)
    s = state
    B, V = s.owner.shape
    K, U, R = config.n_buildings, config.n_units, config.n_resources
    obs = np.zeros((B, len(players), O.size), np.float32)
    defence_weight = config.unit_def_inf
    offence_weight = config.unit_attack * config.unit_offensive
    for b in range(B):
        attacks = [m for m in range(config.max_armies) if s.army_active[b, m] and s.army_kind[b, m] == ARMY_ATTACK]
        for i, p in enumerate(players):
            p = int(p)
            mine = int(s.player_alliance[b, p])
            own = own_villages(s, b, p)
            o = obs[b, i]
            own_table, rows, dip = O.split(o)

            # --- self
            on_me = [m for m in attacks if s.owner[b, s.army_dst[b, m]] == p]
            away = sum((s.army_troops[b, m] for m in range(config.max_armies)
                        if s.army_active[b, m] and s.army_owner[b, m] == p), np.zeros(U))
            home = sum((s.troops[b, v] for v in own), np.zeros(U))
            self_values = {
                "time": s.tick[b] / config.episode_length,
                "n_villages": len(own) / config.max_own_villages,
                "pop_used": sum(pop_used(config, s, b, v) for v in own)
                / max(sum(pop_cap(config, s, b, v) for v in own), 1),
                "incoming_attacks": min(len(on_me), 5) / 5.0,
                "incoming_eta": min([30] + [s.army_arrive[b, m] - s.tick[b] for m in on_me]) / 30.0,
            }
            total_storage = max(sum(storage(config, s, b, v) for v in own), 1)
            for r, name in enumerate(RESOURCES):
                self_values[f"res_{name}"] = sum(s.resources[b, v, r] for v in own) / total_storage
            for u, name in enumerate(UNITS):
                self_values[f"troops_{name}"] = _log(home[u] + away[u])
            for col, name in enumerate(SELF_FEATURES):
                own_table[col] = self_values[name]

            # --- village rows
            for j, v in enumerate(s.row_village[b, p]):
                v = int(v)
                row = rows[j]
                col = O.village_col
                owner = int(s.owner[b, v])
                site_alliance = alliance_of_site(s, b, v)
                is_own = owner == p
                row[col("is_own")] = is_own
                row[col("is_player")] = owner >= 0 and owner != config.barbarian_player and not is_own
                row[col("is_barbarian")] = owner == config.barbarian_player
                row[col("is_free")] = owner == NO_OWNER
                others = owner >= 0 and not is_own  # the alliance columns describe other seats' villages
                row[col("same_alliance")] = others and site_alliance == mine
                if config.relation_in_rows and others and site_alliance != mine:
                    rel = s.relation[b, mine, site_alliance]
                    row[col("rel_war")], row[col("rel_peace")], row[col("rel_ally")] = rel == WAR, rel == PEACE, rel == ALLY
                if owner >= 0:
                    for d in range(config.banner_dim):
                        row[col(f"banner_{d}")] = s.banner[b, site_alliance, d] * config.banner_scale
                row[col("distance")] = s.distance[b, s.home[b, p], v] / config.map_scale
                row[col("integrity")] = s.integrity[b, v] / config.integrity_max
                troops = s.troops[b, v].astype(np.float32)
                row[col("defence")] = _log(float(np.dot(troops, defence_weight)))
                row[col("offence")] = _log(float(np.dot(troops, offence_weight)))
                row[col("level")] = s.buildings[b, v].sum() / (K * config.building_max_level)
                row[col("wall")] = s.buildings[b, v, WALL] / config.building_max_level
                by_owner = sum(1 for m in on_me if owner >= 0 and s.army_owner[b, m] == owner)
                row[col("attacking_me")] = min(by_owner, 3) / 3.0
                mine_there = sum(1 for m in attacks if s.army_owner[b, m] == p and s.army_dst[b, m] == v)
                row[col("my_attack_en_route")] = min(mine_there, 3) / 3.0
                if is_own:
                    for r, name in enumerate(RESOURCES):
                        row[col(f"own_res_{name}")] = s.resources[b, v, r] / storage(config, s, b, v)
                    row[col("own_pop")] = pop_used(config, s, b, v) / pop_cap(config, s, b, v)
                    for u, name in enumerate(UNITS):
                        row[col(f"own_troops_{name}")] = _log(float(s.troops[b, v, u]))
                    for k, name in enumerate(BUILDINGS):
                        row[col(f"own_{name}")] = s.buildings[b, v, k] / config.building_max_level

            # --- diplomacy table, in the world's shuffled alliance order
            for a, other in enumerate(s.alliance_order[b]):
                other = int(other)
                row = dip[a]
                col = O.diplomacy_col
                for d in range(config.banner_dim):
                    row[col(f"banner_{d}")] = s.banner[b, other, d] * config.banner_scale
                row[col("is_mine")] = other == mine
                if other != mine:
                    rel = s.relation[b, mine, other]
                    row[col("rel_war")], row[col("rel_peace")], row[col("rel_ally")] = rel == WAR, rel == PEACE, rel == ALLY
                row[col("offer_to_me")] = s.offer[b, other, mine] > 0
                row[col("offer_by_me")] = s.offer[b, mine, other] > 0
                row[col("villages")] = sum(1 for v in range(V) if alliance_of_site(s, b, v) == other) / 10.0
    return obs
