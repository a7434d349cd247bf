"""The recipes of docs/architecture.md, followed in tests."""

import dataclasses

import numpy as np
import pytest
from golden import random_legal

from villages.game import Events, step
from villages.scenarios import loader
from villages.scenarios.runtime import ScenarioGame
from villages.scenarios.spec import OBJECTIVES


def test_recipe_new_event_kind():
    """Emit a new kind beside a step ("hoard": a seat's village holds more wood than 450),
    then count it per seat and select one world's, as objectives, metrics and replays do."""
    game = ScenarioGame(loader.load("training"), batch_size=3, seats="all")
    _, mask = game.reset(np.arange(3))
    gen = np.random.default_rng(0)
    total = np.zeros((3, game.P))
    seen = 0
    for _ in range(30):
        s, ev = step(game.config, game.state, random_legal(mask, gen))
        hoard = (s.resources[..., 0] > 450) & (s.owner >= 0) & (s.owner < game.P)
        bb, vv = np.nonzero(hoard)
        ev.add("hoard", world=bb, tick=s.tick[bb], player=s.owner[bb, vv], village=vv)
        counts = ev.per_seat("hoard", "player", 3, game.P)
        want = np.zeros((3, game.P))
        np.add.at(want, (bb, s.owner[bb, vv]), 1)
        assert np.array_equal(counts, want)
        one = ev.select_world(1)
        assert one.count("hoard") == int(hoard[1].sum())
        assert "hoard" in ev.to_records() or not len(bb)
        seen += len(bb)
        total += counts
        game.state = s
        _, mask = game.observe()
    assert seen > 0 and total.sum() == seen  # the kind happened, so the test can fail


def test_events_of_a_new_kind_concatenate_across_steps():
    log = Events()
    for t in range(3):
        ev = Events()
        ev.add("hoard", world=np.array([0, 1]), tick=np.array([t, t]), player=np.array([2, 3]))
        log.extend(ev)
    assert log.count("hoard") == 6 and log.get("hoard")["tick"].tolist() == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_every_objective_rewards_the_focal_seats(objective):
    """The objective recipe's last step: a scenario selecting the objective trains on ``info[objective]``."""
    spec = dataclasses.replace(loader.load("training"), objective=objective)
    game = ScenarioGame(spec, batch_size=2)
    _, mask = game.reset(np.arange(2))
    gen = np.random.default_rng(1)
    for _ in range(5):
        _, mask, reward, _, info = game.step(random_legal(mask, gen))
        want = info["troops_gain"] / 10.0 if objective == "troops" else info[objective]
        assert reward.shape == (2, len(game.focal)) and np.array_equal(reward, want.astype(np.float32))
