"""The PettingZoo facade: PettingZoo's own API and seed tests, errors, episode ends."""

from __future__ import annotations

import types

import numpy as np
import pytest
from pettingzoo.test import api_test, max_cycles_test, parallel_api_test, parallel_seed_test, seed_test

import villages
from villages.pettingzoo_env import InvalidActionError
from villages.policies import make_policy

FOCAL = dict(scenario="inner-misalignment", agents="focal")

# PettingZoo's recommendations that this env departs from by design: dict observations with an
# action mask, and agents named after the scenario's players.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Observation space for each agent probably should be"),
    pytest.mark.filterwarnings("ignore:We recommend agents to be named"),
    pytest.mark.filterwarnings("ignore:Observation is not a NumPy array"),
]


def test_parallel_api():
    parallel_api_test(villages.parallel_env(max_cycles=40), num_cycles=100)


def test_parallel_api_focal():
    parallel_api_test(villages.parallel_env(max_cycles=40, **FOCAL), num_cycles=100)


def test_aec_api():
    api_test(villages.env(max_cycles=30), num_cycles=40)


def test_aec_api_focal():
    api_test(villages.env(max_cycles=30, **FOCAL), num_cycles=40)


@pytest.mark.parametrize("kw", [{}, FOCAL], ids=["all", "focal"])
def test_seed(kw):
    seed_test(lambda: villages.env(max_cycles=20, **kw), num_cycles=20)
    # The parallel seed test samples actions without the mask: execute illegal ones as no-ops.
    parallel_seed_test(lambda: villages.parallel_env(invalid_action="noop", max_cycles=20, **kw), num_cycles=20)


def test_max_cycles():
    shim = types.SimpleNamespace(
        parallel_env=lambda **kw: villages.parallel_env(invalid_action="noop", **kw),
        env=lambda **kw: villages.env(invalid_action="noop", **kw),
    )
    max_cycles_test(shim)


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


def test_illegal_action_raises_naming_agent_and_action():
    env = villages.parallel_env(**FOCAL)
    obs, _ = env.reset(seed=1)
    agent = env.agents[0]
    illegal = int(np.flatnonzero(obs[agent]["action_mask"] == 0)[0])
    name = env.action_layout.names[illegal]
    with pytest.raises(InvalidActionError) as info:
        env.step({agent: illegal})
    msg = str(info.value)
    assert repr(agent) in msg and str(illegal) in msg and name in msg
    with pytest.raises(InvalidActionError, match="out of range"):
        env.step({agent: env.action_space(agent).n + 3})
    with pytest.raises(KeyError, match="unknown agent"):
        env.step({"Nobody": 0})
    # The same action as a no-op, flagged in the infos.
    env = villages.parallel_env(invalid_action="noop", **FOCAL)
    env.reset(seed=1)
    _, _, _, _, infos = env.step({agent: illegal})
    assert infos[agent]["invalid"] is True
    assert env.game.state.invalid_actions.sum() == 0  # it never reached the engine


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
    aurora = [a for a in everyone if a.startswith("Aurora")]
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
