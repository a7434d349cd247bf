"""The recipes of docs/architecture.md, followed in tests."""

import dataclasses

import numpy as np
import pytest
from golden import random_legal

from villages.game import Events, step
from villages.scenarios import loader
from villages.scenarios.runtime import ScenarioGame
from villages.scenarios.objectives import razed_reward
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
        if objective == "troops":
            want = info["troops_gain"] / 10.0
        elif objective == "razed":
            want = razed_reward(info["counts"], spec.attack_cost, spec.loss_penalty, spec.damage_credit)
        else:
            want = info[objective]
        assert reward.shape == (2, len(game.focal)) and np.array_equal(reward, want.astype(np.float32))


def test_registries_are_checked_when_a_spec_is_built():
    """Objectives and event actions are registries (scenarios/objectives.py, scenarios/events.py):
    a name outside them fails when the spec is built, however it is built, naming the choices."""
    spec = loader.load("training")
    with pytest.raises(ValueError, match="objective must be one of troops, villages, intended"):
        dataclasses.replace(spec, objective="gold")
    bad = dataclasses.replace(spec.events[0], action="teleport")
    with pytest.raises(ValueError, match="event action must be one of declare_war"):
        dataclasses.replace(spec, events=(bad,))


LAYERS = {  # package -> the villages packages it may import (imports flow one way: docs/architecture.md)
    "game": set(),
    "policies": {"game"},
    "scenarios": {"game", "policies"},
    "train": {"game", "policies", "scenarios", "pettingzoo_env", "gym_env", "facade"},  # (RLlib trains on the facade)
}
BASE_MODULES = {"validation", "atomic", "stats"}  # leaf modules every layer may use


def _villages_imports(path):
    import ast

    for node in ast.walk(ast.parse(path.read_text())):  # (also the imports inside functions)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("villages."):
            yield node.module.split(".")[1]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("villages."):
                    yield alias.name.split(".")[1]


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_imports_flow_one_way(package):
    """A lower layer never imports a higher one, not even lazily (the scenario runner reports to a
    replay recorder through a callback, ``EpisodeObserver``, instead of importing render)."""
    from pathlib import Path

    import villages

    root = Path(villages.__file__).parent / package
    bad = [(f.relative_to(root.parent).as_posix(), m) for f in sorted(root.rglob("*.py"))
           for m in _villages_imports(f) if m != package and m not in LAYERS[package] | BASE_MODULES]
    assert not bad, f"{package} imports from layers above it: {bad}"


def test_recipe_new_scenario_event(monkeypatch):
    """The scenario-event recipe: a handler in the EVENT_ACTIONS registry ("bounty": wood for the
    alliance's players) is all it takes for a spec to use the action and for it to fire on schedule."""
    from villages.scenarios import events as scenario_events
    from villages.scenarios import spec as spec_module

    fired = []

    def bounty(game, e, worlds, ev):
        s = game.state.copy()
        own = np.isin(s.owner, scenario_events._seats(game, e)) & worlds[:, None]
        s.resources = s.resources + own[..., None] * np.array([100, 0])
        game.state = s
        fired.append((int(s.tick[0]), int(worlds.sum())))

    monkeypatch.setitem(scenario_events.EVENT_ACTIONS, "bounty", bounty)
    base = loader.load("training")
    event = spec_module.EventSpec(action="bounty", at=3, alliance="Aurora")
    game = ScenarioGame(dataclasses.replace(base, events=base.events + (event,)), batch_size=2)
    _, mask = game.reset(np.arange(2))
    gen = np.random.default_rng(0)
    for _ in range(6):
        _, mask, *_ = game.step(random_legal(mask, gen))
    assert fired == [(3, 2)]  # once, at its tick, in both worlds


def test_recipe_new_unit_is_derived_from_units():
    """The unit recipe's claim: every per-unit config array has one value per name in UNITS, and the
    layouts' unit columns and train verbs are derived from UNITS (so adding a name there is enough)."""
    from villages.game import GameConfig, action_layout, observation_layout
    from villages.game.config import UNITS

    cfg = GameConfig()
    per_unit = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name.startswith("unit_")}
    assert per_unit and all(len(v) == len(UNITS) for v in per_unit.values()), {k: len(v) for k, v in per_unit.items()}
    L, O = action_layout(cfg), observation_layout(cfg)
    assert [v for v in L.row_verbs if v.startswith("train_")] == [f"train_{u}" for u in UNITS]
    assert [c for c in O.village if c.startswith("own_troops_")] == [f"own_troops_{u}" for u in UNITS]
