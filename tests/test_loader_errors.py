"""Malformed scenario files fail with the file, the key path and what was expected.

Every case starts from a small valid scenario (``BASE``), breaks one thing, and checks
that ``load_file`` raises ``ScenarioError`` whose message names the file, the key path
and the expectation (and, where there is one, the offending value).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import numpy as np
import pytest

from villages.scenarios import ScenarioError, load, load_file, parse

BASE = """\
name = "tiny"
objective = "villages"
start_troops = { spear = 5, axe = 5 }

[map]
n_villages = 12
n_barbarian = 2
n_rows = 8
episode_length = 20

[[alliances]]
name = "Home"

[[alliances]]
name = "Foe"

[[players]]
name = "Me"
alliance = "Home"
policy = "focal"

[[players]]
name = "Them"
alliance = "Foe"
policy = "raider"

[[relations]]
between = ["Home", "Foe"]
relation = "war"

[[events]]
at = 5
action = "make_peace"
alliances = ["Home", "Foe"]
"""


def write(tmp_path: Path, text: str, name: str = "broken.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def check(tmp_path, text, key, *expected):
    """``text`` fails to load; the message names the file, ``key`` and every ``expected`` part."""
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load_file(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: "), msg
    assert f": {key}: expected " in msg, msg
    for part in expected:
        assert part in msg, f"{part!r} not in {msg!r}"
    assert info.value.source == str(path) and info.value.key == key
    return msg


def test_base_is_valid(tmp_path):
    spec = load_file(write(tmp_path, BASE, "ok.toml"))
    assert spec.name == "tiny" and len(spec.players) == 2


# --- keys and types -------------------------------------------------------------------------------


@pytest.mark.parametrize("extra, key, expected", [
    ('[oversight]\npenalty = -1\n', "oversight.penalty", ">= 0"),
    ('[oversight]\nenforced = "yes"\n', "oversight.enforced", "true or false"),
    ('[oversight]\npenlaty = 1\n', "oversight.penlaty", "did you mean 'penalty'"),
    ('[[events]]\nat = 0\naction = "overseer_arrives"\n', "events[1]", "[oversight] table"),
    ('[oversight]\n[[events]]\nat = 0\naction = "overseer_leaves"\nalliance = "Foe"\n', "events[1].alliance",
     "watches the whole world"),
])
def test_bad_oversight(tmp_path, extra, key, expected):
    check(tmp_path, BASE + extra, key, expected)


def test_unknown_top_level_key(tmp_path):
    check(tmp_path, "objectiv = 'troops'\n" + BASE, "objectiv", "known keys", "objective", "unknown key",
          "did you mean 'objective'")


def test_unknown_nested_key(tmp_path):
    text = BASE.replace('name = "Me"\n', 'name = "Me"\ncolour = [1, 2, 3]\n')
    check(tmp_path, text, "players[0].colour", "known keys", "alliance, name, policy, villages", "unknown key")


def test_unknown_map_key_suggests(tmp_path):
    text = BASE.replace("episode_length = 20", "episode_lenght = 20")
    check(tmp_path, text, "map.episode_lenght", "did you mean 'episode_length'")


def test_wrong_type(tmp_path):
    check(tmp_path, BASE.replace("episode_length = 20", 'episode_length = "long"'), "map.episode_length",
          "an integer", "'long'")


def test_wrong_type_bool(tmp_path):
    check(tmp_path, BASE.replace("n_rows = 8", "n_rows = 8\nrelation_in_rows = 1"), "map.relation_in_rows",
          "true or false", "1")


def test_wrong_type_table_for_array(tmp_path):
    text = BASE.replace("[[relations]]", "[relations]").split("[[events]]")[0]
    check(tmp_path, text, "relations", "an array")


def test_missing_required_key(tmp_path):
    check(tmp_path, BASE.replace('name = "tiny"\n', ""), "name", "a value (this key is required)")


def test_missing_player_alliance_key(tmp_path):
    check(tmp_path, BASE.replace('alliance = "Foe"\n', ""), "players[1].alliance", "required")


# --- references to alliances ------------------------------------------------------------------------


def test_missing_alliance_referenced_by_player(tmp_path):
    check(tmp_path, BASE.replace('alliance = "Foe"', 'alliance = "Fo"'), "players[1].alliance",
          "the name of a declared alliance (Home, Foe)", "'Fo'")


def test_missing_alliance_referenced_by_relation(tmp_path):
    check(tmp_path, BASE.replace('between = ["Home", "Foe"]', 'between = ["Home", "Aurora"]'), "relations[0].between",
          "declared alliance", "'Aurora'")


def test_missing_alliance_referenced_by_event(tmp_path):
    check(tmp_path, BASE.replace('alliances = ["Home", "Foe"]', 'alliances = ["Home", "Brotherhood"]'),
          "events[0].alliances", "declared alliance", "'Brotherhood'")


def test_missing_alliance_referenced_by_when_trigger(tmp_path):
    text = BASE + '\n[[events]]\nwhen = { alliance = "Ghost", villages_below = 2 }\naction = "leave"\nalliance = "Foe"\n'
    check(tmp_path, text, "events[1].when.alliance", "declared alliance", "'Ghost'")


def test_missing_alliance_referenced_by_diversity(tmp_path):
    check(tmp_path, BASE + '\n[diversity]\nfraction = 0.5\nrole = "Nobody"\npool = ["Home"]\n', "diversity.role",
          "declared alliance", "'Nobody'")


def test_relation_with_itself(tmp_path):
    check(tmp_path, BASE.replace('between = ["Home", "Foe"]', 'between = ["Home", "Home"]'), "relations[0].between",
          "two different alliance names")


def test_duplicate_alliance_names(tmp_path):
    check(tmp_path, BASE.replace('name = "Foe"\n', 'name = "Home"\n', 1), "alliances", "unique alliance names")


# --- values -------------------------------------------------------------------------------------------


def test_impossible_tick(tmp_path):
    check(tmp_path, BASE.replace("at = 5", "at = 21"), "events[0].at", "a tick within the episode (0..20)", "21")


def test_negative_tick(tmp_path):
    check(tmp_path, BASE.replace("at = 5", "at = -1"), "events[0].at", ">= 0", "-1")


def test_bad_relation_name(tmp_path):
    check(tmp_path, BASE.replace('relation = "war"', 'relation = "enemy"'), "relations[0].relation",
          "one of peace, ally, war", "'enemy'")


def test_bad_policy_name(tmp_path):
    check(tmp_path, BASE.replace('policy = "raider"', 'policy = "berserker"'), "players[1].policy",
          "builder", "raider", "focal", "'berserker'")


def test_bad_set_policy_name(tmp_path):
    text = BASE + '\n[[events]]\nat = 3\naction = "set_policy"\nalliance = "Foe"\npolicy = "focal"\n'
    check(tmp_path, text, "events[1].policy", "raider", "'focal'")


def test_bad_event_action(tmp_path):
    check(tmp_path, BASE.replace('action = "make_peace"', 'action = "surrender"'), "events[0].action",
          "declare_war", "leave", "'surrender'")


def test_both_triggers(tmp_path):
    text = BASE.replace("at = 5", 'at = 5\nwhen = { alliance = "Foe", villages_below = 1 }')
    check(tmp_path, text, "events[0]", "exactly one trigger")


def test_neither_trigger(tmp_path):
    check(tmp_path, BASE.replace("at = 5\n", ""), "events[0]", "exactly one trigger")


def test_leave_fraction_out_of_range(tmp_path):
    text = BASE + '\n[[events]]\nat = 3\naction = "leave"\nalliance = "Foe"\nfraction = 1.5\n'
    check(tmp_path, text, "events[1].fraction", "(0, 1]", "1.5")


def test_diversity_fraction_out_of_range(tmp_path):
    check(tmp_path, BASE + '\n[diversity]\nfraction = -0.1\nrole = "Foe"\npool = ["Home"]\n', "diversity.fraction",
          "[0, 1]", "-0.1")


def test_diversity_without_pool(tmp_path):
    check(tmp_path, BASE + '\n[diversity]\nfraction = 0.1\nrole = "Foe"\n', "diversity", "non-empty pool")


def test_diversity_pool_unknown_identity(tmp_path):
    check(tmp_path, BASE + '\n[diversity]\nfraction = 0.1\nrole = "Foe"\npool = ["Foe", "Zeta"]\n', "diversity.pool",
          "identity names", "'Zeta'")


def test_too_many_villages_for_the_map(tmp_path):
    text = (BASE.replace('alliance = "Foe"\n', 'alliance = "Foe"\nvillages = 3\n')
            .replace("n_villages = 12", "n_villages = 8").replace("n_barbarian = 2", "n_barbarian = 5"))
    check(tmp_path, text, "map.n_villages", "room for the 9 villages the players and barbarians start with", "8")


def test_too_many_villages_for_a_player(tmp_path):
    check(tmp_path, BASE.replace('alliance = "Foe"\n', 'alliance = "Foe"\nvillages = 4\n'), "players[1].villages",
          "<= 3", "4")


def test_rows_exceed_sites(tmp_path):
    check(tmp_path, BASE.replace("n_rows = 8", "n_rows = 13"), "map.n_rows", "at most map.n_villages (12)", "13")


def test_bad_toml_syntax(tmp_path):
    msg = check(tmp_path, BASE.replace('name = "tiny"', 'name = "tiny'), "<syntax>", "valid TOML")
    assert re.search(r"line \d+", msg), msg


def test_missing_focal_player(tmp_path):
    check(tmp_path, BASE.replace('policy = "focal"', 'policy = "builder"'), "players", 'policy = "focal"')


def test_no_players(tmp_path):
    text = BASE.split("[[players]]")[0] + '[[events]]\nat = 1\naction = "make_peace"\nalliances = ["Home", "Foe"]\n'
    check(tmp_path, text, "players", "required")


def test_unknown_unit_in_start_troops(tmp_path):
    check(tmp_path, BASE.replace("{ spear = 5, axe = 5 }", "{ spear = 5, dragon = 2 }"), "start_troops.dragon",
          "a unit name (levy, spear, axe, cavalry, ram)", "'dragon'")


def test_negative_troop_count(tmp_path):
    text = BASE + '\n[[events]]\nat = 3\naction = "reinforce"\nalliance = "Foe"\ntroops = { axe = -2 }\n'
    check(tmp_path, text, "events[1].troops.axe", "a non-negative integer", "-2")


def test_bad_colour(tmp_path):
    check(tmp_path, BASE.replace('name = "Home"', 'name = "Home"\ncolour = [300, 0, 0]'), "alliances[0].colour",
          "three integers in [0, 255]")


def test_bad_banner_length(tmp_path):
    check(tmp_path, BASE.replace('name = "Home"', 'name = "Home"\nbanner = [1.0, 0.0]'), "alliances[0].banner",
          "6 numbers")


def test_bad_objective(tmp_path):
    check(tmp_path, BASE.replace('objective = "villages"', 'objective = "gold"'), "objective",
          "troops, villages, intended", "'gold'")


def test_negative_attack_cost(tmp_path):
    check(tmp_path, "attack_cost = -1\n" + BASE, "attack_cost", ">= 0")


def test_event_missing_alliance_for_leave(tmp_path):
    check(tmp_path, BASE + '\n[[events]]\nat = 3\naction = "leave"\n', "events[1].alliance", "required for leave")


# --- sources other than a file -------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(ScenarioError) as info:
        load_file(tmp_path / "nope.toml")
    assert str(tmp_path / "nope.toml") in str(info.value) and "readable TOML file" in str(info.value)


def test_unknown_builtin_name():
    with pytest.raises(ScenarioError) as info:
        load("no-such-scenario")
    msg = str(info.value)
    assert "no-such-scenario" in msg and "inner-misalignment" in msg and ".toml path" in msg


def test_parse_names_its_source():
    with pytest.raises(ScenarioError, match=r"^my-dict: players: expected"):
        parse({"name": "x", "alliances": [{"name": "A"}], "players": []}, source="my-dict")


# --- limits: sizes the engine cannot hold are refused before anything is built ---------------------


def _alliances(n: int) -> str:
    text = 'name = "many"\n[map]\nn_villages = 20\nn_rows = 8\nn_barbarian = 0\nepisode_length = 5\n'
    text += "".join(f'[[alliances]]\nname = "A{i}"\n' for i in range(n))
    return text + "".join(f'[[players]]\nname = "P{i}"\nalliance = "A{i}"\npolicy = "{"focal" if i == 0 else "raider"}"\n'
                          for i in range(n))


def test_twelve_alliances_run_and_thirteen_are_refused(tmp_path):
    """12 is the engine's limit (the mask's diplomacy field: 3 + 4 x alliances <= 53 bits)."""
    from villages.scenarios import ScenarioGame

    spec = load_file(write(tmp_path, _alliances(12), "twelve.toml"))
    game = ScenarioGame(spec, 1)
    game.reset(np.array([0]))
    game.step(np.zeros((1, 1), np.int64))
    check(tmp_path, _alliances(13), "alliances", "at most 12", "got 13", "53-bit field")


def test_limits_of_the_map(tmp_path):
    check(tmp_path, BASE.replace("n_villages = 12", "n_villages = 100000000"), "map.n_villages", "at most 512",
          "distance table")
    check(tmp_path, BASE.replace("episode_length = 20", "episode_length = 1000000000"), "map.episode_length",
          "at most 10,000", "1 ms per tick")


def test_troop_counts_that_would_overflow(tmp_path):
    check(tmp_path, BASE.replace("spear = 5", "spear = 9000000000000000000"), "start_troops.spear",
          "at most 1,000,000,000", "int32")
    check(tmp_path, BASE.replace("spear = 5", "spear = 100000000"), "start_troops.spear",
          "troops per world (12 sites", "got 1200000000")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_reward_weights(tmp_path, value):
    check(tmp_path, f"damage_credit = {value}\n" + BASE, "damage_credit", "a finite number", value)


def test_huge_reward_weight(tmp_path):
    check(tmp_path, "loss_penalty = 1e300\n" + BASE, "loss_penalty", "at most 1e+06", "float32")


def test_non_utf8_file(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(BASE.replace("tiny", "t\xe9").encode("latin-1"))
    with pytest.raises(ScenarioError, match=r"latin1.toml: <file>: expected UTF-8 text .*byte 0xe9 at offset 9"):
        load_file(path)


def test_deeply_nested_file(tmp_path):
    check(tmp_path, "x = " + "[" * 5000 + "]" * 5000 + "\n" + BASE, "<syntax>", "nested at most 32 deep", "5000")


def test_huge_file(tmp_path):
    check(tmp_path, BASE + "#" * (2 << 20), "<file>", "at most 1,048,576 bytes")


def test_specs_built_in_python_meet_the_same_limits():
    import dataclasses

    from villages.scenarios import game_config

    spec = parse(tomllib.loads(BASE), "base")
    big = dataclasses.replace(spec, map=dataclasses.replace(spec.map, n_villages=100_000_000))
    with pytest.raises(ScenarioError, match=r"scenario 'tiny': map.n_villages: expected a number of sites at most 512"):
        game_config(big)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_endless_device_is_read_only_up_to_the_bound():
    with pytest.raises(ScenarioError, match=r"^/dev/zero: <file>: expected a file of at most 1,048,576 bytes, got more"):
        load_file("/dev/zero")
