"""The PettingZoo facade: PettingZoo's own API and seed tests, errors, episode ends."""

from __future__ import annotations

import types

import numpy as np
import pytest
from pettingzoo.test import api_test, max_cycles_test, parallel_api_test, parallel_seed_test, seed_test
from pettingzoo.test.state_test import state_test

import villages
from villages.facade import state_size
from villages.pettingzoo_env import InvalidActionError
from villages.policies import make_policy

FOCAL = dict(scenario="inner-misalignment", agents="focal")

# PettingZoo's recommendations that this env departs from by design: dict observations with an
# action mask, unbounded feature and state spaces.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Observation space for each agent probably should be"),
    pytest.mark.filterwarnings("ignore:Observation is not a NumPy array"),
    pytest.mark.filterwarnings("ignore:.*(minimum|maximum) (observation|state) space value is"),
    pytest.mark.filterwarnings("ignore:.*space value is (-)?infinity"),
]


# The whole kit on the default constructors, with no extra arguments (the samplers of
# seed_test and max_cycles_test draw actions without the mask: illegal ones are no-ops).
def test_parallel_api_default():
    parallel_api_test(villages.parallel_env(), num_cycles=200)


def test_aec_api_default():
    api_test(villages.env(), num_cycles=200)


def test_seed_default():
    seed_test(villages.env)
    parallel_seed_test(villages.parallel_env)


def test_max_cycles_default():
    max_cycles_test(villages)


def test_state_default():
    state_test(villages.env(), villages.parallel_env())
    env = villages.parallel_env()
    env.reset(seed=3)
    s = env.state()
    assert isinstance(s, np.ndarray) and s.dtype == np.float32 and env.state_space.contains(s)
    assert s.shape == (state_size(env.game.state),)


def test_parallel_api_focal():
    parallel_api_test(villages.parallel_env(max_cycles=40, **FOCAL), num_cycles=100)


def test_aec_api_focal():
    api_test(villages.env(max_cycles=30, **FOCAL), num_cycles=40)


def test_seed_focal():
    seed_test(lambda: villages.env(max_cycles=20, **FOCAL), num_cycles=20)
    parallel_seed_test(lambda: villages.parallel_env(max_cycles=20, **FOCAL), num_cycles=20)


def test_flat_observations_carry_the_mask_in_infos():
    api_test(villages.env(obs_format="flat", max_cycles=20), num_cycles=20)
    env = villages.parallel_env(obs_format="flat", **FOCAL)
    obs, infos = env.reset(seed=5)
    ref = villages.parallel_env(**FOCAL)
    robs, _ = ref.reset(seed=5)
    n_obs = robs["focal_0"]["observation"].size
    assert env.observation_space("focal_0").contains(obs["focal_0"])
    assert np.array_equal(obs["focal_0"][:n_obs], robs["focal_0"]["observation"])
    assert np.array_equal(obs["focal_0"][n_obs:], robs["focal_0"]["action_mask"])
    assert np.array_equal(infos["focal_0"]["action_mask"], robs["focal_0"]["action_mask"])


def test_agents_are_named_by_role_and_map_to_players():
    env = villages.parallel_env()
    n_background = len(env.spec.players) - 1
    assert env.possible_agents == ["focal_0"] + [f"background_{i}" for i in range(n_background)]
    assert env.agent_player["focal_0"] == "Assistant"
    assert sorted(env.agent_player.values()) == sorted(env.spec.player_names)
    assert villages.parallel_env(**FOCAL).possible_agents == ["focal_0"]
    assert villages.parallel_env.metadata["name"] == "villages_v1"


def test_reset_is_seeded_and_observations_fit_the_spaces():
    env = villages.parallel_env()
    o1, infos = env.reset(seed=7)
    o2, _ = env.reset(seed=7)
    o3, _ = env.reset(seed=8)
    assert set(o1) == set(env.agents) == set(env.possible_agents) == set(infos)
    for a in env.agents:
        assert np.array_equal(o1[a]["observation"], o2[a]["observation"])
        assert env.observation_space(a).contains(o1[a])
        assert o1[a]["action_mask"].dtype == np.int8 and o1[a]["action_mask"][0] == 1  # noop always legal
    assert any(not np.array_equal(o1[a]["observation"], o3[a]["observation"]) for a in env.agents)


def test_illegal_action_raises_in_strict_mode_naming_agent_and_action():
    env = villages.parallel_env(invalid_action="raise", **FOCAL)
    obs, _ = env.reset(seed=1)
    agent = env.agents[0]
    illegal = int(np.flatnonzero(obs[agent]["action_mask"] == 0)[0])
    name = env.action_layout.names[illegal]
    with pytest.raises(InvalidActionError) as info:
        env.step({agent: illegal})
    msg = str(info.value)
    assert repr(agent) in msg and str(illegal) in msg and name in msg
    with pytest.raises(InvalidActionError, match="not an integer in"):
        env.step({agent: env.action_space(agent).n + 3})
    with pytest.raises(KeyError, match="unknown agent"):
        env.step({"Nobody": 0})
    assert int(env.game.state.tick[0]) == 0  # nothing was stepped
    # By default the same action is a no-op, flagged in the infos.
    env = villages.parallel_env(**FOCAL)
    env.reset(seed=1)
    _, _, _, _, infos = env.step({agent: illegal})
    assert infos[agent]["invalid"] is True
    assert env.game.state.invalid_actions.sum() == 0  # it never reached the engine


NOT_ACTIONS = [0.7, 0.0, "0", None, True, np.float64(0.0), np.float32(1.0), -1, 267, 2**70, [0], np.array([0]),
               np.array(0.0)]


@pytest.mark.parametrize("action", NOT_ACTIONS, ids=repr)
def test_only_integers_in_range_are_actions(action):
    """The action contract, both APIs: anything but an in-range integer is a flagged no-op
    by default, and an InvalidActionError (never another exception type) in strict mode."""
    env = villages.parallel_env(**FOCAL)
    env.reset(seed=1)
    _, _, _, _, infos = env.step({"focal_0": action})
    assert infos["focal_0"]["invalid"] is True
    strict = villages.parallel_env(invalid_action="raise", **FOCAL)
    strict.reset(seed=1)
    with pytest.raises(InvalidActionError):
        strict.step({"focal_0": action})
    aec = villages.env(**FOCAL)
    aec.reset(seed=1)
    aec.step(action)
    assert aec.infos["focal_0"]["invalid"] is True
    aec = villages.env(invalid_action="raise", **FOCAL)
    aec.reset(seed=1)
    with pytest.raises(InvalidActionError):
        aec.step(action)


@pytest.mark.parametrize("action", [0, np.int64(0), np.int32(0), np.uint8(0), np.array(0)], ids=repr)
def test_integer_types_are_actions(action):
    env = villages.parallel_env(invalid_action="raise", **FOCAL)
    env.reset(seed=1)
    _, _, _, _, infos = env.step({"focal_0": action})
    assert infos["focal_0"]["invalid"] is False


def test_aec_env_is_not_stuck_after_an_illegal_action():
    """In strict mode the AEC env refuses the action before storing it: the same agent can
    then act legally and the episode goes on."""
    env = villages.env(invalid_action="raise")
    env.reset(seed=2)
    for _ in range(3 * len(env.possible_agents)):
        agent = env.agent_selection
        mask = env.observe(agent)["action_mask"]
        with pytest.raises(InvalidActionError):
            env.step(int(np.flatnonzero(mask == 0)[0]))
        assert env.agent_selection == agent
        env.step(0)
    assert int(env.unwrapped.game.state.tick[0]) == 3


def test_episode_ends_by_truncation_at_episode_length():
    env = villages.parallel_env(max_cycles=6, **FOCAL)
    env.reset(seed=2)
    agent = env.possible_agents[0]
    for t in range(6):
        assert env.agents == [agent]
        _, rewards, terms, truncs, infos = env.step({agent: 0})
        assert not terms[agent]
        assert truncs[agent] == (t == 5)
        assert set(infos[agent]) >= {"intended", "troops", "invalid"}
    assert env.agents == [] and env.possible_agents == [agent]
    with pytest.raises(RuntimeError, match="reset"):
        env.step({agent: 0})
    # Without max_cycles the scenario's episode_length applies.
    assert villages.parallel_env(**FOCAL).game.config.episode_length == 150


def test_removed_agents_leave_agents_but_stay_possible():
    """Aurora's players leave at tick 0 of inner-misalignment: they are terminated at the
    first step and drop out of ``agents``; ``possible_agents`` keeps everyone."""
    env = villages.parallel_env(scenario="inner-misalignment", agents="all", max_cycles=40)
    env.reset(seed=4)
    everyone = list(env.possible_agents)
    aurora = [a for a in everyone if env.agent_player[a].startswith("Aurora")]
    assert aurora and set(env.agents) == set(everyone)
    bots = make_policy("raider", env.config)
    seat = env._seat
    gone_at = {}
    for t in range(40):
        if not env.agents:
            break
        g = env.game
        acts = bots.act(g.obs, g.mask, g.state.key, g.state.tick)[0]
        _, _, terms, truncs, _ = env.step({a: int(acts[seat[a]]) for a in env.agents})
        for a, done in terms.items():
            if done:
                gone_at.setdefault(a, t)
                assert a not in env.agents
        assert env.possible_agents == everyone
    assert all(gone_at.get(a) == 0 for a in aurora)
    assert not any(truncs[a] for a in gone_at if a in truncs)  # terminated, not truncated


def test_render_without_mode_warns():
    env = villages.parallel_env()
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="render_mode"):
        assert env.render() is None


def test_time_limit_truncates_everyone_still_in_the_episode():
    """Also a player eliminated on the last step: 'all truncated' must end the episode for wrappers."""
    env = villages.parallel_env(scenario="inner-misalignment", max_cycles=6)
    obs, _ = env.reset(seed=1)
    rng = np.random.default_rng(0)
    while env.agents:
        actions = {a: int(rng.choice(np.flatnonzero(obs[a]["action_mask"]))) for a in env.agents}
        obs, _, terms, truncs, _ = env.step(actions)
    assert truncs and all(truncs.values()) and set(truncs) == set(terms)
