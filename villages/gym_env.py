"""Gymnasium views of a scenario: the focal seat against the scenario's bots.

    import gymnasium, villages
    env = gymnasium.make("villages/Focal-v0", scenario="inner-misalignment")
    envs = gymnasium.make_vec("villages/Focal-v0", num_envs=64, scenario="training")

``FocalEnv`` is one world; ``FocalVectorEnv`` (what ``make_vec`` builds, through the
spec's ``vector_entry_point``) steps ``num_envs`` worlds in one call of the batched
engine, so outside trainers get its batch speed. Both need a scenario with exactly one
focal player. Actions follow ``villages.facade``'s contract (an illegal action is a
no-op flagged ``info["invalid"]``, or an error with ``invalid_action="raise"``).
Observations are the PettingZoo facade's (``obs_format`` "dict" or "flat"); the current
action mask is also ``info["action_mask"]`` and ``env.action_masks()`` (the method
sb3-contrib's MaskablePPO reads).

Episode ends: all worlds of a scenario run ``episode_length`` ticks. ``FocalEnv`` ends
an episode early (``terminated``) when the focal player is eliminated. The vector env
steps its worlds in lock step, so an eliminated focal player stays in its world with
only the no-op legal until the common end (as in the native trainer); every world ends
by truncation in the same step and is reset in that step (``autoreset_mode`` SAME_STEP:
the last observations are in ``infos["final_obs"]``, the last infos in
``infos["final_info"]``).
"""

from __future__ import annotations

import dataclasses

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv

from villages.facade import (
    INVALID_ACTION_MODES,
    OBS_FORMATS,
    InvalidActionError,
    action_index,
    check_choice,
    describe_illegal,
    flat_observation,
    observation_space,
)
from villages.game import action_layout
from villages.scenarios import ScenarioGame, game_config, load

def _focal_game(scenario, batch: int, config, max_cycles) -> ScenarioGame:
    spec = load(scenario)
    if len(spec.focal_players) != 1:
        raise ValueError(f"scenario {spec.name!r} has {len(spec.focal_players)} focal players; the Gymnasium envs "
                         "need exactly one (use villages.parallel_env(agents='focal') for several)")
    if max_cycles is not None:
        if action_index(max_cycles, 2**62) is None or int(max_cycles) < 1:
            raise ValueError(f"max_cycles must be an integer >= 1, got {max_cycles!r}")
        config = dataclasses.replace(config or game_config(spec), episode_length=int(max_cycles))
    return ScenarioGame(spec, batch, config=config, seats="focal")


class FocalEnv(gymnasium.Env):
    """One world of a scenario; the agent plays its focal seat, the bots play the rest."""

    metadata = {"render_modes": []}

    def __init__(self, scenario="training", obs_format: str = "dict", invalid_action: str = "noop",
                 max_cycles: int | None = None, config=None):
        """``scenario``: a built-in name, a TOML path or a ScenarioSpec (one focal player).
        ``obs_format``: "dict" or "flat"; ``invalid_action``: "noop" or "raise";
        ``max_cycles``: truncate after this many steps instead of ``episode_length``."""
        self.obs_format = check_choice("obs_format", obs_format, OBS_FORMATS)
        self.invalid_action = check_choice("invalid_action", invalid_action, INVALID_ACTION_MODES)
        self.game = _focal_game(scenario, 1, config, max_cycles)
        self.spec, self.config = self.game.spec, self.game.config
        self.action_layout = action_layout(self.config)
        self.observation_space = observation_space(self.config, self.obs_format)
        self.action_space = spaces.Discrete(self.action_layout.n_actions)
        self._player = int(self.game.focal[0])

    def _obs(self, obs, mask):
        if self.obs_format == "flat":
            return flat_observation(obs[0, 0], mask[0, 0])
        return {"observation": obs[0, 0].copy(), "action_mask": mask[0, 0].astype(np.int8)}

    def action_masks(self) -> np.ndarray:
        return self.game.mask[0, 0].copy()

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        obs, mask = self.game.reset(self.np_random.integers(2**31, size=1))
        return self._obs(obs, mask), {"action_mask": mask[0, 0].astype(np.int8)}

    def step(self, action):
        a = action_index(action, self.action_space.n)
        invalid = a is None or not self.game.mask[0, 0, a]
        if invalid and self.invalid_action == "raise":
            raise InvalidActionError(describe_illegal("focal", action, self.action_layout))
        obs, mask, reward, done, info = self.game.step(np.array([[0 if invalid else a]]))
        terminated = not bool(self.game.state.player_active[0, self._player])
        infos = {"intended": float(info["intended"][0, 0]), "troops": int(info["troops"][0, 0]),
                 "invalid": invalid, "action_mask": mask[0, 0].astype(np.int8)}
        return self._obs(obs, mask), float(reward[0, 0]), terminated, bool(done) and not terminated, infos


class FocalVectorEnv(VectorEnv):
    """``num_envs`` worlds of a scenario stepped together by the batched engine."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 16, scenario="training", obs_format: str = "dict",
                 invalid_action: str = "noop", max_cycles: int | None = None, config=None):
        """Arguments as ``FocalEnv``'s, plus ``num_envs`` worlds."""
        if action_index(num_envs, 2**20) is None or int(num_envs) < 1:
            raise ValueError(f"num_envs must be an integer in [1, 2**20), got {num_envs!r}")
        self.obs_format = check_choice("obs_format", obs_format, OBS_FORMATS)
        self.invalid_action = check_choice("invalid_action", invalid_action, INVALID_ACTION_MODES)
        self.num_envs = int(num_envs)
        self.game = _focal_game(scenario, self.num_envs, config, max_cycles)
        self.spec, self.config = self.game.spec, self.game.config
        self.action_layout = action_layout(self.config)
        self.single_observation_space = observation_space(self.config, self.obs_format)
        self.single_action_space = spaces.Discrete(self.action_layout.n_actions)
        self.observation_space = gymnasium.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = spaces.MultiDiscrete(np.full(self.num_envs, self.action_layout.n_actions))
        self._rng = np.random.default_rng()

    def _obs(self, obs, mask):
        if self.obs_format == "flat":
            return flat_observation(obs[:, 0], mask[:, 0])
        return {"observation": obs[:, 0].copy(), "action_mask": mask[:, 0].astype(np.int8)}

    def action_masks(self) -> np.ndarray:
        """bool[num_envs, n_actions]: the legal actions of every world now."""
        return self.game.mask[:, 0].copy()

    def _new_episodes(self):
        obs, mask = self.game.reset(self._rng.integers(2**31, size=self.num_envs))
        return self._obs(obs, mask), mask[:, 0].astype(np.int8)

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        obs, mask = self._new_episodes()
        return obs, {"action_mask": mask}

    def step(self, actions):
        actions = np.asarray(actions)
        n = self.action_layout.n_actions
        if actions.shape != (self.num_envs,) or actions.dtype.kind not in "iu":
            bad = np.ones(self.num_envs, dtype=bool)  # not a vector of integers: every world's action is illegal
            if self.invalid_action == "raise":
                raise InvalidActionError(f"actions must be {self.num_envs} integers in [0, {n}), got "
                                         f"{actions.dtype} of shape {actions.shape}")
            act = np.zeros(self.num_envs, dtype=np.int64)
        else:
            act = actions.astype(np.int64)
            in_range = (act >= 0) & (act < n)
            act = np.where(in_range, act, 0)
            bad = ~in_range | ~self.game.mask[np.arange(self.num_envs), 0, act]
            if bad.any() and self.invalid_action == "raise":
                i = int(np.flatnonzero(bad)[0])
                raise InvalidActionError(describe_illegal(f"world {i}", actions[i], self.action_layout))
            act = np.where(bad, 0, act)
        obs, mask, reward, done, info = self.game.step(act[:, None])
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.full(self.num_envs, done)
        infos = {"intended": info["intended"][:, 0].astype(np.float64), "troops": info["troops"][:, 0],
                 "invalid": bad, "action_mask": mask[:, 0].astype(np.int8)}
        observations = self._obs(obs, mask)
        if done:
            infos = {"final_obs": observations, "_final_obs": np.ones(self.num_envs, dtype=bool),
                     "final_info": infos, **infos}
            observations, infos["action_mask"] = self._new_episodes()
        return observations, reward[:, 0].astype(np.float32), terminated, truncated, infos
