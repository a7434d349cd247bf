"""The discrete action space, its legality mask, and helpers shared with ``rules``.

One command per seat per tick. Layout (``ActionLayout``):

    0                      noop
    1, 2                   trade wood->iron, iron->wood (at one's richest village)
    3 ...                  diplomacy on diplomacy-table row a: declare war, offer
                           peace, offer alliance, accept the pending offer
    row_base + j*VERBS+v   verb v on visible village row j: attack, support, found,
                           build <building>, train <unit>

Rows are the n_rows sites nearest a seat's home, so "attack row 3" means "attack the
3rd-nearest site": an entity-style policy scores each row with shared weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .config import ALLY, BARRACKS, BUILDINGS, FARM, HQ, MARKET, NO_OWNER, PEACE, SPEAR, UNITS, WAR, GameConfig
from .state import State

DIPLOMACY_VERBS = ("declare_war", "offer_peace", "offer_alliance", "accept")
ROW_VERBS_FIXED = ("attack", "support", "found")


@dataclass(frozen=True)
class ActionLayout:
    n_rows: int
    n_alliances: int

    @property
    def row_verbs(self) -> tuple[str, ...]:
        return ROW_VERBS_FIXED + tuple(f"build_{b}" for b in BUILDINGS) + tuple(f"train_{u}" for u in UNITS)

    @property
    def n_verbs(self) -> int:
        return len(self.row_verbs)

    noop: int = 0
    trade: int = 1  # two actions: 1 wood->iron, 2 iron->wood

    @property
    def diplomacy(self) -> int:
        return 3

    @property
    def row_base(self) -> int:
        return 3 + len(DIPLOMACY_VERBS) * self.n_alliances

    @property
    def n_actions(self) -> int:
        return self.row_base + self.n_rows * self.n_verbs

    def row_action(self, row, verb: str):
        return self.row_base + np.asarray(row) * self.n_verbs + self.row_verbs.index(verb)

    def diplomacy_action(self, table_row, verb: str):
        return self.diplomacy + DIPLOMACY_VERBS.index(verb) * self.n_alliances + np.asarray(table_row)

    @cached_property
    def names(self) -> tuple[str, ...]:
        out = ["noop", "trade_wood_to_iron", "trade_iron_to_wood"]
        out += [f"{v}:{a}" for v in DIPLOMACY_VERBS for a in range(self.n_alliances)]
        out += [f"{v}:row{j}" for j in range(self.n_rows) for v in self.row_verbs]
        return tuple(out)


def layout_for(config: GameConfig) -> ActionLayout:
    return ActionLayout(config.n_rows, config.n_alliances)


# --- village-level quantities shared by the mask and the rules ----------------------


def army_pop_by_village(config: GameConfig, state: State) -> np.ndarray:
    """Population away from home, charged to each army's source village: [B, V]."""
    B, V = state.owner.shape
    pop = (state.army_troops * config.unit_pop).sum(-1) * state.army_active
    flat = (np.arange(B)[:, None] * V + state.army_src).ravel()
    return np.bincount(flat, weights=pop.ravel(), minlength=B * V).reshape(B, V)


def village_economy(config: GameConfig, state: State):
    """(pop_used [B,V], pop_cap [B,V], storage [B,V])."""
    pop_used = (state.troops * config.unit_pop).sum(-1) + army_pop_by_village(config, state)
    pop_cap = config.pop_cap(state.buildings[..., FARM])
    storage = config.storage(state.buildings[..., HQ])
    return pop_used, pop_cap, storage


def can_build(config: GameConfig, state: State) -> np.ndarray:
    """bool[B, V, K]: the next level of each building is affordable and allowed."""
    level = state.buildings
    cost = config.building_cost()[np.arange(config.n_buildings), np.minimum(level, config.building_max_level)]
    res = state.resources[:, :, None, :]
    ok = (res[..., 0] >= cost[..., 0]) & (res[..., 1] >= cost[..., 1]) & (level < config.building_max_level)
    return ok & (state.owner >= 0)[..., None]


def can_train(config: GameConfig, state: State, pop_used, pop_cap) -> np.ndarray:
    """bool[B, V, U]: one batch of each unit is affordable, fits the farm and the barracks."""
    batch_cost = config.unit_cost * config.unit_batch[:, None]  # [U, R]
    res = state.resources[:, :, None, :]
    afford = (res[..., 0] >= batch_cost[:, 0]) & (res[..., 1] >= batch_cost[:, 1])
    room = (pop_used + 0.0)[..., None] + config.unit_pop * config.unit_batch <= pop_cap[..., None]
    barracks = state.buildings[..., BARRACKS, None] >= config.unit_barracks_level
    return afford & room & barracks & (state.owner >= 0)[..., None]


def player_villages(config: GameConfig, state: State, players: np.ndarray) -> np.ndarray:
    """bool[B, n, V]: which sites each listed seat owns."""
    return state.owner[:, None, :] == players[None, :, None]


def pick_village(score: np.ndarray, owns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argmax of a village score [B, V] over each seat's own villages [B, n, V]."""
    masked = np.where(owns, score[:, None, :], -np.inf)
    best = masked.argmax(-1)
    value = np.take_along_axis(masked, best[..., None], -1)[..., 0]
    return best, value


@dataclass
class Sources:
    """Per seat: where its attacks, supports, trades and settlers leave from."""

    attack: np.ndarray  # [B, n] village with the strongest offensive army
    has_offense: np.ndarray  # [B, n]
    support: np.ndarray  # [B, n] village with the most spears
    has_spears: np.ndarray
    main: np.ndarray  # [B, n] richest village
    n_own: np.ndarray  # [B, n]


def sources(config: GameConfig, state: State, players: np.ndarray) -> Sources:
    owns = player_villages(config, state, players)
    off = (state.troops * (config.unit_attack * config.unit_offensive + config.unit_offensive)).sum(-1)
    attack, off_value = pick_village(off.astype(float), owns)
    support, sp_value = pick_village(state.troops[..., SPEAR].astype(float), owns)
    main, _ = pick_village(state.resources.sum(-1), owns)
    return Sources(attack, off_value > 0, support, sp_value > 0, main, owns.sum(-1))


def gather_v(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """x[B, V, ...] gathered at per-world site indices idx[B, ...] -> [B, ..., ...]."""
    B = x.shape[0]
    b = np.arange(B).reshape((B,) + (1,) * (idx.ndim - 1))
    return x[b, idx]


def action_mask(config: GameConfig, state: State, players, diplomacy=True) -> np.ndarray:
    """bool[B, n, n_actions] legal actions of the listed seats (inactive seats: noop only)."""
    players = np.atleast_1d(np.asarray(players, dtype=np.int64))
    L = layout_for(config)
    B, n, N, A = state.batch_size, len(players), config.n_rows, config.n_alliances
    mask = np.zeros((B, n, L.n_actions), dtype=bool)
    mask[..., L.noop] = True
    active = state.player_active[:, players]  # [B, n]
    pop_used, pop_cap, _ = village_economy(config, state)
    src = sources(config, state, players)
    free_slot = (~state.army_active).any(-1)[:, None]  # [B, 1]
    my_alliance = state.player_alliance[:, players]  # [B, n]

    # Trade at the richest village, which needs a marketplace.
    main_res = gather_v(state.resources, src.main)  # [B, n, R]
    market = gather_v(state.buildings[..., MARKET], src.main) > 0
    mask[..., L.trade] = active & market & (main_res[..., 0] >= config.trade_amount)
    mask[..., L.trade + 1] = active & market & (main_res[..., 1] >= config.trade_amount)

    # Diplomacy on table rows (alliance_order maps a row to an alliance).
    if np.any(diplomacy):
        other = state.alliance_order[:, None, :]  # [B, 1, A]
        b = np.arange(B)[:, None, None]
        rel = state.relation[b, my_alliance[..., None], other]  # [B, n, A]
        offered_to_me = state.offer[b, other, my_alliance[..., None]]
        offered_by_me = state.offer[b, my_alliance[..., None], other]
        not_me = other != my_alliance[..., None]
        ok = active[..., None] & not_me & np.asarray(diplomacy, dtype=bool).reshape(-1, 1)[None, ..., 0, None]
        d = L.diplomacy
        mask[..., d : d + A] = ok & (rel != WAR)
        mask[..., d + A : d + 2 * A] = ok & (rel == WAR) & (offered_by_me != PEACE + 1)
        mask[..., d + 2 * A : d + 3 * A] = ok & (rel == PEACE) & (offered_by_me != ALLY + 1)
        mask[..., d + 3 * A : d + 4 * A] = ok & (offered_to_me > 0)

    # Row verbs.
    rv = state.row_village[:, players]  # [B, n, N]
    row_owner = gather_v(state.owner, rv)
    row_alliance = np.where(row_owner >= 0, gather_v(state.player_alliance, np.maximum(row_owner, 0)), -1)
    rel = state.relation[np.arange(B)[:, None, None], my_alliance[..., None], np.maximum(row_alliance, 0)]
    mine = row_owner == players[None, :, None]
    same_alliance = row_alliance == my_alliance[..., None]
    occupied = row_owner >= 0
    act = active[..., None] & free_slot[..., None]
    rows = mask[..., L.row_base :].reshape(B, n, N, L.n_verbs)
    rows[..., 0] = act & occupied & ~same_alliance & src.has_offense[..., None]
    friendly = occupied & (row_owner != config.barbarian_player) & (same_alliance | (rel == ALLY))
    rows[..., 1] = act & friendly & src.has_spears[..., None] & (rv != src.support[..., None])
    main_afford = (gather_v(state.resources, src.main) >= config.found_cost).all(-1)
    can_found = main_afford & (src.n_own < config.max_own_villages) & (src.n_own > 0)
    rows[..., 2] = act & (row_owner == NO_OWNER) & can_found[..., None]
    K = config.n_buildings
    rows[..., 3 : 3 + K] = (active[..., None] & mine)[..., None] & gather_v(can_build(config, state), rv)
    trainable = can_train(config, state, pop_used, pop_cap)
    rows[..., 3 + K :] = (active[..., None] & mine)[..., None] & gather_v(trainable, rv)
    return mask
