"""The fast engine equals the plain reference engine (``villages.game.reference``) on random
trajectories of every built-in scenario: masks exactly, observations to float32 rounding."""

import numpy as np
import pytest
from golden import random_legal

from villages.game import action_mask, encode, reference
from villages.scenarios import loader
from villages.scenarios.runtime import ScenarioGame

TICKS = 30
BATCH = 2


def _states(name: str):
    """States along a trajectory: the focal seats play random legal actions, bots as the scenario says."""
    game = ScenarioGame(loader.load(name), batch_size=BATCH)
    gen = np.random.default_rng(3)
    _, mask = game.reset(np.arange(BATCH) + 7)
    for t in range(TICKS):
        if t % 6 == 0:
            yield game
        _, mask, _, _, _ = game.step(random_legal(mask, gen))


@pytest.mark.parametrize("name", loader.builtin_names())
def test_mask_and_observation_match_reference(name):
    for game in _states(name):
        s, cfg = game.state, game.config
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
