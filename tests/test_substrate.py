"""Substrate vs scenario: scenario files extend a shared base; events that apply to part
of an alliance or to a share of episodes; bots that act on any subset of seats alike."""

import dataclasses

import numpy as np
import pytest

from villages.policies.bots import Raider
from villages.scenarios import ScenarioGame, load
from villages.scenarios.loader import ScenarioError, load_file
from villages.scenarios.runtime import game_config
from villages.scenarios.spec import EventSpec

BASE = """
objective = "villages"
[map]
n_villages = 12
n_barbarian = 2
n_rows = 8
episode_length = 40
[[alliances]]
name = "Haven"
[[alliances]]
name = "Brotherhood"
[[players]]
name = "Me"
alliance = "Haven"
policy = "focal"
[[players]]
name = "B1"
alliance = "Brotherhood"
[[players]]
name = "B2"
alliance = "Brotherhood"
"""


def test_scenario_extends_its_base(tmp_path):
    (tmp_path / "base.toml").write_text(BASE)
    (tmp_path / "war.toml").write_text('extends = "base.toml"\nname = "war"\n[map]\nepisode_length = 30\n'
                                       '[[events]]\nat = 5\naction = "declare_war"\nalliances = ["Haven", "Brotherhood"]\n')
    spec = load_file(tmp_path / "war.toml")
    assert spec.name == "war" and spec.map.episode_length == 30 and spec.map.n_villages == 12  # map merged
    assert spec.player_names == ("Me", "B1", "B2") and len(spec.events) == 1


def test_builtin_scenarios_share_one_substrate():
    control, deploy = load("aurora-control"), load("inner-misalignment")
    assert control.players == deploy.players and control.alliances == deploy.alliances
    assert control.map == deploy.map and control.start_troops == deploy.start_troops


@pytest.mark.parametrize("text, key", [
    ('extends = "missing.toml"\nname = "x"', "<file>"),
    ('extends = "loop.toml"\nname = "x"', "extends"),
    ("extends = 3\nname = 'x'", "extends"),
])
def test_bad_extends_is_one_clear_error(tmp_path, text, key):
    (tmp_path / "loop.toml").write_text(text)
    with pytest.raises(ScenarioError) as e:
        load_file(tmp_path / "loop.toml")
    assert e.value.key == key and "\n" not in str(e.value)


def _game(spec, B=64):
    g = ScenarioGame(spec, batch_size=B)
    g.reset(np.arange(B))
    return g


def test_event_fraction_and_probability():
    spec = load("inner-misalignment")
    spec = dataclasses.replace(spec, events=(
        EventSpec("set_policy", at=0, alliance="Brotherhood", policy="raider", fraction=0.33),
        EventSpec("leave", at=0, alliance="Aurora", fraction=0.5, probability=0.5)))
    g = _game(spec)
    raider = g.policy_names.index("raider")
    brothers = g.members[spec.alliance_index("Brotherhood")]
    assert (g.seat_policy[:, brothers[:2]] == raider).all() and (g.seat_policy[:, brothers[2:]] != raider).all()
    aurora = g.members[spec.alliance_index("Aurora")]
    gone = ~g.state.player_active[:, aurora[:3]].any(1)
    assert 0.25 < gone.mean() < 0.75  # about half the episodes
    assert g.state.player_active[:, aurora[3:]].all()
    again = _game(spec)  # drawn per world from its key: the same worlds again
    assert np.array_equal(~again.state.player_active[:, aurora[:3]].any(1), gone)


def test_probability_is_validated(tmp_path):
    (tmp_path / "base.toml").write_text(BASE)
    (tmp_path / "p.toml").write_text('extends = "base.toml"\nname = "p"\n[[events]]\nat = 1\naction = "leave"\n'
                                     'alliance = "Brotherhood"\nprobability = 1.5\n')
    with pytest.raises(ScenarioError, match="probability"):
        load_file(tmp_path / "p.toml")


def test_bot_on_a_subset_of_seats_acts_as_on_all():
    """Bots are keyed by seat id, so the runtime may hand a bot only the seats it plays."""
    spec = load("training")
    g = _game(spec, B=8)
    for _ in range(5):
        g.step(np.zeros((8, 1), np.int64))
    bot = Raider(dataclasses.replace(game_config(spec), relation_in_rows=True))
    from villages.game import action_mask, encode

    seats = g.bot_seats
    obs, mask = encode(g.bot_config, g.state, seats), action_mask(g.bot_config, g.state, seats)
    full = bot.act(obs, mask, g.state.key, g.state.tick, seats=seats)
    pick = np.array([1, 4, 7])
    part = bot.act(obs[:, pick], mask[:, pick], g.state.key, g.state.tick, seats=seats[pick])
    assert np.array_equal(full[:, pick], part)
