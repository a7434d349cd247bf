"""The ecosystem recipes in examples/ run (tiny budgets), and the libraries see the env as
they should: SuperSuit + SB3 MaskablePPO, TorchRL's PettingZooWrapper, CleanRL-style PPO on
the vector API. (RLlib's own wrapper: tests/test_rllib.py, with the other Ray tests.)"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

from villages.scenarios import load

SEATS = len(load("inner-misalignment").players)  # every seat is an agent in these recipes
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (dataclasses look their module up there)
    spec.loader.exec_module(module)
    return module


def test_sb3_maskable_ppo_recipe(tmp_path):
    pytest.importorskip("sb3_contrib")
    model, actions = load_example("sb3_maskable_ppo").main(
        ["--scenario", "inner-misalignment", "--steps", "640", "--max-cycles", "12", "--copies", "1", "--n-steps", "32",
         "--save", str(tmp_path / "model.zip")])
    assert (tmp_path / "model.zip").is_file() and model.num_timesteps >= 640
    assert actions.shape == (SEATS,)


def test_sb3_masks_come_from_the_observations_and_episodes_end():
    pytest.importorskip("sb3_contrib")
    from villages.integrations.sb3 import masked_vec_env

    venv = masked_vec_env(scenario="inner-misalignment", max_cycles=3)
    obs = venv.reset()
    masks = np.stack(venv.env_method("action_masks"))
    assert masks.shape == (SEATS, 267) and masks[:, 0].all()
    assert np.array_equal(masks, obs[:, -267:] > 0.5)
    for t in range(3):
        obs, _, dones, infos = venv.step(np.zeros(SEATS, dtype=np.int64))
    assert dones.all()  # the episode ends at max_cycles (SuperSuit 3.11.0's black death never ended it)
    assert all("terminal_observation" in i for i in infos)


def test_torchrl_groups_by_role_and_reads_the_state():
    pytest.importorskip("torchrl")
    from torchrl.envs.utils import check_env_specs

    env = load_example("torchrl_pettingzoo").make_env("training", max_cycles=5, seed=0)
    assert env.group_map == {"focal": ["focal_0"], "background": [f"background_{i}" for i in range(SEATS - 1)]}
    check_env_specs(env)
    td = env.rollout(5)
    assert td["next", "state"].shape[0] == 5 and td["next", "done"][-1].all()


def test_torchrl_recipe():
    pytest.importorskip("torchrl")
    _, history = load_example("torchrl_pettingzoo").main(
        ["--frames", "200", "--frames-per-batch", "100", "--max-cycles", "20", "--epochs", "1", "--hidden", "16"])
    assert len(history) == 2 and set(history[0]) == {"focal", "background"}


def test_cleanrl_vector_recipe():
    agent, returns = load_example("cleanrl_ppo_vector").main(
        ["--total-timesteps", "1024", "--num-envs", "8", "--num-steps", "32", "--max-cycles", "16", "--hidden", "16"])
    assert len(returns) == 8 * 8 and np.isfinite(returns).all()  # 128 ticks: 8 episodes of 16 in 8 worlds
