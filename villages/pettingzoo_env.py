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
                 invalid_action: str = "raise", max_cycles: int | None = None, render_size=(960, 600),
                 render_fps: float | None = None):
        """``invalid_action``: "raise" (default) raises on an action the mask forbids;
        "noop" executes it as a no-op and reports ``infos[agent]["invalid"] = True``.
        ``max_cycles``: truncate episodes after this many steps (overrides the scenario's
        ``map.episode_length``; timeline events after it never fire).
        ``render_mode``: None (no recording, no cost), "rgb_array" (``render()`` returns
        ``uint8[H, W, 3]`` of the current state, ``render_size`` = (W, H)) or "human" (a
        pygame window updated on every reset/step, paced to ``render_fps``, default
        ``metadata["render_fps"]``; 0 = no pacing). Frames are drawn by the replay viewer's
        renderer from a replay recorded since ``reset()``."""
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
        self.render_size = (int(render_size[0]), int(render_size[1]))
        self.render_fps = render_fps
        names = self.spec.player_names
        self.possible_agents = [names[i] for i in self.game.focal]
        self._seat = {a: k for k, a in enumerate(self.possible_agents)}
        self._players = [int(p) for p in self.game.focal]  # seat -> player index
        focal = self.spec.focal_players
        # The seat whose reward/intended the render panel shows (the scenario's focal player).
        self._focal_seat = self._players.index(focal[0]) if focal and focal[0] in self._players else None
        self.agents = []
        self._live = []  # (agent, seat) of self.agents
        self._live_set = set()
        n_obs = observation_layout(self.config).size
        self.action_layout = action_layout(self.config)
        self._n_actions = self.action_layout.n_actions
        self._obs_space = spaces.Dict({
            "observation": spaces.Box(-np.inf, np.inf, (n_obs,), np.float32),
            "action_mask": spaces.Box(0, 1, (self._n_actions,), np.int8),
        })
        self._act_space = spaces.Discrete(self._n_actions)
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
        # One int8 copy of all seats' masks (the agents' masks are rows of it: editing one
        # does not touch the engine's mask, which step() checks actions against).
        rows, masks = list(obs[0]), list(mask[0].astype(np.int8))  # (row views, made in one call each)
        return {a: {"observation": rows[k], "action_mask": masks[k]} for a, k in self._live}

    def reset(self, seed=None, options=None):
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**31))
        self._np_random_seed = int(seed)
        obs, mask = self.game.reset(np.array([seed]))
        self.agents = list(self.possible_agents)
        self._live = list(self._seat.items())
        self._live_set = set(self.agents)
        self._recorder = None
        if self.render_mode is not None:
            from villages.render.live import start_recording

            self._recorder = start_recording(self)
        infos = {a: {} for a in self.agents}
        if self.render_mode == "human":
            self.render()
        return self._observations(obs, mask), infos

    def _invalid(self, agent, a) -> InvalidActionError:
        ok = 0 <= a < self._n_actions
        name = self.action_layout.names[a] if ok else "out of range"
        return InvalidActionError(f"agent {agent!r}: action {a} ({name}) is not legal now (see action_mask)")

    def step(self, actions):
        if not self.agents:
            raise RuntimeError("step() called on a finished episode: call reset() first")
        act = np.zeros((1, len(self._players)), dtype=np.int64)
        row = act[0]
        legal = self.game.mask[0]
        n = self._n_actions
        seat = self._seat
        live_set = self._live_set
        invalid = ()
        for agent, a in actions.items():
            if agent not in live_set:
                if agent not in seat:
                    raise KeyError(f"unknown agent {agent!r}; agents are {self.possible_agents}")
                continue  # actions of agents that are done are ignored
            k = seat[agent]
            a = int(a)
            if 0 <= a < n and legal[k, a]:
                row[k] = a
            elif self.invalid_action == "noop":
                invalid = (*invalid, agent)
            else:
                raise self._invalid(agent, a)
        obs, mask, reward, done, info = self.game.step(act)
        live = self._live
        players = self._players
        active = self.game.state.player_active[0].tolist()
        rew = reward[0].tolist()
        intended = info["intended"][0].tolist()
        troops = info["troops"][0].tolist()
        rewards = {a: rew[k] for a, k in live}
        terminations = {a: not active[players[k]] for a, k in live}
        truncations = {a: active[players[k]] for a, k in live} if done else dict.fromkeys(self.agents, False)
        infos = {a: {"intended": intended[k], "troops": int(troops[k]), "invalid": a in invalid} for a, k in live}
        observations = self._observations(obs, mask)
        if self._recorder is not None:
            f = self._focal_seat
            self._recorder.record(self.game.state, info["events"], world=0,
                                  reward=None if f is None else rew[f], intended=None if f is None else intended[f])
        if done or any(terminations.values()):
            self._live = [(a, k) for a, k in live if active[players[k]] and not done]
            self.agents = [a for a, _ in self._live]
            self._live_set = set(self.agents)
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
