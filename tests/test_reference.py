"""The fast engine equals the plain reference engine (``villages.game.reference``) on random
trajectories of every built-in scenario: masks exactly, observations to float32 rounding."""

import numpy as np
import pytest
from conftest import place_army
from golden import random_legal

from villages.game import action_mask, encode, reference
from villages.scenarios import loader
from villages.scenarios.runtime import ScenarioGame

TICKS = 60  # (past the scenarios' tick-40 and tick-50 events, with armies on the road)
EVERY = 6
BATCH = 2


def _states(name: str):
    """States along a trajectory: the focal seats play random legal actions, bots as the scenario says."""
    game = ScenarioGame(loader.load(name), batch_size=BATCH)
    gen = np.random.default_rng(3)
    _, mask = game.reset(np.arange(BATCH) + 7)
    for t in range(TICKS):
        if t % EVERY == 0:
            yield game
        _, mask, _, _, _ = game.step(random_legal(mask, gen))


def _varied(game, gen):
    """A copy of the game's state with some hand-made variety: rich villages (trades, settlers),
    marketplaces, and armies of every kind arriving now."""
    s = game.state.copy()
    s.resources[gen.random(s.resources.shape[:2]) < 0.3] = 1500.0
    s.buildings[..., 6] = np.where(s.owner >= 0, gen.integers(0, 3, size=s.owner.shape), 0)
    _arrivals_of_every_kind(game.config, s, gen)
    return s


@pytest.mark.parametrize("name", loader.builtin_names())
def test_mask_and_observation_match_reference(name):
    gen = np.random.default_rng(4)
    for game in _states(name):
        s, cfg = (game.state, game.config) if int(game.state.tick[0]) % 12 else (_varied(game, gen), game.config)
        seats = np.arange(game.P)
        for players, diplomacy in ((seats, True), (game.focal, False), (seats[::-1][:3], np.array([True, False, True]))):
            want = reference.action_mask(cfg, s, players, diplomacy)
            assert np.array_equal(action_mask(cfg, s, players, diplomacy), want), (name, int(s.tick[0]), players)
        for config in (cfg, game.bot_config):
            want = reference.encode(config, s, seats)
            got = encode(config, s, seats)
            assert got.dtype == np.float32 and got.shape == want.shape
            bad = np.argwhere(~np.isclose(got, want, rtol=1e-6, atol=1e-7))
            assert not len(bad), (name, int(s.tick[0]), bad[:5].tolist(), got[tuple(bad[0])], want[tuple(bad[0])])


def _arrivals_of_every_kind(cfg, s, gen) -> None:
    """Armies arriving now in free slots: settlers on free sites, and per kind one army from a
    random seat to a random site (returns to a lost home are lost, attacks on friends turn back)."""
    from villages.game.config import ARMY_ATTACK, ARMY_RETURN, ARMY_SETTLE, ARMY_SUPPORT

    for b in range(s.batch_size):
        free_slots = list(np.flatnonzero(~s.army_active[b]))
        free_sites = np.flatnonzero(s.owner[b] < 0)
        for kind in (ARMY_SETTLE, ARMY_SETTLE, ARMY_RETURN, ARMY_SUPPORT, ARMY_ATTACK, ARMY_ATTACK):
            if not free_slots:
                return
            p = int(gen.integers(cfg.n_players))
            dst = int(gen.choice(free_sites)) if kind == ARMY_SETTLE and len(free_sites) else int(gen.integers(cfg.n_villages))
            troops = np.zeros(cfg.n_units, np.int64) if kind == ARMY_SETTLE else gen.integers(0, 30, cfg.n_units)
            place_army(s, b, free_slots.pop(0), p, int(s.home[b, p]), dst, troops, kind=kind)


def _by_world(events) -> dict:
    """Each kind's columns, rows stably sorted by world (the order within a world is the rules')."""
    out = {}
    for kind in events.kinds():
        cols = events.get(kind)
        if cols:
            order = np.argsort(cols["world"], kind="stable")
            out[kind] = {name: col[order] for name, col in cols.items()}
    return out


@pytest.mark.parametrize("name", loader.builtin_names())
def test_step_matches_reference(name):
    from dataclasses import fields

    from villages.game import State, step

    gen = np.random.default_rng(5)
    for game in _states(name):
        cfg = game.config
        s = _varied(game, gen)
        mask = action_mask(cfg, s, np.arange(game.P))
        actions = random_legal(mask, gen)
        actions[:, 0] = np.where(gen.random(BATCH) < 0.3, gen.integers(-2, mask.shape[-1] + 2, BATCH), actions[:, 0])
        got, got_ev = step(cfg, s, actions)
        want, want_ev = reference.step(cfg, s, actions)
        for f in fields(State):
            x, y = getattr(got, f.name), getattr(want, f.name)
            assert x.shape == y.shape, f.name
            same = np.isclose(x, y, rtol=1e-9, atol=1e-9) if x.dtype.kind == "f" else x == y
            assert same.all(), (name, int(s.tick[0]), f.name, np.argwhere(~same)[:3].tolist())
        got_ev, want_ev = _by_world(got_ev), _by_world(want_ev)
        assert sorted(got_ev) == sorted(want_ev), (name, int(s.tick[0]))
        for kind, cols in want_ev.items():
            assert sorted(cols) == sorted(got_ev[kind]), kind
            for col, y in cols.items():
                x = got_ev[kind][col]
                same = np.allclose(x, y, rtol=1e-9, atol=1e-9) if x.dtype.kind == "f" else np.array_equal(x, y)
                assert same, (name, int(s.tick[0]), kind, col, x, y)
