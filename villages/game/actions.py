"""The legality mask of the discrete action space (``layouts.ActionLayout``), and the
village-level quantities it shares with ``rules``: economy, sources, affordability."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import ALLY, BARRACKS, FARM, HQ, MARKET, PEACE, SPEAR, WAR, GameConfig
from .state import State
from .tables import Tables, tables

# --- static tables, cached per config ------------------------------------------------


def by_level(table: np.ndarray, level: np.ndarray, formula) -> np.ndarray:
    """table[level], or the formula itself for levels outside the table."""
    level = np.asarray(level)
    if level.size and (level.min() < 0 or level.max() >= len(table)):
        return formula(level)
    return table.take(level)


def levels_in_table(t: Tables, level: np.ndarray) -> bool:
    """Every level in [0, t.levels): the tables hold them all (``by_level`` would use the table)."""
    if level.dtype == np.int64:  # one reduction: a negative level is a huge unsigned one
        return not level.size or int(level.view(np.uint64).max()) < t.levels
    return not level.size or (level.min() >= 0 and level.max() < t.levels)


def weighted_units(t: Tables, troops: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """(troops * weight).sum(-1) for int troops [..., U]: a matrix product when the weights are
    integers (every partial sum is an exact integer, so the order of summation cannot matter)."""
    if t.integer_weights and troops.dtype.kind in "iu":
        return troops @ weight
    return sum_last(troops * weight)


def sum_last(x: np.ndarray) -> np.ndarray:
    """x.sum(-1), bit for bit, without numpy's slow reduction over a short last axis.

    (numpy adds fewer than 8 elements strictly left to right, starting from the first.)"""
    n = x.shape[-1]
    if n >= 8 or n == 0:
        return x.sum(-1)
    out = x[..., 0].copy()
    for i in range(1, n):
        out += x[..., i]
    return out


# --- village-level quantities shared by the mask and the rules ----------------------


def army_pop_by_village(config: GameConfig, state: State) -> np.ndarray:
    """Population away from home, charged to each army's source village: [B, V]."""
    B, V = state.owner.shape
    fm = state.army_active.reshape(-1).nonzero()[0]  # flat (world, slot), in (world, slot) order (np.flatnonzero)
    M = state.army_active.shape[1]
    pop = weighted_units(tables(config), state.army_troops.reshape(B * M, -1).take(fm, axis=0), config.unit_pop)
    site = (fm // M) * V + state.army_src.take(fm)  # flat (world, site)
    return np.bincount(site, weights=pop, minlength=B * V).reshape(B, V)


def village_economy(config: GameConfig, state: State):
    """(pop_used [B,V], pop_cap [B,V], storage [B,V])."""
    return _economy(config, state)[:3]


def _economy(config: GameConfig, state: State):
    """``village_economy`` and whether every building level is in the tables."""
    t = tables(config)
    pop_used = weighted_units(t, state.troops, config.unit_pop) + army_pop_by_village(config, state)
    if levels_in_table(t, state.buildings):  # (one range check instead of two per column)
        return pop_used, t.pop_cap.take(state.buildings[..., FARM]), t.storage.take(state.buildings[..., HQ]), True
    pop_cap = by_level(t.pop_cap, state.buildings[..., FARM], config.pop_cap)
    storage = by_level(t.storage, state.buildings[..., HQ], config.storage)
    return pop_used, pop_cap, storage, False


def _can_build_at(config: GameConfig, resources, owner, building, level) -> np.ndarray:
    """Elementwise: raising ``building`` from ``level`` is affordable with ``resources`` [..., R] and allowed."""
    t = tables(config)
    level = np.asarray(level)
    if level.size and level.min() >= 0 and level.max() < t.levels:
        flat = np.asarray(building) * t.levels + level
        ok = resources[..., 0] >= t.build_limit[0].take(flat)  # +inf cost at the maximum level
        for r in range(1, config.n_resources):
            ok &= resources[..., r] >= t.build_limit[r].take(flat)
        return ok & (owner >= 0)
    flat = np.asarray(building) * t.levels + np.minimum(level, config.building_max_level)
    ok = (level < config.building_max_level) & (owner >= 0)
    for r in range(config.n_resources):
        ok &= resources[..., r] >= t.build_cost[r].take(flat)
    return ok


def can_build(config: GameConfig, state: State) -> np.ndarray:
    """bool[B, V, K]: the next level of each building is affordable and allowed."""
    K = config.n_buildings
    return _can_build_at(config, state.resources[:, :, None, :], state.owner[..., None], np.arange(K), state.buildings)


def _can_train_at(config: GameConfig, resources, owner, barracks, pop_used, pop_cap, unit) -> np.ndarray:
    """Elementwise: one batch of ``unit`` is affordable, fits the farm and the barracks."""
    t = tables(config)
    ok = barracks >= config.unit_barracks_level[unit]
    for r in range(config.n_resources):
        ok &= resources[..., r] >= t.batch_cost[unit, r]
    if t.exact_pop:
        # Integer-valued floats: pop_used + batch <= cap  <=>  cap - pop_used >= batch, exactly.
        ok &= (pop_cap - pop_used) >= t.batch_pop[unit]
    else:
        ok &= (pop_used + 0.0) + t.batch_pop[unit] <= pop_cap
    return ok & (owner >= 0)


def can_train(config: GameConfig, state: State, pop_used, pop_cap) -> np.ndarray:
    """bool[B, V, U]: one batch of each unit is affordable, fits the farm and the barracks."""
    U = config.n_units
    return _can_train_at(config, state.resources[:, :, None, :], state.owner[..., None],
                         state.buildings[..., BARRACKS, None], np.asarray(pop_used)[..., None],
                         np.asarray(pop_cap)[..., None], np.arange(U))


def player_villages(config: GameConfig, state: State, players: np.ndarray) -> np.ndarray:
    """bool[B, n, V]: which sites each listed seat owns."""
    return state.owner[:, None, :] == players[None, :, None]


def pick_village(score: np.ndarray, owns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argmax of a village score [B, V] over each seat's own villages [B, n, V]."""
    masked = np.where(owns, score[:, None, :], -np.inf)
    best = masked.argmax(-1)
    value = np.take_along_axis(masked, best[..., None], -1)[..., 0]
    return best, value


def _pick_by_owner(score: np.ndarray, group: np.ndarray, site: np.ndarray, n_groups: int):
    """Per owner group (``group`` [B*V] = world * groups + owner slot): the first site with the
    highest score, and that score. The same as ``pick_village`` (argmax, lowest site on ties;
    site 0 and -inf for a group without sites) in O(B*V) instead of O(B*n*V)."""
    V = score.shape[1]
    flat = score.ravel()
    best_value = np.full(n_groups, -np.inf)
    np.maximum.at(best_value, group, flat)
    best = np.full(n_groups, V)
    np.minimum.at(best, group, np.where(flat == best_value[group], site, V))
    return np.where(best == V, 0, best), best_value


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
    players = np.atleast_1d(np.asarray(players, dtype=np.int64))
    B, V = state.owner.shape
    t = tables(config)
    G = config.n_players + 2  # owner slots per world: free sites, seats, barbarians
    group = (np.arange(B)[:, None] * G + (state.owner + 1)).ravel()
    site = np.broadcast_to(np.arange(V), (B, V)).ravel()
    col = np.arange(B)[:, None] * G + players[None, :] + 1  # [B, n]
    off = weighted_units(t, state.troops, t.offence_weight).astype(float)
    attack, off_value = _pick_by_owner(off, group, site, B * G)  # the strongest offensive army
    support, sp_value = _pick_by_owner(state.troops[..., SPEAR].astype(float), group, site, B * G)  # most spears
    main, _ = _pick_by_owner(sum_last(state.resources), group, site, B * G)  # the richest
    n_own = np.bincount(group, minlength=B * G)
    return Sources(attack[col], off_value[col] > 0, support[col], sp_value[col] > 0, main[col], n_own[col])


def gather_v(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """x[B, V, ...] gathered at per-world site indices idx[B, ...] -> [B, ..., ...]."""
    B = x.shape[0]
    b = np.arange(B).reshape((B,) + (1,) * (idx.ndim - 1))
    return x[b, idx]


# --- the mask, assembled from bit codes -------------------------------------------------


_POW2_F32 = 2.0 ** np.arange(24, dtype=np.float32)


def _code(flags: np.ndarray, shift: int = 0) -> np.ndarray:
    """Integer code (bit shift + i = flags[..., i]) of a bool array's last axis, as an exact
    float: float32 up to bit 24, float64 up to 53."""
    n = flags.shape[-1] + shift
    if n <= 24:
        return flags.astype(np.float32) @ _POW2_F32[shift:n]
    if n <= 53:
        return flags.astype(np.float64) @ (2.0 ** np.arange(shift, n))
    raise ValueError(f"cannot code {n} flags exactly")


def world_offsets(B: int, k: int):
    """[B, 1] world * k: the flat offset of each world's rows of k."""
    return (np.arange(B) * k)[:, None]


def _players(players) -> np.ndarray:
    if type(players) is np.ndarray and players.dtype == np.int64 and players.ndim == 1:
        return players
    return np.atleast_1d(np.asarray(players, dtype=np.int64))


def _is_all_seats(players: np.ndarray, P: int) -> bool:
    """players == arange(P)."""
    return len(players) == P and players.tobytes() == np.arange(P).tobytes()


def action_mask(config: GameConfig, state: State, players, diplomacy=True, economy=None) -> np.ndarray:
    """bool[B, n, n_actions] legal actions of the listed seats (inactive seats: noop only).
    ``economy``: what ``village_economy(config, state)`` returns, if the caller has it already."""
    players = _players(players)
    B, V = state.owner.shape
    n, N, A, P = len(players), config.n_rows, config.n_alliances, config.n_players
    K, U = config.n_buildings, config.n_units
    t = tables(config)
    all_seats = _is_all_seats(players, P)
    bV = world_offsets(B, V)  # [B, 1] flat offset of each world's sites
    codes = np.zeros((B, n, 2 + N), np.float64)  # head, diplomacy (0: none), one per row

    active = state.player_active[:, :P] if all_seats else state.player_active[:, players]  # [B, n]
    src = sources(config, state, players)
    main, support, n_own, has_offense, has_spears = src.main, src.support, src.n_own, src.has_offense, src.has_spears
    free_slot = ~state.army_active.all(-1)[:, None]  # [B, 1]: a free army slot
    my_alliance = state.player_alliance[:, :P] if all_seats else state.player_alliance[:, players]  # [B, n]

    # noop, and trade at the richest village, which needs a marketplace.
    main_flat = main + bV  # [B, n]
    main_res = state.resources.reshape(B * V, -1).take(main_flat, axis=0)  # [B, n, R]
    trade = active & (state.buildings[..., MARKET].reshape(-1).take(main_flat) > 0)
    # 1 + 2 * (wood >= amount) + 4 * (iron >= amount), both only with a market (exact small integers).
    codes[..., 0] = ((main_res[..., :2] >= config.trade_amount) & trade[..., None]) @ _TRADE_BITS + 1.0

    # Diplomacy on table rows (alliance_order maps a row to an alliance), computed once per
    # alliance [B, A+1, verb, row] and handed to its active seats.
    if diplomacy is True or diplomacy is False or isinstance(diplomacy, np.bool_):
        any_diplomacy = bool(diplomacy)
    else:
        any_diplomacy = bool(np.any(diplomacy))
    if any_diplomacy:
        A1 = A + 1
        other = state.alliance_order[:, None, :]  # [B, 1, A]
        mine_a = np.arange(A1)[None, :, None]
        world = (np.arange(B) * A1 * A1)[:, None, None]
        mine_other = world + mine_a * A1 + other
        rel = state.relation.reshape(-1).take(mine_other)  # [B, A+1 (mine), A (row)]
        offered_by_me = state.offer.reshape(-1).take(mine_other)
        offered_to_me = state.offer.reshape(-1).take(world + other * A1 + mine_a)
        not_me = other != mine_a
        verbs = np.stack([
            rel != WAR,
            (rel == WAR) & (offered_by_me != PEACE + 1),
            (rel == PEACE) & (offered_by_me != ALLY + 1),
            offered_to_me > 0,
        ], 2) & not_me[:, :, None, :]  # [B, A+1, 4, A]
        by_alliance = _code(verbs.reshape(B, A + 1, -1))  # [B, A+1]
        ok = active & np.asarray(diplomacy, dtype=bool).reshape(-1)[None, :]
        codes[..., 1] = np.where(ok, by_alliance.reshape(-1).take(np.arange(B)[:, None] * A1 + my_alliance), 0)

    # Row verbs. Per site: what its owner may build and train (a code of K + U bits), and
    # per (alliance, site): attackable / supportable / free (bits 0..2); then one code of
    # n_verbs bits per (seat, row), gathered and masked with what the seat can do now.
    owner = state.owner
    owned = owner >= 0
    A1 = A + 1
    buildings, resources = state.buildings, state.resources
    if economy is None:
        pop_used, pop_cap, _, in_table = _economy(config, state)
    else:
        pop_used, pop_cap, _ = economy
        in_table = levels_in_table(t, buildings)
    if in_table:
        flat = buildings + t.build_flat_base  # [B, V, K]
        build = resources[..., 0, None] >= t.build_limit[0].take(flat)
        for r in range(1, config.n_resources):
            build &= resources[..., r, None] >= t.build_limit[r].take(flat)
    else:
        build = _can_build_at(config, resources[:, :, None, :], True, np.arange(K), buildings)
    train = buildings[..., BARRACKS, None] >= config.unit_barracks_level
    for r in range(config.n_resources):
        train &= resources[..., r, None] >= t.batch_cost_by_resource[r]
    if t.exact_pop:
        train &= (pop_cap - pop_used)[..., None] >= t.batch_pop
    else:
        train &= (pop_used + 0.0)[..., None] + t.batch_pop <= pop_cap[..., None]
    # Per site: build k (bit 3 + k), train u (bit 3 + K + u): the row code's bits above the
    # three fixed verbs.
    site_verbs = np.where(owned, _code(np.concatenate([build, train], -1), shift=3), np.float32(0))

    # verdict [B, A+1, V] by a table: (site kind, same alliance, relation) -> bits.
    P1 = state.player_alliance.shape[1]
    alliance = state.player_alliance.reshape(-1).take(np.maximum(owner, 0) + world_offsets(B, P1))  # [B, V]
    # relation (as uint8) + 256 * same alliance, by [b, my alliance, the site's]
    pair = state.relation.view(np.uint8) + np.eye(A1, dtype=np.int64) * 256
    rel_same = pair.reshape(-1).take(((np.arange(B)[:, None, None] * A1 + np.arange(A1)[None, :, None]) * A1) + alliance[:, None, :])  # [B, A+1, V]
    lut = t.verdict
    verdict = lut.table.take(lut.site_kind.take(owner + 1)[:, None, :] + rel_same)

    act = (active & free_slot).view(np.uint8)
    # Found: the richest village holds the cost of every resource; 0 < villages < max_own_villages.
    rich = (np.minimum(main_res[..., 0], main_res[..., 1]) >= config.found_cost if main_res.shape[-1] == 2
            else (main_res >= config.found_cost).all(-1))
    can_found = rich & ((n_own - 1).astype(np.uint64) < config.max_own_villages - 1)  # (0 -> huge)
    seat_bits = (has_offense.view(np.uint8) | (has_spears.view(np.uint8) << 1) | (can_found.view(np.uint8) << 2)) * act
    rv = state.row_village if all_seats else state.row_village[:, players]
    frv = rv + bV[..., None]  # [B, n, N] flat (world, site) of each row
    fixed = verdict.reshape(-1).take((my_alliance * V + bV * A1)[..., None] + rv)
    # No support to the spears' own village.
    fixed &= np.where(rv == support[..., None], (seat_bits & 0xFD)[..., None], seat_bits[..., None])
    mine = (owner.reshape(-1).take(frv) == players[None, :, None]) & active[..., None]
    codes[..., 2:] = np.where(mine, site_verbs.reshape(-1).take(frv), np.float32(0)) + fixed
    return t.mask_plan.assemble(codes)


_TRADE_BITS = np.array([2.0, 4.0])
