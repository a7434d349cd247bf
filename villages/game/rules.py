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

from dataclasses import fields

import numpy as np

from . import rng as rngmod
from .actions import (
    _can_build_at,
    _can_train_at,
    army_pop_by_village,
    by_level,
    levels_in_table,
    sources,
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
    MINE,
    NO_OWNER,
    PEACE,
    RAM,
    SPEAR,
    TIMBER,
    WALL,
    WAR,
    GameConfig,
)
from .events import Events
from .state import State
from .layouts import DIPLOMACY_VERBS
from .layouts import action_layout as layout_for
from .tables import ARMY, BUILD, DIPLOMACY, TRADE, TRAIN, tables

# Fields that never change during an episode are shared, not copied, between states.
_STATIC = ("pos", "distance", "home", "row_village", "alliance_order")
_FIELDS = tuple(f.name for f in fields(State))
# ``step`` replaces these with new arrays before it returns (and never writes into them).
_REPLACED_BY_STEP = ("tick", "key", "invalid_actions")
# ... and shares these with its input: it never writes into them (player_active is replaced
# when a seat is eliminated), or copies them first (relation and offer, in ``_diplomacy``).
_NOT_COPIED_BY_STEP = _REPLACED_BY_STEP + ("player_alliance", "player_active", "banner", "relation", "offer")


def _copy_dynamic(state: State, skip=()) -> State:
    """A new state sharing the static fields (and ``skip``) with ``state``, copies of the rest."""
    names = [n for n in _FIELDS if n not in _STATIC and n not in skip]
    d = state.__dict__
    new = dict(d)
    if len(new) != len(_FIELDS):  # (attributes other than the fields are not carried over)
        new = {name: d[name] for name in _FIELDS}
    for name in names:
        new[name] = new[name].copy()
    s = State.__new__(State)
    s.__dict__ = new
    return s


def travel_ticks(config: GameConfig, distance: np.ndarray, troops: np.ndarray) -> np.ndarray:
    """Ticks to cover ``distance`` at the slowest present unit's pace (>= 1)."""
    present = troops > 0
    table = tables(config).pace
    if table is not None and present.shape[-1] == len(config.unit_speed):
        pace = table.take(present @ _POW2[: present.shape[-1]])  # by the set of unit types present
    else:
        pace = np.where(present, config.unit_speed, 0.0).max(-1)
        pace = np.where(present.any(-1), pace, 1.0)  # settlers walk at pace 1
    return np.maximum(1, np.ceil(distance * pace)).astype(np.int64)


_POW2 = 2 ** np.arange(16, dtype=np.int64)
def step(config: GameConfig, state: State, actions: np.ndarray) -> tuple[State, Events]:
    """Advance every world one tick. ``actions`` is int[B, P] (one command per seat)."""
    actions = np.asarray(actions, dtype=np.int64)
    B, V = state.owner.shape
    P = config.n_players
    if actions.shape != (B, P):
        raise ValueError(f"actions must have shape {(B, P)}, got {actions.shape}")
    s = _copy_dynamic(state, skip=_NOT_COPIED_BY_STEP)
    ev = Events()
    # Sources (where armies and trades leave from) are fixed before production, as the mask saw them:
    # best [B, 3, P] = the attack, support and main (richest) village of each seat.
    src = sources(config, s, np.arange(P))
    best = np.stack([src.attack, src.support, src.main], 1)
    in_table = levels_in_table(tables(config), state.buildings)
    _produce(config, s, in_table)
    _commands(config, s, actions, best, src, state, ev, in_table)
    _arrivals(config, s, ev)
    _upkeep(config, s, ev)
    s.key = _next_key(state.key)
    s.tick = state.tick + 1
    return s, ev


# --- 1. economy ------------------------------------------------------------------


def _produce(config: GameConfig, s: State, in_table: bool) -> None:
    t = tables(config)
    b = s.buildings
    if s.owner.dtype == np.int64:  # a seat's village (not free: -1 is a huge unsigned, not barbarian)
        owned = s.owner.view(np.uint64) < config.barbarian_player
    else:
        owned = (s.owner >= 0) & (s.owner != config.barbarian_player)
    if in_table:
        prod = t.production.take(b[..., TIMBER:MINE + 1] if MINE == TIMBER + 1 else b[..., [TIMBER, MINE]])
        storage = t.storage.take(b[..., 0])[..., None]
    else:
        prod = np.stack([by_level(t.production, b[..., TIMBER], config.production),
                         by_level(t.production, b[..., MINE], config.production)], -1)
        storage = by_level(t.storage, b[..., 0], config.storage)[..., None]
    np.minimum(storage, s.resources + prod, out=s.resources, where=owned[..., None])


# --- 2. commands -----------------------------------------------------------------

def _keep(ok: np.ndarray, inv: np.ndarray, bb: np.ndarray, pp: np.ndarray) -> bool:
    """Marks the commands that are not ``ok`` invalid; True if every one is ok."""
    if np.count_nonzero(ok) == len(ok):
        return True
    bad = ~ok
    inv[bb[bad], pp[bad]] = True
    return False


def _commands(config: GameConfig, s: State, actions: np.ndarray, best: np.ndarray, src, start: State, ev: Events,
              in_table: bool) -> None:
    """Execute one command per seat. Legality is judged on ``start``, the state at the start
    of the tick (what ``action_mask`` saw), so that the rules execute exactly the
    masked-legal commands; the effects apply to ``s`` (after production, so resources only grew).

    Work is done on the compact list of seats that issued each kind of command, in (world,
    seat) order, which is also the order of the events. ``best`` [B, 3, P]: each seat's
    attack, support and main village; ``src`` the full ``Sources`` of the tick-start state."""
    L = layout_for(config)
    P, A = config.n_players, config.n_alliances
    t = tables(config)
    dec = t.decode
    active = s.player_active[:, :P]
    kind = dec.kind.take(actions + 1, mode="clip")  # -1: out of range
    inv = (kind < 0) & active  # invalid commands of active seats
    cb, cp = np.nonzero((kind > 0) & active)  # acting seats (not noop)
    n_cmd = len(cb)
    if n_cmd:
        ck = kind[cb, cp]
        counts = np.bincount(ck, minlength=6).tolist()
        if n_cmd > 1 and counts[ck[0]] != n_cmd:  # group by kind, keeping (world, seat) order
            order = np.argsort(ck, kind="stable")
            cb, cp = cb[order], cp[order]
        ca = actions[cb, cp]
        lo = [0] * 7
        for k in range(6):
            lo[k + 1] = lo[k] + counts[k]
        for k in (TRADE, DIPLOMACY, BUILD, TRAIN, ARMY):  # the rules' order
            if counts[k]:
                i = slice(lo[k], lo[k + 1])
                _COMMAND[k](config, s, start, cb[i], cp[i], ca[i], best, src, inv, ev, t, dec, in_table)
    s.invalid_actions = start.invalid_actions + inv
    if np.count_nonzero(inv):
        bb, pp = np.nonzero(inv)
        ev.add("invalid", world=bb, tick=start.tick[bb], player=pp, action=actions[bb, pp])


def _trade(config, s, start, bb, pp, aa, best, src, inv, ev, t, dec, in_table) -> None:
    L = layout_for(config)
    B, V, K = s.buildings.shape
    R = s.resources.shape[-1]
    v = best[bb, 2, pp]  # the richest village
    fv = bb * V + v  # flat (world, site)
    g = aa - L.trade  # 0: wood -> iron, 1: iron -> wood
    market = s.buildings.take(fv * K + MARKET)
    ok = (market > 0) & (start.resources[bb, v, g] >= config.trade_amount)
    if not _keep(ok, inv, bb, pp):
        fv, g, market = fv[ok], g[ok], market[ok]
        if not len(fv):
            return
    rate = config.trade_rate_base + 0.05 * market
    resources = s.resources.reshape(-1)  # (the step's own C-contiguous copy: a view)
    fg = fv * R + g
    resources[fg] -= config.trade_amount
    hq = s.buildings.take(fv * K + HQ)
    storage = t.storage.take(hq) if in_table else by_level(t.storage, hq, config.storage)
    fg1 = fg + (1 - 2 * g)  # the other resource
    resources[fg1] = np.minimum(storage, resources.take(fg1) + config.trade_amount * rate)


def _diplomacy(config, s, start, bb, pp, aa, best, src, inv, ev, t, dec, in_table) -> None:
    s.relation, s.offer = s.relation.copy(), s.offer.copy()  # (shared with ``start`` until now)
    L = layout_for(config)
    A = config.n_alliances
    dverb, col = np.divmod(aa - L.diplomacy, A)
    x = s.player_alliance[bb, pp]
    y = s.alliance_order[bb, col]
    rel_o = start.relation[bb, x, y]
    offer_to_me = start.offer[bb, y, x]
    offer_by_me = start.offer[bb, x, y]
    legal = np.select(
        [dverb == 0, dverb == 1, dverb == 2, dverb == 3],
        [rel_o != WAR, (rel_o == WAR) & (offer_by_me != PEACE + 1), (rel_o == PEACE) & (offer_by_me != ALLY + 1),
         offer_to_me > 0],
        False,
    ) & (x != y)
    _keep(legal, inv, bb, pp)
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


def _build(config, s, start, bb, pp, aa, best, src, inv, ev, t, dec, in_table) -> None:
    B, V, K = s.buildings.shape
    v = s.row_village[bb, pp, dec.row.take(aa)]
    k = dec.arg.take(aa)
    fv = bb * V + v  # flat (world, site)
    fk = fv * K + k
    # Buildings have not changed since the tick started (production and trade leave them alone).
    level = s.buildings.take(fk)
    # (The owner is the seat itself, so it is >= 0.)
    ok = (s.owner.take(fv) == pp) & _can_build_at(config, start.resources[bb, v], True, k, level)
    if not _keep(ok, inv, bb, pp):
        bb, pp, v, fv, k, fk, level = bb[ok], pp[ok], v[ok], fv[ok], k[ok], fk[ok], level[ok]
        if not len(bb):
            return
    new = level + 1
    resources = s.resources.reshape(B * V, -1)  # (the step's own C-contiguous copies: views)
    resources[fv] = resources.take(fv, axis=0) - config.building_cost()[k, level]  # (one village per seat)
    s.buildings.put(fk, new)
    ev.add("build", world=bb, tick=start.tick[bb], player=pp, village=v, building=k, level=new)


def _train(config, s, start, bb, pp, aa, best, src, inv, ev, t, dec, in_table) -> None:
    B, V, U = s.troops.shape
    v = s.row_village[bb, pp, dec.row.take(aa)]
    u = dec.arg.take(aa)
    fv = bb * V + v  # flat (world, site)
    pop_used = weighted_units(t, start.troops[bb, v], config.unit_pop) + army_pop_by_village(config, start)[bb, v]
    farm = start.buildings[bb, v, FARM]
    pop_cap = t.pop_cap.take(farm) if in_table else by_level(t.pop_cap, farm, config.pop_cap)
    ok = (s.owner.take(fv) == pp) & _can_train_at(config, start.resources[bb, v], True,
                                                  start.buildings[bb, v, BARRACKS], pop_used, pop_cap, u)
    if not _keep(ok, inv, bb, pp):
        bb, pp, v, fv, u = bb[ok], pp[ok], v[ok], fv[ok], u[ok]
        if not len(bb):
            return
    n = config.unit_batch.take(u)
    resources = s.resources.reshape(B * V, -1)  # (the step's own C-contiguous copies: views)
    resources[fv] = resources.take(fv, axis=0) - config.unit_cost.take(u, axis=0) * n[:, None]  # (one village per seat)
    fu = fv * U + u
    s.troops.put(fu, s.troops.take(fu) + n)
    ev.add("train", world=bb, tick=start.tick[bb], player=pp, village=v, unit=u, count=n)


def _army(config, s, start, bb, pp, aa, best, src, inv, ev, t, dec, in_table) -> None:
    """Attack, support, found: the army kind is the verb (ARMY_ATTACK, ARMY_SUPPORT, ARMY_SETTLE)."""
    dst = s.row_village[bb, pp, dec.row.take(aa)]
    kind = dec.arg.take(aa)
    tp = s.owner[bb, dst]
    my_alliance = s.player_alliance[bb, pp]
    occupied = tp >= 0
    t_alliance = np.where(occupied, s.player_alliance[bb, np.maximum(tp, 0)], -1)
    rel_t = start.relation[bb, my_alliance, np.maximum(t_alliance, 0)]  # as the mask saw it
    same = t_alliance == my_alliance
    ok_attack = (kind == 0) & occupied & ~same & src.has_offense[bb, pp]
    friendly = occupied & (tp != config.barbarian_player) & (same | (rel_t == ALLY))
    ok_support = (kind == 1) & friendly & src.has_spears[bb, pp] & (dst != src.support[bb, pp])
    main = src.main[bb, pp]
    n_own = src.n_own[bb, pp]
    ok_found = ((kind == 2) & (tp == NO_OWNER) & (start.resources[bb, main] >= config.found_cost).all(-1)
                & (n_own < config.max_own_villages) & (n_own > 0))
    ok = ok_attack | ok_support | ok_found
    # Army slots: the k-th launch of a world takes its k-th free slot; none left -> invalid.
    launch = ok
    B, M = s.army_active.shape
    free = ~s.army_active
    lb = bb[launch]
    rank = np.arange(len(lb)) - np.searchsorted(lb, lb)  # (commands are in world order)
    fits_l = rank < free.sum(1)[lb]
    if np.count_nonzero(fits_l) == len(fits_l):
        fits = launch
    else:
        fits = np.zeros(len(bb), bool)
        fits[np.nonzero(launch)[0][fits_l]] = True
        rank = rank[fits_l]
    if not _keep(fits, inv, bb, pp):
        bb, pp, dst, tp, kind = bb[fits], pp[fits], dst[fits], tp[fits], kind[fits]
        t_alliance, rel_t = t_alliance[fits], rel_t[fits]
        if not len(bb):
            return
    m = (np.cumsum(free[bb], 1) > rank[:, None]).argmax(1)  # the rank-th free slot
    fm = bb * M + m
    source = best[bb, kind, pp]  # attack source, support source or the richest village
    home_troops = s.troops[bb, source]
    n_kind = np.bincount(kind, minlength=3).tolist()
    # Attacks send the offensive units; support and settlers nothing but ...
    factor = t.send
    if factor is not None:
        sent = home_troops * factor.take(kind, axis=0)
    else:
        sent = np.where((kind == ARMY_ATTACK)[:, None], home_troops * config.unit_offensive, 0)
    if n_kind[ARMY_SUPPORT]:
        # ... support sends half the spears (rounded up): a village never strips itself bare to help.
        sent[:, SPEAR] = np.where(kind == ARMY_SUPPORT, (home_troops[:, SPEAR] + 1) // 2, sent[:, SPEAR])
    s.troops[bb, source] = home_troops - sent  # (one command per seat: the sources are distinct)
    if n_kind[ARMY_SETTLE]:
        settle = kind == ARMY_SETTLE
        s.resources[bb[settle], source[settle]] -= config.found_cost
    arrive = start.tick[bb] + travel_ticks(config, s.distance[bb, source, dst], sent)
    # (The step's arrays are its own C-contiguous copies: put and reshape write into them.)
    s.army_active.put(fm, True)
    s.army_kind.put(fm, kind)
    s.army_owner.put(fm, pp)
    s.army_src.put(fm, source)
    s.army_dst.put(fm, dst)
    s.army_arrive.put(fm, arrive)
    s.army_troops.reshape(B * M, -1)[fm] = sent
    s.army_loot.reshape(B * M, -1)[fm] = 0.0
    ev.add(
        "launch", world=bb, tick=start.tick[bb], player=pp, army=m, kind=kind, src=source, dst=dst,
        target_player=tp, target_alliance=t_alliance, relation=np.where(tp >= 0, rel_t, -1),
        troops=sent, arrive=arrive,
    )


_COMMAND = {TRADE: _trade, DIPLOMACY: _diplomacy, BUILD: _build, TRAIN: _train, ARMY: _army}


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


def _first_per_key(keys: np.ndarray) -> np.ndarray:
    """``np.unique(keys, return_index=True)[1]``: the index of each key's first occurrence, in
    key order (the same stable sort and comparison, without ``np.unique``'s overhead)."""
    if len(keys) < 2:
        return np.arange(len(keys))
    perm = keys.argsort(kind="mergesort")
    aux = keys[perm]
    first = np.empty(len(keys), bool)
    first[0] = True
    np.not_equal(aux[1:], aux[:-1], out=first[1:])
    return perm[first]


def _arrivals(config: GameConfig, s: State, ev: Events) -> None:
    B, V = s.owner.shape
    arrived = s.army_active & (s.army_arrive <= s.tick[:, None])
    ab, am = np.nonzero(arrived)
    if not len(ab):
        return
    # One arrival per village per tick: the lowest slot goes first.
    M = s.army_active.shape[1]
    if len(ab) > 1:
        first = _first_per_key(ab * V + s.army_dst[ab, am])
        b, m = ab[first], am[first]
    else:
        b, m = ab, am
    fm = b * M + m
    v = s.army_dst.take(fm)
    fv = b * V + v
    p = s.army_owner.take(fm)
    kind = s.army_kind.take(fm)
    owner = s.owner.take(fv)
    # Rows by flat index: the step's arrays are its own C-contiguous copies, so these are views.
    troops_v = s.troops.reshape(B * V, -1)
    army_troops = s.army_troops.reshape(B * M, -1)
    my_all = s.player_alliance[b, p]
    occupied = owner >= 0
    t_all = np.where(occupied, s.player_alliance[b, np.maximum(owner, 0)], -1)
    rel = s.relation[b, my_all, np.maximum(t_all, 0)]
    n_kind = np.bincount(kind, minlength=4).tolist()  # arrivals per army kind
    done = None  # arrivals whose army disbands here

    # Returning armies unload at home if home is still theirs; otherwise they are lost.
    if n_kind[ARMY_RETURN]:
        ret = kind == ARMY_RETURN
        home_ok = ret & (owner == p)
        hv, hm = fv[home_ok], fm[home_ok]  # (one arrival per village: distinct villages)
        troops_v[hv] = troops_v.take(hv, axis=0) + army_troops.take(hm, axis=0)
        storage = by_level(tables(config).storage, s.buildings.take(hv * s.buildings.shape[-1] + HQ),
                           config.storage)[:, None]
        resources_v = s.resources.reshape(B * V, -1)
        resources_v[hv] = np.minimum(storage, resources_v.take(hv, axis=0)
                                     + s.army_loot.reshape(B * M, -1).take(hm, axis=0))
        lost = ret & ~home_ok
        if np.count_nonzero(lost):
            ev.add("army_lost", world=b[lost], tick=s.tick[b[lost]], player=p[lost],
                   troops=s.army_troops[b[lost], m[lost]])
        done = ret

    # Supports join a friendly garrison.
    if n_kind[ARMY_SUPPORT]:
        friendly = occupied & (owner != config.barbarian_player) & ((t_all == my_all) | (rel == ALLY))
        sup = (kind == ARMY_SUPPORT) & friendly
        if np.count_nonzero(sup):
            sent = army_troops.take(fm[sup], axis=0)
            sv = fv[sup]
            troops_v[sv] = troops_v.take(sv, axis=0) + sent
            ev.add("support", world=b[sup], tick=s.tick[b[sup]], player=p[sup], village=v[sup], troops=sent)
            done = sup if done is None else done | sup

    # Settlers found a village on a site that is still free.
    if n_kind[ARMY_SETTLE]:
        # A removed seat founds nothing, and settlers arriving together count against the village
        # cap one by one (lowest slot first); settlers who cannot found disband (they carry no troops).
        settle = (kind == ARMY_SETTLE) & (owner == NO_OWNER) & s.player_active[b, p]
        if np.count_nonzero(settle):
            n_own = np.bincount((np.arange(B)[:, None] * (config.n_players + 1) + np.maximum(s.owner, 0)).ravel(),
                                weights=(s.owner >= 0).ravel(), minlength=B * (config.n_players + 1)).reshape(B, -1)
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
            if np.count_nonzero(settle):
                ev.add("found", world=sb, tick=s.tick[sb], player=p[settle], village=sv)
            done = settle if done is None else done | settle

    # Attacks on a village that is gone or friendly by now turn back; the rest fight.
    if n_kind[ARMY_ATTACK]:
        fight = (kind == ARMY_ATTACK) & occupied & (t_all != my_all)
        if np.count_nonzero(fight):
            _battles(config, s, b[fight], m[fight], v[fight], p[fight], owner[fight], rel[fight], ev)
            turn_back = ~fight if done is None else ~done & ~fight
        else:
            turn_back = None if done is None else ~done
    else:
        turn_back = None if done is None else ~done
    if turn_back is None:  # nothing disbands and nothing fights: every arrival turns back
        _send_home(config, s, b, m)
    elif np.count_nonzero(turn_back):
        _send_home(config, s, b[turn_back], m[turn_back])
    if done is not None and np.count_nonzero(done):
        s.army_active.put(fm[done], False)


def _send_home(config: GameConfig, s: State, b, m, troops=None, here=None) -> None:
    """Turn armies around towards their source; empty armies simply disband.
    (``troops`` and ``here``: the armies' troops and position, when known.)"""
    B, M = s.army_active.shape
    fm = b * M + m  # flat (world, slot); the step's arrays are its own C-contiguous copies
    if troops is None:
        troops = s.army_troops.reshape(B * M, -1).take(fm, axis=0)
    has = troops.sum(-1) > 0
    if here is None:
        here = s.army_dst.take(fm)
    home = s.army_src.take(fm)
    s.army_kind.put(fm, ARMY_RETURN)
    s.army_dst.put(fm, home)
    s.army_arrive.put(fm, s.tick[b] + travel_ticks(config, s.distance[b, here, home], troops))
    if np.count_nonzero(has) != len(has):
        s.army_active.put(fm[~has], False)


def _battles(config: GameConfig, s: State, b, m, v, p, defender, rel, ev: Events) -> None:
    if not len(b):
        return
    # Rows by flat (world, site) and (world, slot) indices: the step's arrays are its own
    # C-contiguous copies, so the reshaped views write into them.
    B, V = s.owner.shape
    M = s.army_active.shape[1]
    fv = b * V + v
    fm = b * M + m
    troops_v = s.troops.reshape(B * V, -1)
    resources_v = s.resources.reshape(B * V, -1)
    army_troops = s.army_troops.reshape(B * M, -1)
    att = army_troops.take(fm, axis=0)  # [n, U]
    dfd = troops_v.take(fv, axis=0)
    luck = _luck(config, s.key[b], v)
    w = tables(config).battle
    if w is not None and w.attack_by_type is not None and att.dtype.kind in "iu":
        # Integer troops times integer attack values: exact sums in any order, so a product
        # (the third column, inf + cav, gives a_inf + a_cav exactly).
        a_inf, a_cav, a_all = (att @ w.attack_by_type).T
    else:
        if w is not None:
            a_inf = (att * w.attack_inf).sum(-1)
            a_cav = (att * w.attack_cav).sum(-1)
        else:
            a_inf = (att * config.unit_attack * ~config.unit_is_cavalry).sum(-1)
            a_cav = (att * config.unit_attack * config.unit_is_cavalry).sum(-1)
        a_all = a_inf + a_cav
    A = a_all * luck
    inf_share = np.where(a_all > 0, a_inf / np.maximum(a_all, 1e-9), 1.0)
    per_unit = config.unit_def_inf * inf_share[:, None] + config.unit_def_cav * (1 - inf_share[:, None])
    f_wall = fv * s.buildings.shape[-1] + WALL
    wall = s.buildings.take(f_wall)
    D = ((dfd * per_unit).sum(-1) + config.village_base_defence + config.wall_base_defence * wall) * (1 + config.wall_bonus * wall)
    won = A > D
    # the loser's strength over the winner's
    ratio = (np.where(won, D, A) / np.maximum(np.where(won, A, D), 1e-9)) ** config.loss_exponent
    # np.clip(ratio, 0, 1) (a -0.0 ratio may stay -0.0: it loses the same floor(x * ratio + 0.5) = 0)
    ratio = np.minimum(np.maximum(ratio, 0.0), 1.0)[:, None]
    # Losses at this ratio, attackers and defenders together: [n, 2U].
    U = att.shape[1]
    both = np.concatenate((att, dfd), 1)
    lost = np.minimum(both, np.floor(both * ratio + 0.5).astype(np.int64))
    # The winner loses ``lost``, the loser everything: ``lost`` where (attackers, won) or
    # (defenders, not won), i.e. where won differs from "defender column".
    lost = np.where(won[:, None] != (np.arange(2 * U) >= U), lost, both)  # (columns U..2U-1: the defenders)
    att_lost, def_lost = lost[:, :U], lost[:, U:]
    left = both - lost
    survivors = left[:, :U]
    troops_v[fv] = left[:, U:]

    # Winners plunder what they can carry and damage the village.
    if w is not None and w.loot_exact and survivors.dtype.kind in "iu":
        capacity = (survivors @ w.loot) * won  # integer products and sums: exact in any order
    else:
        capacity = (survivors * config.unit_loot).sum(-1) * won
    avail = resources_v.take(fv, axis=0)
    total = avail.sum(-1)
    take = avail * (np.minimum(total, capacity) / np.maximum(total, 1e-9))[:, None]
    resources_v[fv] = avail - take
    rams = survivors[:, RAM]
    damage = np.where(won, config.damage_per_win + config.damage_per_ram * rams, 0.0)
    integrity = s.integrity.take(fv)
    damage = np.minimum(damage, integrity)  # what was really taken off the village
    integrity = integrity - damage
    s.integrity.put(fv, integrity)
    s.buildings.put(f_wall, np.where(won & (rams > 0), np.maximum(wall - 1, 0), wall))
    destroyed = won & (integrity <= 0)
    if np.count_nonzero(destroyed):
        db, dv = b[destroyed], v[destroyed]
        s.owner[db, dv] = NO_OWNER
        s.buildings[db, dv] = 0
        s.resources[db, dv] = 0.0
        s.troops[db, dv] = 0
        s.integrity[db, dv] = 0.0

    army_troops[fm] = survivors
    s.army_loot.reshape(B * M, -1)[fm] = take
    ev.add(
        "battle", world=b, tick=s.tick[b], army=m, attacker=p, defender=defender, village=v,
        attacker_alliance=s.player_alliance[b, p], defender_alliance=s.player_alliance[b, defender],
        relation=rel, attacker_won=won, destroyed=destroyed, damage=damage, attack=A, defence=D,
        sent=att, attacker_lost=att_lost, defender_troops=dfd, defender_lost=def_lost, loot=take,
    )
    _send_home(config, s, b, m, troops=survivors, here=v)


def _luck(config: GameConfig, key: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Attack strength multiplier in [1 - luck, 1 + luck], drawn per (world, village)."""
    return 1.0 + config.luck * (2 * rngmod.uniform(key, 7, v) - 1)


def _next_key(key: np.ndarray) -> np.ndarray:
    return rngmod.mix(key)


# --- 4. upkeep -------------------------------------------------------------------


def _upkeep(config: GameConfig, s: State, ev: Events) -> None:
    owned = s.owner >= 0
    s.integrity = np.where(owned, np.minimum(config.integrity_max, s.integrity + config.integrity_regen), 0.0)
    B = s.batch_size
    P2 = config.n_players + 2  # per world: free sites, seats, barbarians
    n_sites = np.bincount((s.owner + (np.arange(B) * P2 + 1)[:, None]).ravel(), minlength=B * P2).reshape(B, P2)
    gone = s.player_active & (n_sites[:, 1:] == 0)
    gone[:, config.barbarian_player] = False
    if np.count_nonzero(gone):
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
