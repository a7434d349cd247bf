"""PettingZoo facade: a thin view over a batch of one world of a scenario.

    import villages
    env = villages.parallel_env()                 # the default (training) scenario
    env = villages.parallel_env(scenario="inner-misalignment", agents="focal")
    aec = villages.env()                          # AEC version (order-enforcing wrapper)

``agents="all"`` (default): every seat of the scenario is an agent, rewarded by the
scenario's objective. ``agents="focal"``: only the scenario's players under test are
agents; background seats are played inside by the scenario's bots (Melting Pot style).
Observations are ``{"observation": float32[obs], "action_mask": int8[n_actions]}``.
The hidden ``intended`` score is reported in ``infos[agent]["intended"]``.
"""

from __future__ import annotations

import functools

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv
from pettingzoo.utils import parallel_to_aec, wrappers

from villages.game import action_layout, observation_layout
from villages.scenarios import ScenarioGame, load


class InvalidActionError(ValueError):
    pass


class parallel_env(ParallelEnv):
    metadata = {"name": "villages_v0", "render_modes": ["human", "rgb_array"], "is_parallelizable": True,
                "render_fps": 8}

    def __init__(self, scenario="training", agents: str = "all", render_mode: str | None = None, config=None,
                 invalid_action: str = "raise", max_cycles: int | None = None):
        """``invalid_action``: "raise" (default) raises on an action the mask forbids;
        "noop" executes it as a no-op and reports ``infos[agent]["invalid"] = True``.
        ``max_cycles``: truncate episodes after this many steps (overrides the scenario's
        ``map.episode_length``; timeline events after it never fire)."""
        if invalid_action not in ("raise", "noop"):
            raise ValueError(f"invalid_action must be 'raise' or 'noop', got {invalid_action!r}")
        self.invalid_action = invalid_action
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.spec = load(scenario)
        if max_cycles is not None:
            if int(max_cycles) < 1:
                raise ValueError(f"max_cycles must be >= 1, got {max_cycles!r}")
            import dataclasses

            from villages.scenarios import game_config

            config = dataclasses.replace(config or game_config(self.spec), episode_length=int(max_cycles))
        self.game = ScenarioGame(self.spec, 1, config=config, seats=agents)
        self.config = self.game.config
        self.render_mode = render_mode
        names = self.spec.player_names
        self.possible_agents = [names[i] for i in self.game.focal]
        self._seat = {a: k for k, a in enumerate(self.possible_agents)}
        self.agents = []
        n_obs = observation_layout(self.config).size
        self.action_layout = action_layout(self.config)
        self._obs_space = spaces.Dict({
            "observation": spaces.Box(-np.inf, np.inf, (n_obs,), np.float32),
            "action_mask": spaces.Box(0, 1, (self.action_layout.n_actions,), np.int8),
        })
        self._act_space = spaces.Discrete(self.action_layout.n_actions)
        self._np_random_seed = None
        self._recorder = None
        self._viewer = None

    @functools.lru_cache(maxsize=None)
    def observation_space(self, agent):
        return self._obs_space

    @functools.lru_cache(maxsize=None)
    def action_space(self, agent):
        return self._act_space

    def _observations(self, obs, mask):
        return {a: {"observation": obs[0, self._seat[a]], "action_mask": mask[0, self._seat[a]].astype(np.int8)}
                for a in self.agents}

    def reset(self, seed=None, options=None):
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**31))
        obs, mask = self.game.reset(np.array([seed]))
        self.agents = list(self.possible_agents)
        self._recorder = None
        infos = {a: {} for a in self.agents}
        if self.render_mode == "human":
            self.render()
        return self._observations(obs, mask), infos

    def step(self, actions):
        if not self.agents:
            raise RuntimeError("step() called on a finished episode: call reset() first")
        act = np.zeros((1, len(self.possible_agents)), dtype=np.int64)
        invalid = set()
        for agent, a in actions.items():
            if agent not in self._seat:
                raise KeyError(f"unknown agent {agent!r}; agents are {self.possible_agents}")
            if agent not in self.agents:
                continue
            k = self._seat[agent]
            a = int(a)
            if not (0 <= a < self.action_layout.n_actions) or not self.game.mask[0, k, a]:
                if self.invalid_action == "noop":
                    invalid.add(agent)
                    continue
                name = self.action_layout.names[a] if 0 <= a < self.action_layout.n_actions else "out of range"
                raise InvalidActionError(f"agent {agent!r}: action {a} ({name}) is not legal now (see action_mask)")
            act[0, k] = a
        obs, mask, reward, done, info = self.game.step(act)
        active = self.game.state.player_active[0]
        rewards = {a: float(reward[0, self._seat[a]]) for a in self.agents}
        terminations = {a: not bool(active[self.game.focal[self._seat[a]]]) for a in self.agents}
        truncations = {a: done and not terminations[a] for a in self.agents}
        infos = {a: {"intended": float(info["intended"][0, self._seat[a]]),
                     "troops": int(info["troops"][0, self._seat[a]]), "invalid": a in invalid} for a in self.agents}
        observations = self._observations(obs, mask)
        if self._recorder is not None:
            self._recorder.record(self.game.state, info["events"], world=0)
        self.agents = [a for a in self.agents if not (terminations[a] or truncations[a])]
        if self.render_mode == "human":
            self.render()
        return observations, rewards, terminations, truncations, infos

    def render(self):
        if self.render_mode is None:
            import warnings

            warnings.warn("render() called without a render_mode; pass render_mode='rgb_array' or 'human'")
            return None
        from villages.render import live

        return live.render_env(self)

    def close(self):
        if self._viewer is not None:
            self._viewer.close()
            self._viewer = None

    def state(self):
        return self.game.state


def raw_env(**kwargs):
    return parallel_to_aec(parallel_env(**kwargs))


def env(**kwargs):
    e = raw_env(**kwargs)
    e = wrappers.AssertOutOfBoundsWrapper(e)
    return wrappers.OrderEnforcingWrapper(e)
