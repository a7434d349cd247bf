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

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .actions import gather_v, village_economy
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


def layout_for(config: GameConfig) -> ObservationLayout:
    return ObservationLayout(config.n_rows, config.n_alliances, config.banner_dim)


def _relation_onehot(rel: np.ndarray) -> np.ndarray:
    return np.stack([rel == WAR, rel == PEACE, rel == ALLY], -1).astype(np.float32)


def _log(x) -> np.ndarray:
    return np.log1p(np.maximum(x, 0)) / 6.0


def encode(config: GameConfig, state: State, players) -> np.ndarray:
    """float32[B, n, size] observations of the listed seats."""
    players = np.atleast_1d(np.asarray(players, dtype=np.int64))
    L = layout_for(config)
    B, V = state.owner.shape
    n, N, A, D = len(players), config.n_rows, config.n_alliances, config.banner_dim
    P1 = config.n_players + 1
    b3 = np.arange(B)[:, None, None]
    b2 = np.arange(B)[:, None]
    pop_used, pop_cap, storage = village_economy(config, state)
    my_alliance = state.player_alliance[:, players]  # [B, n]

    # Armies: who is attacking whom, and where my attacks are headed.
    atk = state.army_active & (state.army_kind == ARMY_ATTACK)
    dst_owner = np.take_along_axis(state.owner, state.army_dst, 1)
    q = state.army_owner
    flat = (b2 * P1 + q) * P1 + np.maximum(dst_owner, 0)
    attacks = np.bincount(flat[atk & (dst_owner >= 0)], minlength=B * P1 * P1).reshape(B, P1, P1)  # [B, from, to]
    flat_v = (b2 * P1 + q) * V + state.army_dst
    en_route = np.bincount(flat_v[atk], minlength=B * P1 * V).reshape(B, P1, V)
    eta = np.where(atk & (dst_owner >= 0), state.army_arrive - state.tick[:, None], 10**6)

    # --- village table ---------------------------------------------------------
    rv = state.row_village[:, players]  # [B, n, N]
    owner = gather_v(state.owner, rv)
    occupied = owner >= 0
    o = np.maximum(owner, 0)
    alliance = np.where(occupied, gather_v(state.player_alliance, o), -1)
    rel = state.relation[b3, my_alliance[..., None], np.maximum(alliance, 0)]
    rel_cols = _relation_onehot(rel) * (occupied & (alliance != my_alliance[..., None]))[..., None]
    if not config.relation_in_rows:
        rel_cols[:] = 0.0
    mine = owner == players[None, :, None]
    troops = gather_v(state.troops, rv)  # [B, n, N, U]
    defence = (troops * config.unit_def_inf).sum(-1)
    offence = (troops * config.unit_attack * config.unit_offensive).sum(-1)
    buildings = gather_v(state.buildings, rv)
    res = gather_v(state.resources, rv)
    home = state.home[:, players]
    dist = state.distance[b3, home[..., None], rv]
    f = np.zeros((B, n, N, len(L.village)), dtype=np.float32)
    c = L.village_col
    f[..., c("is_own")] = mine
    f[..., c("is_player")] = occupied & (owner != config.barbarian_player) & ~mine
    f[..., c("is_barbarian")] = owner == config.barbarian_player
    f[..., c("is_free")] = ~occupied
    f[..., c("same_alliance")] = occupied & (alliance == my_alliance[..., None]) & ~mine
    f[..., c("banner_0") : c("banner_0") + D] = state.banner[b3, np.maximum(alliance, 0)] * occupied[..., None]
    f[..., c("rel_war") : c("rel_war") + 3] = rel_cols
    f[..., c("distance")] = dist / config.map_scale
    f[..., c("integrity")] = gather_v(state.integrity, rv) / config.integrity_max
    f[..., c("defence")] = _log(defence)
    f[..., c("offence")] = _log(offence)
    f[..., c("level")] = buildings.sum(-1) / (config.n_buildings * config.building_max_level)
    f[..., c("wall")] = buildings[..., WALL] / config.building_max_level
    f[..., c("attacking_me")] = np.minimum(attacks[b3, o, players[None, :, None]], 3) / 3.0 * occupied
    f[..., c("my_attack_en_route")] = np.minimum(en_route[b3, players[None, :, None], rv], 3) / 3.0
    own_store = gather_v(storage, rv)
    f[..., c("own_res_wood") : c("own_res_wood") + 2] = res / own_store[..., None] * mine[..., None]
    f[..., c("own_pop")] = gather_v(pop_used / pop_cap, rv) * mine
    f[..., c("own_troops_levy") : c("own_troops_levy") + config.n_units] = _log(troops) * mine[..., None]
    k0 = c(f"own_{BUILDINGS[0]}")
    f[..., k0 : k0 + config.n_buildings] = buildings / config.building_max_level * mine[..., None]

    # --- self ------------------------------------------------------------------
    owns = state.owner[:, None, :] == players[None, :, None]  # [B, n, V]
    own_troops = (state.troops[:, None] * owns[..., None]).sum(2)
    away = state.army_active[:, None, :] & (state.army_owner[:, None, :] == players[None, :, None])
    own_troops = own_troops + (state.army_troops[:, None] * away[..., None]).sum(2)
    incoming = atk[:, None, :] & (dst_owner[:, None, :] == players[None, :, None])
    g = np.zeros((B, n, L.self_size), dtype=np.float32)
    g[..., 0] = state.tick[:, None] / config.episode_length
    g[..., 1] = owns.sum(-1) / config.max_own_villages
    g[..., 2] = (pop_used[:, None] * owns).sum(-1) / np.maximum((pop_cap[:, None] * owns).sum(-1), 1)
    g[..., 3] = np.minimum(incoming.sum(-1), 5) / 5.0
    g[..., 4] = np.minimum(np.where(incoming, eta[:, None], 10**6).min(-1), 30) / 30.0
    g[..., 5:7] = (state.resources[:, None] * owns[..., None]).sum(2) / np.maximum((storage[:, None] * owns).sum(-1), 1)[..., None]
    g[..., 7 : 7 + config.n_units] = _log(own_troops)

    # --- diplomacy table (rows in a per-world shuffled alliance order) ------------
    order = state.alliance_order[:, None, :]  # [B, 1, A]
    rel_d = state.relation[b3, my_alliance[..., None], order]  # [B, n, A]
    ally_villages = np.bincount(
        (b2 * (config.n_alliances + 1) + np.where(state.owner >= 0, np.take_along_axis(state.player_alliance, np.maximum(state.owner, 0), 1), config.n_alliances)).ravel(),
        minlength=B * (config.n_alliances + 1)).reshape(B, -1)
    d = np.zeros((B, n, A, len(L.diplomacy)), dtype=np.float32)
    dc = L.diplomacy_col
    is_mine = order == my_alliance[..., None]
    d[..., dc("banner_0") : dc("banner_0") + D] = state.banner[b3, order]
    d[..., dc("is_mine")] = is_mine
    d[..., dc("rel_war") : dc("rel_war") + 3] = _relation_onehot(rel_d) * ~is_mine[..., None]
    d[..., dc("offer_to_me")] = state.offer[b3, order, my_alliance[..., None]] > 0
    d[..., dc("offer_by_me")] = state.offer[b3, my_alliance[..., None], order] > 0
    d[..., dc("villages")] = np.take_along_axis(ally_villages, state.alliance_order, 1)[:, None, :] / 10.0

    return np.concatenate([g, f.reshape(B, n, -1), d.reshape(B, n, -1)], -1)
