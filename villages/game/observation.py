"""Observation encoding: a flat float32 vector made of three named tables.

    [ SELF_FEATURES | n_rows x VILLAGE_FEATURES | n_alliances x DIPLOMACY_FEATURES ]

Column names are defined once here; networks, diagnostics and renderers look columns
up by name (``ObservationLayout.village_col("rel_war")``), never by magic index.

Identity and relation are both observable: every row carries its owner alliance's
banner, and the diplomacy table carries each alliance's banner with its relation to
you. Whether each village row *also* carries the relation directly is the
``GameConfig.relation_in_rows`` setting (off = the "simplicity prior" ablation).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .actions import village_economy
from .config import ALLY, ARMY_ATTACK, BUILDINGS, PEACE, RESOURCES, SPEAR, UNITS, WALL, WAR, GameConfig
from .state import State

SELF_FEATURES = (
    ("time",)
    + ("n_villages", "pop_used", "incoming_attacks", "incoming_eta")
    + tuple(f"res_{r}" for r in RESOURCES)
    + tuple(f"troops_{u}" for u in UNITS)
)


def village_features(banner_dim: int) -> tuple[str, ...]:
    return (
        ("is_own", "is_player", "is_barbarian", "is_free", "same_alliance")
        + tuple(f"banner_{i}" for i in range(banner_dim))
        + ("rel_war", "rel_peace", "rel_ally", "distance", "integrity", "defence", "offence", "level", "wall")
        + ("attacking_me", "my_attack_en_route")
        + tuple(f"own_res_{r}" for r in RESOURCES)
        + ("own_pop",)
        + tuple(f"own_troops_{u}" for u in UNITS)
        + tuple(f"own_{b}" for b in BUILDINGS)
    )


def diplomacy_features(banner_dim: int) -> tuple[str, ...]:
    return (tuple(f"banner_{i}" for i in range(banner_dim))
            + ("is_mine", "rel_war", "rel_peace", "rel_ally", "offer_to_me", "offer_by_me", "villages"))


@dataclass(frozen=True)
class ObservationLayout:
    n_rows: int
    n_alliances: int
    banner_dim: int

    @cached_property
    def village(self) -> tuple[str, ...]:
        return village_features(self.banner_dim)

    @cached_property
    def diplomacy(self) -> tuple[str, ...]:
        return diplomacy_features(self.banner_dim)

    @property
    def self_size(self) -> int:
        return len(SELF_FEATURES)

    @property
    def rows_start(self) -> int:
        return self.self_size

    @property
    def diplomacy_start(self) -> int:
        return self.rows_start + self.n_rows * len(self.village)

    @property
    def size(self) -> int:
        return self.diplomacy_start + self.n_alliances * len(self.diplomacy)

    def village_col(self, name: str) -> int:
        return self.village.index(name)

    def diplomacy_col(self, name: str) -> int:
        return self.diplomacy.index(name)

    def split(self, obs):
        """(self [.., S], rows [.., N, F], diplomacy [.., A, G]) views of a flat observation.

        Works on numpy arrays and torch tensors alike."""
        lead = obs.shape[:-1]
        own = obs[..., : self.rows_start]
        rows = obs[..., self.rows_start : self.diplomacy_start].reshape(*lead, self.n_rows, len(self.village))
        dip = obs[..., self.diplomacy_start :].reshape(*lead, self.n_alliances, len(self.diplomacy))
        return own, rows, dip


_LAYOUTS: dict = {}


def layout_for(config: GameConfig) -> ObservationLayout:
    key = (config.n_rows, config.n_alliances, config.banner_dim)
    L = _LAYOUTS.get(key)
    if L is None:
        L = _LAYOUTS[key] = ObservationLayout(*key)
    return L


_COLS: dict = {}
_W32: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _weights32(config: GameConfig):
    w = _W32.get(config)
    if w is None:
        w = _W32[config] = (config.unit_def_inf.astype(np.float32),
                            (config.unit_attack * config.unit_offensive).astype(np.float32))
    return w


def _col_lookup(L: ObservationLayout, table: str = "village"):
    """name -> column index of the village (or diplomacy) table, as a dict lookup."""
    key = (L, table)
    get = _COLS.get(key)
    if get is None:
        names = L.village if table == "village" else L.diplomacy
        get = _COLS[key] = {name: i for i, name in enumerate(names)}.__getitem__
    return get


def _log(x) -> np.ndarray:
    return np.log1p(np.maximum(x, 0)) / 6.0


def encode(config: GameConfig, state: State, players, out: np.ndarray | None = None) -> np.ndarray:
    """float32[B, n, size] observations of the listed seats (written into ``out`` if given:
    a float32[B, n, size] buffer; reusing one saves memory traffic)."""
    players = np.atleast_1d(np.asarray(players, dtype=np.int64))
    L = layout_for(config)
    B, V = state.owner.shape
    n, N, A, D = len(players), config.n_rows, config.n_alliances, config.banner_dim
    P1 = config.n_players + 1
    A1 = state.relation.shape[1]  # alliances + barbarians
    # World offsets of flat indices (0 for a single world: one numpy operation less per gather).
    b3 = np.arange(B)[:, None, None] if B > 1 else 0
    b2 = np.arange(B)[:, None] if B > 1 else 0
    pop_used, pop_cap, storage = village_economy(config, state)
    my_alliance = state.player_alliance[:, players]  # [B, n]
    # Gathers go through flat indices and ``take``: several times faster than indexing
    # with broadcast index arrays (x[b3, i, j]), and the same values.

    # Armies: who is attacking whom, and where my attacks are headed.
    atk = state.army_active & (state.army_kind == ARMY_ATTACK)
    M = state.army_dst.shape[1]
    dst_owner = state.owner.reshape(-1).take(state.army_dst + b2 * V)
    q = state.army_owner
    flat = (b2 * P1 + q) * P1 + np.maximum(dst_owner, 0)
    attacks = np.bincount(flat[atk & (dst_owner >= 0)], minlength=B * P1 * P1)  # flat [B, from, to]
    flat_v = (b2 * P1 + q) * V + state.army_dst
    en_route = np.bincount(flat_v[atk], minlength=B * P1 * V)  # flat [B, from, site]
    eta = np.where(atk & (dst_owner >= 0), state.army_arrive - state.tick[:, None], 10**6)

    # --- village table ---------------------------------------------------------
    # Player-independent columns are computed once per site [B, V, F], then gathered
    # into each seat's rows; only the few seat-dependent columns are filled per row.
    F = len(L.village)
    c = _col_lookup(L)
    U, K = config.n_units, config.n_buildings
    owner_v = state.owner
    occ_v = owner_v >= 0
    alliance_v = np.where(occ_v, state.player_alliance.reshape(-1).take(np.maximum(owner_v, 0) + b2 * P1), -1)
    troops_v = state.troops.astype(np.float32)
    vt = np.zeros((B, V, F), dtype=np.float32)
    vt[..., c("is_barbarian")] = owner_v == config.barbarian_player
    vt[..., c("is_free")] = ~occ_v
    site_banner = state.banner.reshape(B * A1, D).take((b2 * A1 + np.maximum(alliance_v, 0)).ravel(), axis=0)
    vt[..., c("banner_0") : c("banner_0") + D] = site_banner.reshape(B, V, D) * (occ_v[..., None] * config.banner_scale)
    vt[..., c("integrity")] = state.integrity / config.integrity_max
    w_def, w_off = _weights32(config)
    vt[..., c("defence")] = _log(troops_v @ w_def)
    vt[..., c("offence")] = _log(troops_v @ w_off)
    vt[..., c("level")] = state.buildings.sum(-1) / (K * config.building_max_level)
    vt[..., c("wall")] = state.buildings[..., WALL] / config.building_max_level
    own_cols = slice(c("own_res_wood"), c(f"own_{BUILDINGS[-1]}") + 1)
    vt[..., c("own_res_wood") : c("own_res_wood") + 2] = state.resources / storage[..., None]
    vt[..., c("own_pop")] = pop_used / pop_cap
    vt[..., c("own_troops_levy") : c("own_troops_levy") + U] = _log(troops_v)
    k0 = c(f"own_{BUILDINGS[0]}")
    vt[..., k0 : k0 + K] = state.buildings / config.building_max_level
    # The own-village columns are shown on one's own rows only (elsewhere 0: they hold
    # finite values >= 0, so this equals multiplying them by "mine").
    own_v = vt[..., own_cols].reshape(B * V, -1)
    vt_other = vt.copy()
    vt_other[..., own_cols] = 0.0

    rv = state.row_village if n == state.row_village.shape[1] and players.tobytes() == np.arange(n).tobytes() \
        else state.row_village[:, players]  # [B, n, N]
    frv = rv + (np.arange(B) * V)[:, None, None]  # flat (world, site) of each row
    if out is None:
        out = np.empty((B, n, L.size), dtype=np.float32)
    elif out.shape != (B, n, L.size) or out.dtype != np.float32:
        raise ValueError(f"out must be float32{[B, n, L.size]}, got {out.dtype}{list(out.shape)}")
    f = out[..., L.rows_start : L.diplomacy_start].reshape(B, n, N, F)
    f[...] = vt_other.reshape(B * V, F).take(frv.ravel(), axis=0).reshape(B, n, N, F)
    owner = owner_v.reshape(-1).take(frv)
    occupied = owner >= 0
    o = np.maximum(owner, 0)
    alliance = alliance_v.reshape(-1).take(frv)
    mine = owner == players[None, :, None]
    mb, mi, mr = np.nonzero(mine)
    f[mb, mi, mr, own_cols] = own_v.take(frv[mb, mi, mr], axis=0)
    f[..., c("is_own")] = mine
    f[..., c("is_player")] = occupied & (owner != config.barbarian_player) & ~mine
    f[..., c("same_alliance")] = occupied & (alliance == my_alliance[..., None]) & ~mine
    if config.relation_in_rows:
        rel = state.relation.reshape(-1).take((b3 * A1 + my_alliance[..., None]) * A1 + np.maximum(alliance, 0))
        shown = occupied & (alliance != my_alliance[..., None])
        f[..., c("rel_war")] = (rel == WAR) & shown
        f[..., c("rel_peace")] = (rel == PEACE) & shown
        f[..., c("rel_ally")] = (rel == ALLY) & shown
    home = state.home[:, players]
    f[..., c("distance")] = state.distance.reshape(-1).take((b3 * V + home[..., None]) * V + rv) / config.map_scale
    seat = players[None, :, None]
    f[..., c("attacking_me")] = np.minimum(attacks.take((b3 * P1 + o) * P1 + seat), 3) / 3.0 * occupied
    f[..., c("my_attack_en_route")] = np.minimum(en_route.take((b3 * P1 + seat) * V + rv), 3) / 3.0

    # --- self ------------------------------------------------------------------
    # Per-seat totals by bincount over sites and armies (no [B, n, V, U] temporaries).
    seat_v = np.where(occ_v, owner_v, P1 - 1)
    flat_v = (b2 * P1 + seat_v).ravel()
    per_seat = lambda x, w: np.bincount(x, weights=w, minlength=B * P1).reshape(B, P1)  # noqa: E731
    # [B, P1, U] in one bincount each (bin (seat, unit) adds its sites in site order, as one per unit would)
    per_seat_unit = lambda x, w: np.bincount(  # noqa: E731
        (x[:, None] * U + np.arange(U)).ravel(), weights=w.ravel(), minlength=B * P1 * U).reshape(B, P1, U)
    troops_seat = per_seat_unit(flat_v, state.troops)
    flat_a = (b2 * P1 + np.where(state.army_active, state.army_owner, P1 - 1)).ravel()
    troops_seat += per_seat_unit(flat_a, state.army_troops)
    own_troops = troops_seat[:, players]
    n_vill = per_seat(flat_v, np.ones(B * V))[:, players]
    pop_u = per_seat(flat_v, pop_used.ravel())[:, players]
    pop_c = per_seat(flat_v, pop_cap.ravel())[:, players]
    R = config.n_resources
    res_seat = np.bincount((flat_v[:, None] * R + np.arange(R)).ravel(), weights=state.resources.ravel(),
                           minlength=B * P1 * R).reshape(B, P1, R)
    store_seat = per_seat(flat_v, storage.ravel())[:, players]
    incoming = atk[:, None, :] & (dst_owner[:, None, :] == players[None, :, None])
    g = out[..., : L.self_size]
    g[..., 0] = state.tick[:, None] / config.episode_length
    g[..., 1] = n_vill / config.max_own_villages
    g[..., 2] = pop_u / np.maximum(pop_c, 1)
    g[..., 3] = np.minimum(incoming.sum(-1), 5) / 5.0
    g[..., 4] = np.minimum(np.where(incoming, eta[:, None], 10**6).min(-1), 30) / 30.0
    g[..., 5:7] = res_seat[:, players] / np.maximum(store_seat, 1)[..., None]
    g[..., 7 : 7 + config.n_units] = _log(own_troops)

    # --- diplomacy table (rows in a per-world shuffled alliance order) ------------
    order = state.alliance_order[:, None, :]  # [B, 1, A]
    mine_a = my_alliance[..., None]  # [B, n, 1]
    rel_d = state.relation.reshape(-1).take((b3 * A1 + mine_a) * A1 + order)  # [B, n, A]
    ally_villages = np.bincount(
        (b2 * (config.n_alliances + 1) + np.where(occ_v, alliance_v, config.n_alliances)).ravel(),
        minlength=B * (config.n_alliances + 1)).reshape(B, -1)
    d = out[..., L.diplomacy_start :].reshape(B, n, A, len(L.diplomacy))
    dc = _col_lookup(L, "diplomacy")
    is_mine = order == mine_a
    row_banner = state.banner.reshape(B * A1, D).take((b2 * A1 + state.alliance_order).ravel(), axis=0)
    d[..., dc("banner_0") : dc("banner_0") + D] = row_banner.reshape(B, 1, A, D) * config.banner_scale
    d[..., dc("is_mine")] = is_mine
    for col, value in (("rel_war", WAR), ("rel_peace", PEACE), ("rel_ally", ALLY)):
        d[..., dc(col)] = (rel_d == value) & ~is_mine
    d[..., dc("offer_to_me")] = state.offer.reshape(-1).take((b3 * A1 + order) * A1 + mine_a) > 0
    d[..., dc("offer_by_me")] = state.offer.reshape(-1).take((b3 * A1 + mine_a) * A1 + order) > 0
    d[..., dc("villages")] = ally_villages.reshape(-1).take(state.alliance_order + b2 * (config.n_alliances + 1))[:, None, :] / 10.0
    return out
