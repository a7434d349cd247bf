"""Observation encoding into the named tables of ``layouts.ObservationLayout``.

Identity and relation are both observable: every row carries its owner alliance's
banner, and the diplomacy table carries each alliance's banner with its relation to
you. Whether each village row *also* carries the relation directly is the
``GameConfig.relation_in_rows`` setting (off = the "simplicity prior" ablation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .actions import _players, village_economy
from .config import ALLY, ARMY_ATTACK, BUILDINGS, PEACE, WALL, WAR, GameConfig
from .layouts import ObservationLayout
from .layouts import observation_layout as layout_for
from .state import State
from .tables import tables

# Relation lookups: a code per (seat, row) is the relation as uint8 (0..255) or one of
# these, and _FLAGS turns it into a block of four columns at once: same_alliance (village
# rows) or is_mine (diplomacy rows), rel_war, rel_peace, rel_ally (other alliances only).
_OWN_ALLIANCE, _FREE = 256, 257  # (_FREE: a free site, or one's own village: no flags)
_FLAGS = np.zeros((258, 4), np.float32)
_FLAGS[[_OWN_ALLIANCE, WAR, PEACE, ALLY], [0, 1, 2, 3]] = 1.0
_FLAGS.flags.writeable = False
_FREE_PAIR = np.array([_FREE, 0, 0], np.int16)  # (code, offer to me, offer by me) of no alliance
_OWN_FLAGS = np.array([1.0, 0.0], np.float32)  # is_own, is_player on one's own rows
_FUSE_ROWS = 256


def _put(dst: np.ndarray, src) -> None:
    """``dst[...] = src`` for a block of a few adjacent columns: at once for a few rows (one
    call), else column by column (assigned at once, numpy loops innermost over the short
    column axis, several times slower than one strided loop per column)."""
    if dst.size <= _FUSE_ROWS * dst.shape[-1] or np.ndim(src) == 0:
        dst[...] = src
    else:
        for k in range(dst.shape[-1]):
            dst[..., k] = src[..., k]


def _banner_scales(A1: int, scale: float) -> np.ndarray:
    """float64 [A1 + 1, 1]: 0.0 for a free site's banner (row 0), ``scale`` for alliances."""
    k = np.full((A1 + 1, 1), float(scale))
    k[0] = 0.0
    return k


def _site_kind(P1: int, barbarian: int) -> np.ndarray:
    """float32 [P1 + 1, 3] by owner + 1: (is_player, is_barbarian, is_free) of a site."""
    k = np.zeros((P1 + 1, 3), np.float32)
    k[1:, 0] = 1.0
    k[0, 2] = 1.0
    k[barbarian + 1] = (0.0, 1.0, 0.0)
    return k


@dataclass(frozen=True, eq=False)
class _Offsets:
    """Flat-index offsets of each world for a batch size."""

    V: np.ndarray  # [B, 1] world * V
    VV: np.ndarray  # [B, 1] world * V * V
    A: np.ndarray  # [B, 1] world * A1
    A_1: np.ndarray  # [B, 1] world * (A1 + 1)
    P: np.ndarray  # [B, 1] world * P1
    P_1: np.ndarray  # [B, 1] world * (P1 + 1)
    PV: np.ndarray  # [B, 1] world * P1 * V
    seat_cols: np.ndarray  # [B, 1, C] bins (world, seat + 1, column) of seat 0, per-seat sums
    army_units: np.ndarray  # [B, 1, U] bins (world, seat + 1, unit) of seat 0, army troops
    ones: np.ndarray  # float64 [B, V, 1]
    thirty: np.ndarray  # int64 [B * (P1 + 1)] 30s
    minus_one: np.ndarray  # int64 [B, 1]


def _offsets(B: int, V: int, P1: int, A1: int, C: int, U: int) -> _Offsets:
    b = np.arange(B)[:, None]
    return _Offsets(
        V=b * V, VV=b * (V * V), A=b * A1, A_1=b * (A1 + 1), P=b * P1, P_1=b * (P1 + 1), PV=b * (P1 * V),
        seat_cols=((b * (P1 + 1) + 1) * C)[:, :, None] + np.arange(C),
        army_units=((b * (P1 + 1) + 1) * U)[:, :, None] + np.arange(U),
        ones=np.ones((B, V, 1)),
        thirty=np.full(B * (P1 + 1), 30),
        minus_one=np.full((B, 1), -1, np.int64),
    )


def _log(x) -> np.ndarray:
    return np.log1p(np.maximum(x, 0)) / 6.0


def encode(config: GameConfig, state: State, players, out: np.ndarray | None = None, economy=None) -> np.ndarray:
    """float32[B, n, size] observations of the listed seats (written into ``out`` if given:
    a float32[B, n, size] buffer; reusing one saves memory traffic). ``economy``: what
    ``village_economy(config, state)`` returns, if the caller has it already.

    Every number is computed by the same operations on the same values whatever the batch
    size: gathers go through flat indices and ``take`` (several times cheaper than indexing
    with broadcast index arrays), and several columns come out of one lookup or one
    ``bincount`` (per-bin sums add the same values in the same order as one per column)."""
    players = _players(players)
    L = layout_for(config)
    t = tables(config)
    cols = t.columns
    c, dc = cols.v, cols.d
    B, V = state.owner.shape
    n, N, A, D = len(players), config.n_rows, config.n_alliances, config.banner_dim
    P1 = config.n_players + 1
    A1 = state.relation.shape[1]  # alliances + barbarians
    U, K, R = config.n_units, config.n_buildings, config.n_resources
    C = U + R + 4  # per-seat sums: troops, resources, pop used, pop cap, storage, villages
    off = _offsets(B, V, P1, A1, C, U)
    pop_used, pop_cap, storage = village_economy(config, state) if economy is None else economy
    all_seats = n == P1 - 1 and players.tobytes() == np.arange(n).tobytes()
    my_alliance = state.player_alliance[:, :n] if all_seats else state.player_alliance[:, players]  # [B, n]
    owner_v = state.owner

    # --- armies: who is attacking whom, and where my attacks are headed -------------
    atk = state.army_active & (state.army_kind == ARMY_ATTACK)
    dst = state.army_dst
    q = state.army_owner
    dst_owner = owner_v.reshape(-1).take(dst + off.V)
    en_route = np.bincount((q * V + dst + off.PV)[atk], minlength=B * P1 * V)  # [B, attacker seat, site]
    # Per army: (world, target seat + 1) of an attack on a seat; bin 0 of its world otherwise.
    target1 = np.where(atk & (dst_owner >= 0), dst_owner + 1, 0) + off.P_1
    # attacks [B, target seat + 1, attacker seat + 1] (row 0: no target; column 0, "attacked by a
    # free site", stays 0), and per target the attacks headed there and the soonest arrival
    # (capped at 30, as shown)
    attacks = np.bincount((target1 * (P1 + 1) + (q + 1)).ravel(), minlength=B * (P1 + 1) * (P1 + 1))
    target1 = target1.ravel()
    incoming = np.bincount(target1, minlength=B * (P1 + 1))
    eta = off.thirty.copy()
    np.minimum.at(eta, target1, (state.army_arrive - state.tick[:, None]).ravel())

    # --- village table ---------------------------------------------------------
    # Seat-independent columns are computed once per site, twice: as others see a site
    # (``vt[0]``) and as its owner does (``vt[1]``: is_own, the own-village columns). Each row
    # gathers its site from one of the two, then gets its seat-dependent columns.
    F = len(L.village)
    owner1 = owner_v + 1  # (free sites: 0)
    alliance1 = np.concatenate((off.minus_one, state.player_alliance), 1).reshape(-1).take(owner1 + off.P_1) + 1
    alliance1_flat = alliance1 + off.A_1  # flat (world, alliance + 1) of each site (free: alliance 0)
    troops_v = state.troops.astype(np.float32)
    vt = np.zeros((2, B, V, F), dtype=np.float32)
    others = vt[0]
    _put(others[..., 1:4], _site_kind(P1, config.barbarian_player).take(owner1, axis=0))
    # Banners by alliance + 1, scaled in float64 (as banner * (occupied * scale) was); a free
    # site shows alliance 0's banner times 0.0.
    banner = np.concatenate((state.banner[:, :1], state.banner), 1) * _banner_scales(A1, config.banner_scale)
    b0 = c["banner_0"]
    others[..., b0 : b0 + D] = banner.reshape(-1, D).take(alliance1_flat, axis=0)
    others[..., c["integrity"]] = state.integrity / config.integrity_max
    # defence, offence and the own troops columns: one _log of [B, V, 2 + U] float32
    w_def, w_off = t.defence_weight32, t.offence_weight32
    logs = _log(np.concatenate(((troops_v @ w_def)[..., None], (troops_v @ w_off)[..., None], troops_v), -1))
    d0 = c["defence"]
    _put(others[..., d0 : d0 + 2], logs[..., :2])
    others[..., c["level"]] = state.buildings.sum(-1) / (K * config.building_max_level)
    others[..., c["wall"]] = state.buildings[..., WALL] / config.building_max_level
    own = vt[1]
    own[...] = others
    _put(own[..., 0:2], _OWN_FLAGS)  # is_own, not is_player
    r0 = c["own_res_wood"]
    own[..., r0 : r0 + R] = state.resources / storage[..., None]
    own[..., c["own_pop"]] = pop_used / pop_cap
    t0 = c["own_troops_levy"]
    own[..., t0 : t0 + U] = logs[..., 2:]
    k0 = c[f"own_{BUILDINGS[0]}"]
    own[..., k0 : k0 + K] = state.buildings / config.building_max_level

    rv = state.row_village if all_seats else state.row_village[:, players]  # [B, n, N] site of each row
    frv = rv + off.V[..., None]  # [B, n, N] flat (world, site) of each row
    owner = owner_v.reshape(-1).take(frv)
    mine = owner == players[None, :, None]
    if out is None:
        out = np.empty((B, n, L.size), dtype=np.float32)
    elif out.shape != (B, n, L.size) or out.dtype != np.float32:
        raise ValueError(f"out must be float32{[B, n, L.size]}, got {out.dtype}{list(out.shape)}")
    f = out[..., L.rows_start : L.diplomacy_start].reshape(B, n, N, F)
    f[...] = vt.reshape(2 * B * V, F).take(frv + mine * (B * V), axis=0)
    # Alliance columns (village rows and the diplomacy table) by one lookup:
    # pairs[b, mine, other alliance + 1] = (code, offer to me, offer by me), where the code is
    # the relation, _OWN_ALLIANCE on the diagonal and _FREE for other alliance + 1 = 0 (a free
    # site, and one's own rows), so "shown only for others" needs no extra test.
    pairs = np.empty((B, A1, A1 + 1, 3), np.int16)
    pairs[:, :, 0] = _FREE_PAIR
    pairs[:, :, 1:, 0] = state.relation.view(np.uint8)
    pairs.reshape(B, -1, 3)[:, 1 :: A1 + 2, 0] = _OWN_ALLIANCE  # the diagonal [a, a + 1]
    pairs[:, :, 1:, 1] = state.offer.transpose(0, 2, 1)
    pairs[:, :, 1:, 2] = state.offer
    pairs = pairs.reshape(-1, 3)
    my_pairs = ((my_alliance + off.A) * (A1 + 1))[..., None]  # [B, n, 1] flat (world, mine, 0)
    alliance_row = np.where(mine, 0, alliance1.reshape(-1).take(frv))  # [B, n, N] alliance + 1 (own rows: 0)
    row_code = pairs.take(my_pairs + alliance_row, axis=0)[..., 0]
    if config.relation_in_rows:
        flags = _FLAGS.take(row_code, axis=0)  # [B, n, N, 4]
        f[..., c["same_alliance"]] = flags[..., 0]
        w0 = c["rel_war"]
        _put(f[..., w0 : w0 + 3], flags[..., 1:])
    else:
        f[..., c["same_alliance"]] = row_code == _OWN_ALLIANCE
    home = state.home[:, :n] if all_seats else state.home[:, players]
    f[..., c["distance"]] = state.distance.reshape(-1).take((home * V + off.VV)[..., None] + rv) / config.map_scale
    a0 = c["attacking_me"]
    seat = players + off.P  # [B, n] flat (world, seat)
    seat1 = players + 1
    seat1_flat = seat1 + off.P_1  # [B, n] flat (world, seat + 1)
    attacking_me = attacks.take((seat1_flat * (P1 + 1) + 1)[..., None] + owner)  # by the row's owner (free: bin 0)
    my_attacks = en_route.take((seat * V)[..., None] + rv)
    both = np.concatenate((attacking_me[..., None], my_attacks[..., None]), -1)
    _put(f[..., a0 : a0 + 2], np.minimum(both, 3) / 3.0)

    # --- self ------------------------------------------------------------------
    # Per-seat sums of the site columns (troops, resources, pop used, pop cap, storage,
    # villages) in one bincount over bins (world, owner + 1, column), and the armies' troops.
    site_cols = np.concatenate((state.troops, state.resources, pop_used[..., None], pop_cap[..., None],
                                storage[..., None], off.ones), -1)
    per_seat = np.bincount((owner_v[..., None] * C + off.seat_cols).ravel(), weights=site_cols.ravel(),
                           minlength=B * (P1 + 1) * C).reshape(B, P1 + 1, C)
    army_seat = np.where(state.army_active, q, P1 - 1)
    army_troops = np.bincount((army_seat[..., None] * U + off.army_units).ravel(), weights=state.army_troops.ravel(),
                              minlength=B * (P1 + 1) * U).reshape(B, P1 + 1, U)
    sums = per_seat.take(seat1, axis=1)  # [B, n, C]
    own_troops = sums[..., :U] + army_troops.take(seat1, axis=1)
    g = out[..., : L.self_size]
    g[..., 0] = state.tick[:, None] / config.episode_length
    g[..., 1] = sums[..., C - 1] / config.max_own_villages
    g[..., 2] = sums[..., U + R] / np.maximum(sums[..., U + R + 1], 1)
    g[..., 3] = np.minimum(incoming.take(seat1_flat), 5) / 5.0
    g[..., 4] = eta.take(seat1_flat) / 30.0
    g[..., 5 : 5 + R] = sums[..., U : U + R] / np.maximum(sums[..., U + R + 2], 1)[..., None]
    g[..., 5 + R : 5 + R + U] = _log(own_troops)
    g[..., 5 + R + U :] = 0.0  # the scenario's own self columns (layouts.SCENARIO_SELF_FEATURES): its layer fills them

    # --- diplomacy table (rows in a per-world shuffled alliance order) ------------
    order1 = state.alliance_order + 1  # [B, A] alliance + 1 of each row
    dip = pairs.take(my_pairs + order1[:, None, :], axis=0)  # [B, n, A, 3]
    ally_villages = np.bincount(alliance1_flat.ravel(), minlength=B * (A1 + 1))  # [B, alliance + 1]
    d = out[..., L.diplomacy_start :].reshape(B, n, A, len(L.diplomacy))
    row_banner = state.banner.reshape(B * A1, D).take((off.A + state.alliance_order).ravel(), axis=0)
    d[..., dc["banner_0"] : dc["banner_0"] + D] = row_banner.reshape(B, 1, A, D) * config.banner_scale
    m0 = dc["is_mine"]
    _put(d[..., m0 : m0 + 4], _FLAGS.take(dip[..., 0], axis=0))
    _put(d[..., m0 + 4 : m0 + 6], dip[..., 1:] > 0)
    d[..., dc["villages"]] = ally_villages.take(order1 + off.A_1)[:, None, :] / 10.0
    return out
