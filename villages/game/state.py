"""World state as plain arrays with a leading batch axis, and world generation.

Shapes use: B worlds, V village sites, P player seats (+1 barbarian seat),
A alliances (+1 barbarian alliance), M army slots, U units, K buildings,
R resources, N visible rows, D banner features.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from . import rng as rngmod
from .config import NO_OWNER, PEACE, GameConfig


@dataclass
class State:
    tick: np.ndarray  # int64[B]
    key: np.ndarray  # uint64[B] per-world randomness key (see rng.py)
    pos: np.ndarray  # float64[B, V, 2] site positions in [0, 1]^2 (static)
    distance: np.ndarray  # float64[B, V, V] map distances in distance units (static)
    owner: np.ndarray  # int64[B, V]: -1 free site, 0..P-1 players, P barbarians
    resources: np.ndarray  # float64[B, V, R]
    buildings: np.ndarray  # int64[B, V, K]
    troops: np.ndarray  # int64[B, V, U] troops at home
    integrity: np.ndarray  # float64[B, V]; a village at 0 is razed
    player_alliance: np.ndarray  # int64[B, P+1]
    player_active: np.ndarray  # bool[B, P+1]; False once eliminated or gone
    relation: np.ndarray  # int8[B, A+1, A+1] symmetric: PEACE / ALLY / WAR
    offer: np.ndarray  # int8[B, A+1, A+1] pending offer from row to column (0 none, else the relation offered)
    banner: np.ndarray  # float32[B, A+1, D] persistent alliance identity features
    home: np.ndarray  # int64[B, P+1] each seat's first village site (for row ordering)
    row_village: np.ndarray  # int64[B, P, N] the N sites nearest a seat's home (static)
    alliance_order: np.ndarray  # int64[B, A] alliance shown in each diplomacy-table row (shuffled per world)
    army_active: np.ndarray  # bool[B, M]
    army_kind: np.ndarray  # int8[B, M]
    army_owner: np.ndarray  # int64[B, M]
    army_src: np.ndarray  # int64[B, M]
    army_dst: np.ndarray  # int64[B, M]
    army_arrive: np.ndarray  # int64[B, M] tick of arrival
    army_troops: np.ndarray  # int64[B, M, U]
    army_loot: np.ndarray  # float64[B, M, R]
    invalid_actions: np.ndarray  # int64[B, P] commands that were not legal (executed as no-ops)

    @property
    def batch_size(self) -> int:
        return self.tick.shape[0]

    def copy(self) -> "State":
        return State(**{f.name: getattr(self, f.name).copy() for f in fields(self)})

    def select(self, idx) -> "State":
        """Worlds ``idx`` (a slice, index array or mask) as a new state."""
        return State(**{f.name: getattr(self, f.name)[idx].copy() for f in fields(self)})

    def replace(self, **kw) -> "State":
        return replace(self, **kw)

    def set_worlds(self, mask: np.ndarray, other: "State") -> None:
        """Overwrite worlds where ``mask`` with ``other``'s (used by auto-reset)."""
        for f in fields(self):
            getattr(self, f.name)[mask] = getattr(other, f.name)[mask]


def concat(states: list[State]) -> State:
    return State(**{f.name: np.concatenate([getattr(s, f.name) for s in states]) for f in fields(State)})


@dataclass(frozen=True, eq=False)
class Layout:
    """Who is in the world, by index; built by a scenario, read by ``init_state``.

    Alliance 0 sits at the map centre; the others are placed around it on a ring in
    a per-world random order, so geometry does not single out any alliance.
    """

    player_alliance: np.ndarray  # int[P] alliance index of each seat
    villages_per_player: np.ndarray  # int[P] starting villages per seat (>= 1)
    banners: np.ndarray  # float[A, D] identity features per alliance
    relation: np.ndarray  # int[A, A] or int[B, A, A] initial relations
    n_barbarian: int = 4
    start_troops: np.ndarray | None = None  # int[U] troops in each starting village
    cluster_spread: float = 0.07
    ring_radius: float = 0.3


def _nearest_sites(pos: np.ndarray, home_pos: np.ndarray, n: int) -> np.ndarray:
    d = np.linalg.norm(pos[:, None, :, :] - home_pos[:, :, None, :], axis=-1)  # [B, P, V]
    return np.argsort(d, axis=-1, kind="stable")[..., :n]


def init_state(config: GameConfig, layout: Layout, seeds) -> State:
    """Generate B worlds, one per seed. World i depends on seeds[i] alone."""
    seeds = np.atleast_1d(np.asarray(seeds, dtype=np.int64))
    B, V, P, A = len(seeds), config.n_villages, config.n_players, config.n_alliances
    U, K, R, M = config.n_units, config.n_buildings, config.n_resources, config.max_armies
    pa = np.asarray(layout.player_alliance, dtype=np.int64)
    vpp = np.asarray(layout.villages_per_player, dtype=np.int64)
    if pa.shape != (P,) or vpp.shape != (P,):
        raise ValueError(f"layout needs {P} players, got player_alliance{pa.shape}, villages_per_player{vpp.shape}")
    if pa.min() < 0 or pa.max() >= A:
        raise ValueError(f"player_alliance must lie in [0, {A}), got {pa.tolist()}")
    n_owned = int(vpp.sum()) + layout.n_barbarian
    if n_owned > V:
        raise ValueError(f"layout places {n_owned} villages on {V} sites")
    key = rngmod.seed_keys(seeds)

    # Site owners: players' villages first (slot order), then barbarians, then free sites.
    owner = np.full(V, NO_OWNER, dtype=np.int64)
    site_player = np.repeat(np.arange(P), vpp)
    owner[: len(site_player)] = site_player
    owner[len(site_player) : n_owned] = config.barbarian_player
    owner = np.broadcast_to(owner, (B, V)).copy()

    # Alliance centres: alliance 0 in the middle, the rest on a ring, shuffled per world.
    ring_rank = np.argsort(rngmod.uniform(key[:, None], 1, np.arange(A)[None, :]), axis=1)  # [B, A]
    angle0 = rngmod.uniform(key, 2) * 2 * np.pi
    angle = angle0[:, None] + 2 * np.pi * ring_rank / max(A - 1, 1)
    centre = 0.5 + layout.ring_radius * np.stack([np.cos(angle), np.sin(angle)], -1)  # [B, A, 2]
    centre[:, 0] = 0.5
    jitter = rngmod.uniform(key[:, None, None], 3, np.arange(V)[None, :, None], np.arange(2)[None, None, :])
    pos = rngmod.uniform(key[:, None, None], 4, np.arange(V)[None, :, None], np.arange(2)[None, None, :])
    pos = 0.05 + 0.9 * pos  # barbarians and free sites anywhere
    n_pv = len(site_player)
    cluster = centre[:, pa[site_player]]  # [B, n_pv, 2]
    pos[:, :n_pv] = np.clip(cluster + layout.cluster_spread * (2 * jitter[:, :n_pv] - 1), 0.02, 0.98)
    distance = config.map_scale * np.linalg.norm(pos[:, :, None] - pos[:, None, :], axis=-1)

    home = np.zeros((B, P + 1), dtype=np.int64)
    first_site = np.concatenate([[0], np.cumsum(vpp)[:-1]])
    home[:, :P] = first_site
    home[:, P] = n_pv if layout.n_barbarian else 0
    row_village = _nearest_sites(pos, pos[np.arange(B)[:, None], home[:, :P]], config.n_rows)

    owned = owner >= 0
    resources = np.where(owned[..., None], config.start_resources, 0.0) * np.ones((B, V, R))
    buildings = np.where(owned[..., None], config.start_buildings[None, None, :], 0).astype(np.int64)
    start_troops = np.zeros(U, np.int64) if layout.start_troops is None else np.asarray(layout.start_troops, np.int64)
    troops = np.where(owned[..., None], start_troops[None, None, :], 0).astype(np.int64)
    barb = owner == config.barbarian_player
    buildings[barb] = np.array([1, 0, 1, 1, 1, 1, 0])
    troops[barb] = np.array([6, 6, 0, 0, 0])

    player_alliance = np.concatenate([pa, [config.barbarian_alliance]])
    player_alliance = np.broadcast_to(player_alliance, (B, P + 1)).copy()
    rel = np.asarray(layout.relation, dtype=np.int8)
    if rel.ndim == 2:
        rel = np.broadcast_to(rel, (B, A, A))
    if rel.shape != (B, A, A):
        raise ValueError(f"relation must be [A, A] or [B, A, A] with A={A}, got {rel.shape}")
    relation = np.full((B, A + 1, A + 1), PEACE, dtype=np.int8)
    relation[:, :A, :A] = rel
    banners = np.asarray(layout.banners, dtype=np.float32)
    if banners.shape != (A, config.banner_dim):
        raise ValueError(f"banners must be [{A}, {config.banner_dim}], got {banners.shape}")
    banner = np.zeros((B, A + 1, config.banner_dim), dtype=np.float32)
    banner[:, :A] = banners
    alliance_order = np.argsort(rngmod.uniform(key[:, None], 5, np.arange(A)[None, :]), axis=1)

    return State(
        tick=np.zeros(B, np.int64),
        key=key,
        pos=pos,
        distance=distance,
        owner=owner,
        resources=resources,
        buildings=buildings,
        troops=troops,
        integrity=np.where(owned, config.integrity_max, 0.0),
        player_alliance=player_alliance,
        player_active=np.broadcast_to(np.concatenate([vpp > 0, [True]]), (B, P + 1)).copy(),
        relation=relation,
        offer=np.zeros((B, A + 1, A + 1), np.int8),
        banner=banner,
        home=home,
        row_village=row_village,
        alliance_order=alliance_order,
        army_active=np.zeros((B, M), bool),
        army_kind=np.zeros((B, M), np.int8),
        army_owner=np.zeros((B, M), np.int64),
        army_src=np.zeros((B, M), np.int64),
        army_dst=np.zeros((B, M), np.int64),
        army_arrive=np.zeros((B, M), np.int64),
        army_troops=np.zeros((B, M, U), np.int64),
        army_loot=np.zeros((B, M, R)),
        invalid_actions=np.zeros((B, P), np.int64),
    )
