"""The batched step: economy, commands, travel, combat, diplomacy, elimination.

``step(config, state, actions) -> (state, events)`` advances all B worlds one tick with
array operations only. The input state is not modified. Randomness comes from the
per-world keys carried in the state (see ``rng.py``), so the step is pure.

Order within a tick:
1. production (capped by storage);
2. commands, one per seat: diplomacy, trade, build, train, launch armies; legality is
   judged on the tick-start state, exactly as ``action_mask`` judges it; an illegal
   command is executed as a no-op and counted in ``state.invalid_actions``;
3. arrivals: at most one army resolves per village per tick (lowest slot first, the
   others wait a tick), so every battle touches a distinct village and the whole tick
   vectorises; attacks fight, supports join the garrison, settlers found a village,
   returning armies unload their loot;
4. villages regain integrity; seats with no village left are eliminated.
"""

from __future__ import annotations

import numpy as np

from . import rng as rngmod
from .actions import (
    DIPLOMACY_VERBS,
    _can_build_at,
    _can_train_at,
    army_pop_by_village,
    by_level,
    layout_for,
    sources,
    tables,
    weighted_units,
)
from .config import (
    ALLY,
    ARMY_ATTACK,
    ARMY_RETURN,
    ARMY_SETTLE,
    ARMY_SUPPORT,
    BARRACKS,
    FARM,
    HQ,
    MARKET,
    NO_OWNER,
    PEACE,
    RAM,
    SPEAR,
    WALL,
    WAR,
    GameConfig,
)
from .events import Events
from .state import State

# Fields that never change during an episode are shared, not copied, between states.
_STATIC = ("pos", "distance", "home", "row_village", "alliance_order")


def _copy_dynamic(state: State) -> State:
    from dataclasses import fields

    return State(**{f.name: (getattr(state, f.name) if f.name in _STATIC else getattr(state, f.name).copy())
                    for f in fields(state)})


def travel_ticks(config: GameConfig, distance: np.ndarray, troops: np.ndarray) -> np.ndarray:
    """Ticks to cover ``distance`` at the slowest present unit's pace (>= 1)."""
    present = troops > 0
    pace = np.where(present, config.unit_speed, 0.0).max(-1)
    pace = np.where(present.any(-1), pace, 1.0)  # settlers walk at pace 1
    return np.maximum(1, np.ceil(distance * pace)).astype(np.int64)


def step(config: GameConfig, state: State, actions: np.ndarray) -> tuple[State, Events]:
    """Advance every world one tick. ``actions`` is int[B, P] (one command per seat)."""
    s = _copy_dynamic(state)
    actions = np.asarray(actions, dtype=np.int64)
    B, V = s.owner.shape
    P = config.n_players
    if actions.shape != (B, P):
        raise ValueError(f"actions must have shape {(B, P)}, got {actions.shape}")
    ev = Events()
    # Sources (where armies and trades leave from) are fixed before production, as the mask saw them.
    src = sources(config, s, np.arange(P))
    _produce(config, s)
    _commands(config, s, actions, src, state, ev)
    _arrivals(config, s, ev)
    _upkeep(config, s, ev)
    s.key = rngmod.mix(s.key)
    s.tick = s.tick + 1
    return s, ev


# --- 1. economy ------------------------------------------------------------------


def _produce(config: GameConfig, s: State) -> None:
    from .config import MINE, TIMBER

    t = tables(config)
    owned = (s.owner >= 0) & (s.owner != config.barbarian_player)
    prod = np.stack([by_level(t.production, s.buildings[..., TIMBER], config.production),
                     by_level(t.production, s.buildings[..., MINE], config.production)], -1)
    storage = by_level(t.storage, s.buildings[..., 0], config.storage)[..., None]
    s.resources = np.where(owned[..., None], np.minimum(storage, s.resources + prod), s.resources)


# --- 2. commands -----------------------------------------------------------------


def _commands(config: GameConfig, s: State, actions: np.ndarray, src, start: State, ev: Events) -> None:
    """Execute one command per seat. Legality is judged on ``start``, the state at the start
    of the tick (what ``action_mask`` saw), so that the rules execute exactly the masked-legal
    commands; the effects apply to ``s`` (after production, so resources only grew).

    Work is done on the compact list of seats that issued each kind of command, in (world,
    seat) order, which is also the order of the events."""
    L = layout_for(config)
    B, V = s.owner.shape
    P, N, A, K = config.n_players, config.n_rows, config.n_alliances, config.n_buildings
    t = tables(config)
    active = s.player_active[:, :P]
    in_range = (actions >= 0) & (actions < L.n_actions)
    invalid = ~in_range
    cb, cp = np.nonzero(active & in_range & (actions != L.noop))  # acting seats
    ca = actions[cb, cp]
    failed = []  # (worlds, seats) of commands that turned out illegal

    # Trade -----------------------------------------------------------------------
    sel = np.nonzero((ca == L.trade) | (ca == L.trade + 1))[0]
    if len(sel):
        bb, pp = cb[sel], cp[sel]
        v = src.main[bb, pp]
        g = (ca[sel] == L.trade + 1).astype(np.int64)
        market = s.buildings[bb, v, MARKET]
        ok = (market > 0) & (start.resources[bb, v, g] >= config.trade_amount)
        failed.append((bb[~ok], pp[~ok]))
        bb, pp, v, g, market = bb[ok], pp[ok], v[ok], g[ok], market[ok]
        rate = config.trade_rate_base + 0.05 * market
        s.resources[bb, v, g] -= config.trade_amount
        storage = by_level(t.storage, s.buildings[bb, v, HQ], config.storage)
        s.resources[bb, v, 1 - g] = np.minimum(storage, s.resources[bb, v, 1 - g] + config.trade_amount * rate)

    # Diplomacy -------------------------------------------------------------------
    sel = np.nonzero((ca >= L.diplomacy) & (ca < L.row_base))[0]
    if len(sel):
        bb, pp = cb[sel], cp[sel]
        dverb = (ca[sel] - L.diplomacy) // A
        x = s.player_alliance[bb, pp]
        y = s.alliance_order[bb, (ca[sel] - L.diplomacy) % A]
        rel_o = start.relation[bb, x, y]
        offer_to_me = start.offer[bb, y, x]
        offer_by_me = start.offer[bb, x, y]
        legal = np.select(
            [dverb == 0, dverb == 1, dverb == 2, dverb == 3],
            [rel_o != WAR, (rel_o == WAR) & (offer_by_me != PEACE + 1), (rel_o == PEACE) & (offer_by_me != ALLY + 1),
             offer_to_me > 0],
            False,
        ) & (x != y)
        failed.append((bb[~legal], pp[~legal]))
        for code, name in enumerate(DIPLOMACY_VERBS):
            i = np.nonzero(legal & (dverb == code))[0]
            if not len(i):
                continue
            wb, wp, wx, wy = bb[i], pp[i], x[i], y[i]
            if name == "declare_war":
                first = _first_per_pair(wb, wx, wy, A)
                _set_relation(s, wb[first], wx[first], wy[first], WAR, wp[first], ev)
            elif name == "offer_peace":
                s.offer[wb, wx, wy] = PEACE + 1
            elif name == "offer_alliance":
                s.offer[wb, wx, wy] = ALLY + 1
            else:  # accept: a concurrent change this tick may have cleared the offer already
                offered = s.offer[wb, wy, wx]
                keep = np.nonzero(offered > 0)[0]
                keep = keep[_first_per_pair(wb[keep], wx[keep], wy[keep], A)]
                _set_relation(s, wb[keep], wx[keep], wy[keep], offered[keep] - 1, wp[keep], ev)

    # Row verbs: decode once ------------------------------------------------------
    sel = np.nonzero(ca >= L.row_base)[0]
    rb, rp = cb[sel], cp[sel]
    row = (ca[sel] - L.row_base) // L.n_verbs
    verb = (ca[sel] - L.row_base) % L.n_verbs
    target = s.row_village[rb, rp, row]
    t_owner = s.owner[rb, target]
    mine = t_owner == rp

    # Build -----------------------------------------------------------------------
    i = np.nonzero((verb >= 3) & (verb < 3 + K))[0]
    if len(i):
        bb, pp, v, k = rb[i], rp[i], target[i], verb[i] - 3
        ok = mine[i] & _can_build_at(config, start.resources[bb, v], start.owner[bb, v], k, start.buildings[bb, v, k])
        failed.append((bb[~ok], pp[~ok]))
        bb, pp, v, k = bb[ok], pp[ok], v[ok], k[ok]
        if len(bb):
            level = s.buildings[bb, v, k]
            s.resources[bb, v] -= config.building_cost()[k, level]
            s.buildings[bb, v, k] = level + 1
            ev.add("build", world=bb, tick=s.tick[bb], player=pp, village=v, building=k, level=level + 1)

    # Train -----------------------------------------------------------------------
    i = np.nonzero(verb >= 3 + K)[0]
    if len(i):
        bb, pp, v, u = rb[i], rp[i], target[i], verb[i] - 3 - K
        pop_used = weighted_units(t, start.troops[bb, v], config.unit_pop) + army_pop_by_village(config, start)[bb, v]
        pop_cap = by_level(t.pop_cap, start.buildings[bb, v, FARM], config.pop_cap)
        ok = mine[i] & _can_train_at(config, start.resources[bb, v], start.owner[bb, v],
                                     start.buildings[bb, v, BARRACKS], pop_used, pop_cap, u)
        failed.append((bb[~ok], pp[~ok]))
        bb, pp, v, u = bb[ok], pp[ok], v[ok], u[ok]
        if len(bb):
            n = config.unit_batch[u]
            s.resources[bb, v] -= config.unit_cost[u] * n[:, None]
            s.troops[bb, v, u] += n
            ev.add("train", world=bb, tick=s.tick[bb], player=pp, village=v, unit=u, count=n)

    # Armies: attack, support, found ----------------------------------------------
    i = np.nonzero(verb < 3)[0]
    if len(i):
        bb, pp, dst, tv, tp = rb[i], rp[i], target[i], verb[i], t_owner[i]
        my_alliance = s.player_alliance[bb, pp]
        t_alliance = np.where(tp >= 0, s.player_alliance[bb, np.maximum(tp, 0)], -1)
        rel_t = start.relation[bb, my_alliance, np.maximum(t_alliance, 0)]  # as the mask saw it
        occupied = tp >= 0
        same = t_alliance == my_alliance
        ok_attack = (tv == 0) & occupied & ~same & src.has_offense[bb, pp]
        friendly = occupied & (tp != config.barbarian_player) & (same | (rel_t == ALLY))
        ok_support = (tv == 1) & friendly & src.has_spears[bb, pp] & (dst != src.support[bb, pp])
        main = src.main[bb, pp]
        n_own = src.n_own[bb, pp]
        ok_found = ((tv == 2) & (tp == NO_OWNER) & (start.resources[bb, main] >= config.found_cost).all(-1)
                    & (n_own < config.max_own_villages) & (n_own > 0))
        launch = ok_attack | ok_support | ok_found
        # Army slots: the k-th launch of a world takes its k-th free slot; none left -> invalid.
        lb = bb[launch]
        first_of_world = np.r_[True, lb[1:] != lb[:-1]]
        pos = np.arange(len(lb))
        rank = pos - np.maximum.accumulate(np.where(first_of_world, pos, 0))
        free = ~s.army_active
        fits_l = rank < free.sum(1)[lb]
        fits = np.zeros(len(bb), bool)
        fits[np.nonzero(launch)[0][fits_l]] = True
        failed.append((bb[~fits], pp[~fits]))
        go = np.nonzero(fits)[0]
        if len(go):
            bb, pp, dst, tp = bb[go], pp[go], dst[go], tp[go]
            rank = rank[fits_l]
            m = (np.cumsum(free[bb], 1) > rank[:, None]).argmax(1)  # the rank-th free slot
            kind = np.where(ok_attack[go], ARMY_ATTACK, np.where(ok_support[go], ARMY_SUPPORT, ARMY_SETTLE))
            source = np.where(kind == ARMY_ATTACK, src.attack[bb, pp],
                              np.where(kind == ARMY_SUPPORT, src.support[bb, pp], main[go]))
            home_troops = s.troops[bb, source]
            sent = np.where((kind == ARMY_ATTACK)[:, None], home_troops * config.unit_offensive, 0)
            # Support sends half the spears (rounded up): a village never strips itself bare to help.
            sent[:, SPEAR] = np.where(kind == ARMY_SUPPORT, (home_troops[:, SPEAR] + 1) // 2, sent[:, SPEAR])
            s.troops[bb, source] -= sent
            settle = kind == ARMY_SETTLE
            s.resources[bb[settle], source[settle]] -= config.found_cost
            s.army_active[bb, m] = True
            s.army_kind[bb, m] = kind
            s.army_owner[bb, m] = pp
            s.army_src[bb, m] = source
            s.army_dst[bb, m] = dst
            s.army_arrive[bb, m] = s.tick[bb] + travel_ticks(config, s.distance[bb, source, dst], sent)
            s.army_troops[bb, m] = sent
            s.army_loot[bb, m] = 0.0
            ev.add(
                "launch", world=bb, tick=s.tick[bb], player=pp, army=m, kind=kind, src=source, dst=dst,
                target_player=tp, target_alliance=t_alliance[go], relation=np.where(tp >= 0, rel_t[go], -1),
                troops=sent, arrive=s.army_arrive[bb, m],
            )

    for fb, fp in failed:
        invalid[fb, fp] = True
    invalid &= active
    s.invalid_actions = s.invalid_actions + invalid
    bb, pp = np.nonzero(invalid)
    if len(bb):
        ev.add("invalid", world=bb, tick=s.tick[bb], player=pp, action=actions[bb, pp])


def _first_per_pair(bb, x, y, A) -> np.ndarray:
    """Indices of the first command per (world, unordered alliance pair), in seat order.

    Commands of one tick act as if executed in seat order: once the lowest seat has
    changed a pair's relation (which clears the pair's offers), the same change by
    another seat, or the other side accepting a different offer, has nothing left to do.
    Without this, two accepts of different offers between the same pair wrote the two
    halves of the symmetric relation with different values."""
    pair = (bb * (A + 1) + np.minimum(x, y)) * (A + 1) + np.maximum(x, y)
    _, first = np.unique(pair, return_index=True)
    return np.sort(first)


def _set_relation(s: State, bb, x, y, value, by, ev: Events) -> None:
    """Set a symmetric relation and clear pending offers between the two alliances."""
    value = np.broadcast_to(np.asarray(value, np.int8), np.shape(bb))
    s.relation[bb, x, y] = value
    s.relation[bb, y, x] = value
    s.offer[bb, x, y] = 0
    s.offer[bb, y, x] = 0
    if len(bb):
        ev.add("diplomacy", world=bb, tick=s.tick[bb], alliance_a=x, alliance_b=y, relation=value,
               player=np.broadcast_to(by, np.shape(bb)))


# --- 3. arrivals -----------------------------------------------------------------


def _arrivals(config: GameConfig, s: State, ev: Events) -> None:
    B, V = s.owner.shape
    arrived = s.army_active & (s.army_arrive <= s.tick[:, None])
    ab, am = np.nonzero(arrived)
    if not len(ab):
        return
    # One arrival per village per tick: the lowest slot goes first.
    _, first = np.unique(ab * V + s.army_dst[ab, am], return_index=True)
    b, m = ab[first], am[first]
    v = s.army_dst[b, m]
    p = s.army_owner[b, m]
    kind = s.army_kind[b, m]
    owner = s.owner[b, v]
    my_all = s.player_alliance[b, p]
    t_all = np.where(owner >= 0, s.player_alliance[b, np.maximum(owner, 0)], -1)
    rel = s.relation[b, my_all, np.maximum(t_all, 0)]

    # Returning armies unload at home if home is still theirs; otherwise they are lost.
    ret = kind == ARMY_RETURN
    home_ok = ret & (owner == p)
    hb, hv, hm = b[home_ok], v[home_ok], m[home_ok]
    s.troops[hb, hv] += s.army_troops[hb, hm]
    storage = by_level(tables(config).storage, s.buildings[hb, hv, 0], config.storage)[:, None]
    s.resources[hb, hv] = np.minimum(storage, s.resources[hb, hv] + s.army_loot[hb, hm])
    lost = ret & ~home_ok
    if lost.any():
        ev.add("army_lost", world=b[lost], tick=s.tick[b[lost]], player=p[lost], troops=s.army_troops[b[lost], m[lost]])
    done = ret.copy()

    # Supports join a friendly garrison.
    friendly = (owner >= 0) & (owner != config.barbarian_player) & ((t_all == my_all) | (rel == ALLY))
    sup = (kind == ARMY_SUPPORT) & friendly
    s.troops[b[sup], v[sup]] += s.army_troops[b[sup], m[sup]]
    if sup.any():
        ev.add("support", world=b[sup], tick=s.tick[b[sup]], player=p[sup], village=v[sup], troops=s.army_troops[b[sup], m[sup]])
    done |= sup

    # Settlers found a village on a site that is still free.
    n_own = np.bincount((np.arange(B)[:, None] * (config.n_players + 1) + np.maximum(s.owner, 0)).ravel(),
                        weights=(s.owner >= 0).ravel(), minlength=B * (config.n_players + 1)).reshape(B, -1)
    # A removed seat founds nothing, and settlers arriving together count against the village
    # cap one by one (lowest slot first); settlers who cannot found disband (they carry no troops).
    settle = (kind == ARMY_SETTLE) & (owner == NO_OWNER) & s.player_active[b, p]
    if settle.any():
        idx = np.nonzero(settle)[0]
        idx = idx[np.lexsort((m[idx], p[idx], b[idx]))]
        group = b[idx] * (config.n_players + 1) + p[idx]
        first = np.r_[True, group[1:] != group[:-1]]
        rank = np.arange(len(idx)) - np.maximum.accumulate(np.where(first, np.arange(len(idx)), 0))
        settle[idx] = n_own[b[idx], p[idx]] + rank < config.max_own_villages
    sb, sv, sm = b[settle], v[settle], m[settle]
    s.owner[sb, sv] = p[settle]
    s.buildings[sb, sv] = config.start_buildings
    s.resources[sb, sv] = 0.0
    s.integrity[sb, sv] = config.integrity_max
    s.troops[sb, sv] += s.army_troops[sb, sm]
    if settle.any():
        ev.add("found", world=sb, tick=s.tick[sb], player=p[settle], village=sv)
    done |= settle

    # Attacks on a village that is gone or friendly by now turn back; the rest fight.
    fight = (kind == ARMY_ATTACK) & (owner >= 0) & (t_all != my_all)
    turn_back = ~done & ~fight
    _battles(config, s, b[fight], m[fight], v[fight], p[fight], owner[fight], rel[fight], ev)

    tb, tm = b[turn_back], m[turn_back]
    _send_home(config, s, tb, tm)
    s.army_active[b[done], m[done]] = False


def _send_home(config: GameConfig, s: State, b, m) -> None:
    """Turn armies around towards their source; empty armies simply disband."""
    has = s.army_troops[b, m].sum(-1) > 0
    here = s.army_dst[b, m]
    home = s.army_src[b, m]
    s.army_kind[b, m] = ARMY_RETURN
    s.army_dst[b, m] = home
    s.army_src[b, m] = home
    s.army_arrive[b, m] = s.tick[b] + travel_ticks(config, s.distance[b, here, home], s.army_troops[b, m])
    s.army_active[b[~has], m[~has]] = False


def _battles(config: GameConfig, s: State, b, m, v, p, defender, rel, ev: Events) -> None:
    if not len(b):
        return
    att = s.army_troops[b, m]  # [n, U]
    dfd = s.troops[b, v]
    luck = 1.0 + config.luck * (2 * rngmod.uniform(s.key[b], 7, v) - 1)
    a_inf = (att * config.unit_attack * ~config.unit_is_cavalry).sum(-1)
    a_cav = (att * config.unit_attack * config.unit_is_cavalry).sum(-1)
    A = (a_inf + a_cav) * luck
    inf_share = np.where(a_inf + a_cav > 0, a_inf / np.maximum(a_inf + a_cav, 1e-9), 1.0)
    per_unit = config.unit_def_inf * inf_share[:, None] + config.unit_def_cav * (1 - inf_share[:, None])
    wall = s.buildings[b, v, WALL]
    D = ((dfd * per_unit).sum(-1) + config.village_base_defence + config.wall_base_defence * wall) * (1 + config.wall_bonus * wall)
    won = A > D
    ratio = np.where(won, D / np.maximum(A, 1e-9), A / np.maximum(D, 1e-9)) ** config.loss_exponent
    ratio = np.clip(ratio, 0.0, 1.0)[:, None]
    att_lost = np.where(won[:, None], np.minimum(att, np.floor(att * ratio + 0.5).astype(np.int64)), att)
    def_lost = np.where(won[:, None], dfd, np.minimum(dfd, np.floor(dfd * ratio + 0.5).astype(np.int64)))
    survivors = att - att_lost
    s.troops[b, v] = dfd - def_lost

    # Winners plunder what they can carry and damage the village.
    capacity = (survivors * config.unit_loot).sum(-1) * won
    avail = s.resources[b, v]
    total = avail.sum(-1)
    take = avail * (np.minimum(total, capacity) / np.maximum(total, 1e-9))[:, None]
    s.resources[b, v] = avail - take
    rams = survivors[:, RAM]
    damage = np.where(won, config.damage_per_win + config.damage_per_ram * rams, 0.0)
    damage = np.minimum(damage, s.integrity[b, v])  # what was really taken off the village
    s.integrity[b, v] = s.integrity[b, v] - damage
    s.buildings[b, v, WALL] = np.where(won & (rams > 0), np.maximum(wall - 1, 0), wall)
    destroyed = won & (s.integrity[b, v] <= 0)
    db, dv = b[destroyed], v[destroyed]
    s.owner[db, dv] = NO_OWNER
    s.buildings[db, dv] = 0
    s.resources[db, dv] = 0.0
    s.troops[db, dv] = 0
    s.integrity[db, dv] = 0.0

    s.army_troops[b, m] = survivors
    s.army_loot[b, m] = take
    ev.add(
        "battle", world=b, tick=s.tick[b], army=m, attacker=p, defender=defender, village=v,
        attacker_alliance=s.player_alliance[b, p], defender_alliance=s.player_alliance[b, defender],
        relation=rel, attacker_won=won, destroyed=destroyed, damage=damage, attack=A, defence=D,
        sent=att, attacker_lost=att_lost, defender_troops=dfd, defender_lost=def_lost, loot=take,
    )
    _send_home(config, s, b, m)


# --- 4. upkeep -------------------------------------------------------------------


def _upkeep(config: GameConfig, s: State, ev: Events) -> None:
    owned = s.owner >= 0
    s.integrity = np.where(owned, np.minimum(config.integrity_max, s.integrity + config.integrity_regen), 0.0)
    B = s.batch_size
    P1 = config.n_players + 1
    n_own = np.bincount((np.arange(B)[:, None] * P1 + np.maximum(s.owner, 0)).ravel(), weights=owned.ravel(),
                        minlength=B * P1).reshape(B, P1)
    gone = s.player_active & (n_own == 0)
    gone[:, config.barbarian_player] = False
    if gone.any():
        bb, pp = np.nonzero(gone)
        s.player_active = s.player_active & ~gone
        ev.add("eliminated", world=bb, tick=s.tick[bb], player=pp)


# --- scenario-level state changes (called between steps, never by the rules) -----


def set_relation(state: State, worlds, a: int, b: int, value: int, events: Events | None = None) -> State:
    """Set the relation between alliances a and b in the given worlds (mask or indices)."""
    s = _copy_dynamic(state)
    bb = np.nonzero(np.broadcast_to(worlds, (s.batch_size,)))[0] if np.asarray(worlds).dtype == bool else np.asarray(worlds)
    n = len(bb)
    _set_relation(s, bb, np.full(n, a), np.full(n, b), value, np.full(n, -1), events if events is not None else Events())
    return s


def players_leave(config: GameConfig, state: State, leaving: np.ndarray, events: Events | None = None) -> State:
    """Seats in ``leaving`` [B, P] quit: their villages turn barbarian, their armies disband."""
    s = _copy_dynamic(state)
    leaving = np.asarray(leaving, bool) & s.player_active[:, : config.n_players]
    ev = events if events is not None else Events()
    B = s.batch_size
    owner_leaves = np.zeros_like(s.owner, dtype=bool)
    own = s.owner >= 0
    owner_leaves[own] = np.take_along_axis(
        np.concatenate([leaving, np.zeros((B, 1), bool)], 1), np.maximum(s.owner, 0), 1)[own]
    s.owner = np.where(owner_leaves, config.barbarian_player, s.owner)
    army_leaves = s.army_active & np.take_along_axis(leaving, np.minimum(s.army_owner, config.n_players - 1), 1)
    s.army_active = s.army_active & ~army_leaves
    s.army_troops = np.where(army_leaves[..., None], 0, s.army_troops)
    s.player_active[:, : config.n_players] &= ~leaving
    bb, pp = np.nonzero(leaving)
    if len(bb):
        ev.add("left", world=bb, tick=s.tick[bb], player=pp)
    return s
