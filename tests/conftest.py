"""Shared fixtures and helpers for the engine tests.

``small_world`` is the hand-built layout the engine tests and ``benchmarks/engine.py``
use: 10 seats in 6 alliances (alliances 0 and 1 at war), seats 2 and 3 with two
villages, 4 barbarian villages, start troops of 10 levies, 10 spears and 10 axes.

The helpers below are plain functions (imported by the test modules as
``from conftest import ...``) so that hypothesis tests can use them without
function-scoped fixtures.
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest

from villages.game import GameConfig, Layout, State, action_layout, action_mask, step
from villages.game.actions import village_economy
from villages.game.config import ARMY_ATTACK, NO_OWNER, WAR


def make_small_world(**config_overrides) -> tuple[GameConfig, Layout]:
    cfg = GameConfig(**config_overrides)
    A = cfg.n_alliances
    rel = np.zeros((A, A), np.int64)
    rel[0, 1] = rel[1, 0] = WAR
    layout = Layout(
        player_alliance=np.array([0, 0, 1, 1, 2, 2, 3, 3, 4, 5]),
        villages_per_player=np.array([1, 1, 2, 2, 1, 1, 1, 1, 1, 1]),
        banners=np.random.default_rng(0).normal(size=(A, cfg.banner_dim)),
        relation=rel,
        start_troops=np.array([10, 10, 10, 0, 0]),
    )
    return cfg, layout


@pytest.fixture(scope="session")
def small_world() -> tuple[GameConfig, Layout]:
    return make_small_world()


# --- state comparison -------------------------------------------------------------


def state_fields(s: State) -> dict[str, np.ndarray]:
    return {f.name: getattr(s, f.name) for f in fields(s)}


def assert_states_equal(a: State, b: State, skip=()) -> None:
    """Bit-for-bit equality of every state array (dtype, shape and bytes)."""
    for name, x in state_fields(a).items():
        if name in skip:
            continue
        y = getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, f"{name}: {x.dtype}{x.shape} vs {y.dtype}{y.shape}"
        assert x.tobytes() == y.tobytes(), f"state field {name!r} differs"


def assert_events_equal(e1, e2, skip_kinds=()) -> None:
    k1 = [k for k in e1.kinds() if k not in skip_kinds and e1.count(k)]
    k2 = [k for k in e2.kinds() if k not in skip_kinds and e2.count(k)]
    assert k1 == k2, f"event kinds differ: {k1} vs {k2}"
    for kind in k1:
        c1, c2 = e1.get(kind), e2.get(kind)
        assert sorted(c1) == sorted(c2), kind
        for col in c1:
            assert np.array_equal(c1[col], c2[col]), f"event {kind}.{col} differs"


# --- policies ----------------------------------------------------------------------


def verb_of_action(cfg: GameConfig) -> np.ndarray:
    """Row verb index of every action (-1 for non-row actions)."""
    L = action_layout(cfg)
    verb = np.full(L.n_actions, -1)
    verb[L.row_base :] = np.arange(L.n_actions - L.row_base) % L.n_verbs
    return verb


def biased_legal(cfg: GameConfig, mask: np.ndarray, rng: np.random.Generator, w_attack=30.0, w_train=3.0) -> np.ndarray:
    """A legal action per seat, weighted towards attacks and training (more battles)."""
    verb = verb_of_action(cfg)
    w = np.ones(mask.shape[-1])
    w[verb == 0] = w_attack
    w[verb >= 3 + cfg.n_buildings] = w_train
    p = mask * w
    c = np.cumsum(p, -1)
    u = rng.random(mask.shape[:-1] + (1,)) * c[..., -1:]
    return (c > u).argmax(-1)


# --- accounting ----------------------------------------------------------------------


def total_troops(s: State) -> np.ndarray:
    """int[B, U]: troops at home plus troops in active armies."""
    return s.troops.sum(1) + (s.army_troops * s.army_active[..., None]).sum(1)


def per_world_sum(ev, kind: str, column: str, B: int, U: int) -> np.ndarray:
    cols = ev.get(kind)
    out = np.zeros((B, U), np.int64)
    if cols:
        np.add.at(out, cols["world"], cols[column])
    return out


def trained_per_world(ev, B: int, U: int) -> np.ndarray:
    cols = ev.get("train")
    out = np.zeros((B, U), np.int64)
    if cols:
        np.add.at(out, (cols["world"], cols["unit"]), cols["count"])
    return out


def place_army(s: State, world: int, slot: int, owner: int, src: int, dst: int, troops, arrive: int | None = None,
               kind: int = ARMY_ATTACK) -> None:
    """Put an army in transit by hand (in place). ``arrive`` defaults to this tick."""
    s.army_active[world, slot] = True
    s.army_kind[world, slot] = kind
    s.army_owner[world, slot] = owner
    s.army_src[world, slot] = src
    s.army_dst[world, slot] = dst
    s.army_arrive[world, slot] = s.tick[world] if arrive is None else arrive
    s.army_troops[world, slot] = np.asarray(troops, np.int64)
    s.army_loot[world, slot] = 0.0


def noop_step(cfg: GameConfig, s: State):
    return step(cfg, s, np.zeros((s.batch_size, cfg.n_players), np.int64))


def check_state(cfg: GameConfig, s: State) -> None:
    """Invariants every reachable state satisfies."""
    P, V = cfg.n_players, cfg.n_villages
    assert s.resources.min() >= 0.0, "negative resources"
    assert s.troops.min() >= 0, "negative troops at home"
    assert s.army_troops.min() >= 0, "negative troops in armies"
    assert s.army_loot.min() >= 0.0
    assert ((s.owner >= NO_OWNER) & (s.owner <= P)).all(), "owner out of range"
    assert s.owner.shape == (s.batch_size, V)
    owned = s.owner >= 0
    assert ((s.integrity > 0) & (s.integrity <= cfg.integrity_max))[owned].all(), "owned integrity out of (0, max]"
    assert (s.integrity[~owned] == 0).all(), "free site with integrity"
    assert (s.troops[~owned] == 0).all() and (s.buildings[~owned] == 0).all() and (s.resources[~owned] == 0).all()
    assert ((s.buildings >= 0) & (s.buildings <= cfg.building_max_level)).all()
    assert np.array_equal(s.relation, np.swapaxes(s.relation, 1, 2)), "relation not symmetric"
    assert np.isin(s.relation, (0, 1, 2)).all()
    # Seats: a village's owner is an active seat (or the barbarians), an active seat owns 1..max villages.
    n_own = np.stack([(s.owner == p).sum(1) for p in range(P)], 1)
    assert (n_own <= cfg.max_own_villages).all(), "a seat owns more than max_own_villages"
    active = s.player_active[:, :P]
    assert (n_own[~active] == 0).all(), "an inactive seat owns a village"
    assert (n_own[active] >= 1).all(), "an active seat without villages was not eliminated"
    assert s.player_active[:, P].all()
    # Storage caps hold (production, loot and trade are all capped).
    _, pop_cap, storage = village_economy(cfg, s)
    assert (s.resources <= storage[..., None] + 1e-9).all()
    assert (s.invalid_actions >= 0).all()
    assert (s.army_kind[s.army_active] <= 3).all()
    assert ((s.army_owner >= 0) & (s.army_owner < P))[s.army_active].all()


def random_actions(cfg: GameConfig, s: State, rng: np.random.Generator, mode: str) -> np.ndarray:
    """Actions for all seats: 'legal' (uniform legal), 'biased' (war-heavy legal),
    'any' (arbitrary ints, mostly in range), or 'mixed'."""
    from villages.game import sample_legal

    B, P = s.batch_size, cfg.n_players
    L = action_layout(cfg)
    if mode == "legal":
        return sample_legal(action_mask(cfg, s, np.arange(P)), s.key, s.tick, salt=int(rng.integers(1 << 30)))
    if mode == "biased":
        return biased_legal(cfg, action_mask(cfg, s, np.arange(P)), rng)
    anyint = rng.integers(-3, L.n_actions + 3, size=(B, P))
    huge = rng.choice(np.array([-(2**62), 2**62, -1, L.n_actions, 10**9]), size=(B, P))
    anyint = np.where(rng.random((B, P)) < 0.05, huge, anyint)
    if mode == "any":
        return anyint
    legal = biased_legal(cfg, action_mask(cfg, s, np.arange(P)), rng)
    return np.where(rng.random((B, P)) < 0.3, anyint, legal)
