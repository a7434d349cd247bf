"""SuperSuit + Stable-Baselines3: every seat of the PettingZoo env as one SB3 vector env,
with the action masks sb3-contrib's MaskablePPO reads.

    from sb3_contrib import MaskablePPO
    from villages.integrations.sb3 import masked_vec_env
    venv = masked_vec_env(scenario="training", agents="all", num_copies=2)
    MaskablePPO("MlpPolicy", venv).learn(100_000)

The env is built with ``obs_format="flat"`` (a Box, which SuperSuit and SB3's MLP read:
the observation with the action mask appended), ``BlackDeath`` (SuperSuit's
``black_death_v3``, see below) keeps seats that leave the game in the batch with zero
observations (SB3 needs a fixed number of agents), and ``pettingzoo_env_to_vec_env_v1`` + ``concat_vec_envs_v1`` turn the agents
of ``num_copies`` games into one SB3 VecEnv (one shared policy for all seats).
``VecActionMasks`` answers MaskablePPO's ``env_method("action_masks")`` from the mask at
the end of each observation (a dead seat's all-zero mask allows the no-op).
"""

from __future__ import annotations

import numpy as np
import supersuit as ss
from stable_baselines3.common.vec_env import VecEnvWrapper
from supersuit.multiagent_wrappers.black_death import black_death_par

import villages


class VecActionMasks(VecEnvWrapper):
    """Exposes ``action_masks()`` (as MaskablePPO asks for it) from flat observations whose last
    ``n_actions`` entries are the action mask."""

    def __init__(self, venv, n_actions: int):
        super().__init__(venv)
        self.n_actions = int(n_actions)
        self._masks = np.ones((self.num_envs, self.n_actions), dtype=bool)
        self._seed = None

    def seed(self, seed=None):
        # SuperSuit's SB3 wrapper forwards seed() to a vector env that has none (AttributeError):
        # keep SB3's seed for the next reset instead, as SB3's own vector envs do.
        self._seed = seed
        return [None if seed is None else seed + i for i in range(self.num_envs)]

    def _read_masks(self, obs: np.ndarray) -> None:
        masks = obs[:, -self.n_actions :] > 0.5
        masks[~masks.any(axis=1), 0] = True  # a black-death seat (all zeros): only the no-op
        self._masks = masks

    def reset(self):
        if self._seed is None:
            obs = self.venv.reset()
        else:  # SuperSuit's concatenated games take the seed in reset (seed + i for game i)
            obs, self.venv.reset_infos = self.venv.venv.reset(seed=self._seed)
            self._seed = None
        self._read_masks(obs)
        return obs

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        self._read_masks(obs)  # after an auto-reset: the new episode's masks, as MaskablePPO needs
        return obs, rewards, dones, infos

    def env_method(self, method_name, *args, indices=None, **kwargs):
        if method_name == "action_masks":
            rows = range(self.num_envs) if indices is None else np.atleast_1d(indices)
            return [self._masks[i] for i in rows]
        return self.venv.env_method(method_name, *args, indices=indices, **kwargs)

    def has_attr(self, attr_name: str) -> bool:
        return attr_name == "action_masks" or self.venv.has_attr(attr_name)


class BlackDeath(black_death_par):
    """SuperSuit's ``black_death_v3`` with its episode end fixed: SuperSuit 3.11.0 ends an episode
    only when every agent is terminated *and* truncated, so an episode that ends by truncation
    never ends there and the next step hits a finished env (fixed upstream in SuperSuit PR #265,
    after 3.11.0). Here an agent is done when it is terminated *or* truncated."""

    def step(self, actions):
        obss, rews, terms, truncs, infos = self.env.step({a: actions[a] for a in self.env.agents})
        gone = [a for a in self.agents if a not in obss]
        zeros = {a: np.zeros_like(self.observation_space(a).low) for a in gone}
        done = all(terms[a] or truncs[a] for a in terms)
        dones = dict.fromkeys(self.agents, done)
        result = ({**zeros, **obss}, {**dict.fromkeys(gone, 0.0), **rews}, dones, dict(dones),
                  {**{a: {} for a in gone}, **infos})
        if done:
            self.agents.clear()
        return result


def masked_vec_env(num_copies: int = 1, num_cpus: int = 0, **env_kwargs) -> VecActionMasks:
    """An SB3 VecEnv of every agent of ``num_copies`` games (``villages.parallel_env(**env_kwargs)``,
    flat observations), ready for MaskablePPO."""
    env = villages.parallel_env(obs_format="flat", **env_kwargs)
    n_actions = env.action_space(env.possible_agents[0]).n
    env = BlackDeath(env)
    venv = ss.pettingzoo_env_to_vec_env_v1(env)
    venv = ss.concat_vec_envs_v1(venv, num_copies, num_cpus=num_cpus, base_class="stable_baselines3")
    return VecActionMasks(venv, n_actions)
