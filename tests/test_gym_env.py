"""The Gymnasium views: the registered single-agent env and the vector env over the batch."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import villages
from villages.facade import InvalidActionError

pytestmark = pytest.mark.filterwarnings("ignore:.*space (minimum|maximum) value is")


@pytest.mark.parametrize("obs_format", ["dict", "flat"])
def test_focal_env_passes_gymnasiums_checker(obs_format):
    env = gymnasium.make("villages/Focal-v0", scenario="inner-misalignment", obs_format=obs_format)
    check_env(env.unwrapped)
    assert gymnasium.spec("villages/Focal-v0").version == 0


def test_focal_env_matches_the_pettingzoo_focal_seat():
    """Same seed, same actions: the Gymnasium env and the PettingZoo facade (focal agents)
    give the same observations and rewards (one engine under both)."""
    genv = gymnasium.make("villages/Focal-v0", scenario="outer-misalignment", max_cycles=12).unwrapped
    penv = villages.parallel_env(scenario="outer-misalignment", agents="focal", max_cycles=12)
    gobs, ginfo = genv.reset(seed=3)
    seed = int(np.random.default_rng(3).integers(2**31))  # the world seed FocalEnv draws from seed 3
    pobs, _ = penv.reset(seed=seed)
    rng = np.random.default_rng(0)
    for _ in range(12):
        assert np.array_equal(gobs["observation"], pobs["focal_0"]["observation"])
        a = int(rng.choice(np.flatnonzero(ginfo["action_mask"])))
        gobs, grew, term, trunc, ginfo = genv.step(a)
        pobs, prew, _, ptrunc, _ = penv.step({"focal_0": a})
        assert grew == prew["focal_0"] and trunc == ptrunc["focal_0"]
    assert trunc and not term


@pytest.mark.parametrize("action", [0.7, "0", np.float64(0.0), -1, 10**6, None])
def test_focal_env_action_contract(action):
    env = gymnasium.make("villages/Focal-v0").unwrapped
    env.reset(seed=0)
    assert env.step(action)[4]["invalid"] is True
    strict = gymnasium.make("villages/Focal-v0", invalid_action="raise").unwrapped
    strict.reset(seed=0)
    with pytest.raises(InvalidActionError):
        strict.step(action)


def test_make_vec_steps_the_batched_engine_and_resets_in_the_same_step():
    envs = gymnasium.make_vec("villages/Focal-v0", num_envs=4, scenario="training", max_cycles=5)
    assert type(envs).__name__ == "FocalVectorEnv" and envs.num_envs == 4
    obs, infos = envs.reset(seed=1)
    assert envs.observation_space.contains(obs)
    again, _ = gymnasium.make_vec("villages/Focal-v0", num_envs=4, scenario="training", max_cycles=5).reset(seed=1)
    assert np.array_equal(obs["observation"], again["observation"])
    assert not np.array_equal(obs["observation"][0], obs["observation"][1])  # different worlds
    for t in range(5):
        actions = np.zeros(4, dtype=np.int64)
        actions[0] = 10**6  # out of range: a flagged no-op
        obs, rew, term, trunc, infos = envs.step(actions)
        assert rew.shape == (4,) and infos["invalid"].tolist() == [True, False, False, False]
        assert not term.any() and trunc.all() == (t == 4)
    assert infos["final_obs"]["observation"].shape == (4, obs["observation"].shape[1])
    assert (envs.unwrapped.game.state.tick == 0).all()  # reset in the step that ended the episodes
    with pytest.raises(InvalidActionError):
        gymnasium.make_vec("villages/Focal-v0", num_envs=2, invalid_action="raise").step(np.array([0.5, 0.0]))


def test_gym_envs_need_one_focal_player():
    with pytest.raises(ValueError, match="exactly one"):
        gymnasium.make("villages/Focal-v0", scenario=_two_focal_spec())


def _two_focal_spec():
    import dataclasses

    from villages.scenarios import load

    spec = load("training")
    players = list(spec.players)
    players[1] = dataclasses.replace(players[1], policy="focal")
    return dataclasses.replace(spec, players=tuple(players))


def test_import_villages_registers_ids_without_heavy_imports():
    """`import villages` registers the Gymnasium ids with string entry points: the engine's
    users do not pay for torch, pettingzoo, pygame or Ray."""
    import subprocess
    import sys

    code = ("import sys, villages.game, gymnasium; assert 'villages/Focal-v0' in gymnasium.registry; "
            "print(sorted(m for m in ('torch', 'pettingzoo', 'pygame', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
