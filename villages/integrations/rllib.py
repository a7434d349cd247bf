"""RLlib's own PettingZoo path: ``ParallelPettingZooEnv`` over the facade, with the
observations in the layout RLlib's action-masking RLModule reads.

    from ray.tune.registry import register_env
    from villages.integrations.rllib import ENV_NAME, make_env
    register_env(ENV_NAME, make_env)        # env_config: villages.parallel_env arguments

RLlib's ``ActionMaskingTorchRLModule`` (``ray.rllib.examples.rl_modules.classes``)
expects ``{"observations": ..., "action_mask": float}``; PettingZoo's convention (the
facade's) is ``{"observation": ..., "action_mask": int8}``. ``RLlibObservations`` renames
the key and casts the mask; nothing else changes. (The project's own RLlib trainer,
``villages train --backend rllib``, uses its own RLModule and needs none of this.)
This module imports Ray: use it only where Ray is installed (the ``rllib`` extra).
"""

from __future__ import annotations

import functools

import numpy as np
from gymnasium import spaces
from pettingzoo.utils.wrappers import BaseParallelWrapper
from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv

import villages

ENV_NAME = "villages_v1_rllib"


class RLlibObservations(BaseParallelWrapper):
    """``{"observation", "action_mask"}`` -> ``{"observations", "action_mask" (float32)}``."""

    def __init__(self, env):
        super().__init__(env)
        inner = env.observation_space(env.possible_agents[0])
        self._space = spaces.Dict({
            "observations": inner["observation"],
            "action_mask": spaces.Box(0.0, 1.0, inner["action_mask"].shape, np.float32),
        })

    @functools.lru_cache(maxsize=None)
    def observation_space(self, agent):
        return self._space

    @staticmethod
    def _convert(obs: dict) -> dict:
        return {a: {"observations": o["observation"], "action_mask": o["action_mask"].astype(np.float32)}
                for a, o in obs.items()}

    def reset(self, seed=None, options=None):
        obs, infos = self.env.reset(seed=seed, options=options)
        self.agents = self.env.agents
        return self._convert(obs), infos

    def step(self, actions):
        obs, rewards, terms, truncs, infos = self.env.step(actions)
        self.agents = self.env.agents
        return self._convert(obs), rewards, terms, truncs, infos


def make_env(env_config=None) -> ParallelPettingZooEnv:
    """RLlib's ``ParallelPettingZooEnv`` over ``villages.parallel_env(**env_config)``."""
    return ParallelPettingZooEnv(RLlibObservations(villages.parallel_env(**dict(env_config or {}))))
