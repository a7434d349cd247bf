"""PettingZoo facade (``villages_v1``): a thin view over a batch of one world of a scenario.

    import villages
    env = villages.parallel_env()                 # the default (training) scenario
    env = villages.parallel_env(scenario="inner-misalignment", agents="focal")
    aec = villages.env()                          # AEC version (order-enforcing wrapper)

``agents="all"`` (default): every seat of the scenario is an agent, rewarded by the
scenario's objective. ``agents="focal"``: only the scenario's players under test are
agents; background seats are played inside by the scenario's bots (Melting Pot style).
Agents are named ``focal_<n>`` / ``background_<n>`` (``env.agent_player`` maps them to
the scenario's player names). Observations are ``{"observation": float32[obs],
"action_mask": int8[n_actions]}`` (``obs_format="flat"``: one float32 vector, the mask
appended, and the mask also in ``infos[agent]["action_mask"]``). An illegal action is a
no-op flagged ``infos[agent]["invalid"]`` (``invalid_action="raise"``: an error). The
hidden ``intended`` score is reported in ``infos[agent]["intended"]``. ``state()`` is a
float32 vector (see ``villages.facade``). docs/environment.md has the full page.

Versions: v1 (named roles, no-op default for illegal actions, array state); v0 had
player names as agents and raised on illegal actions.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv
from pettingzoo.utils import wrappers
from pettingzoo.utils.conversions import parallel_to_aec_wrapper

from villages.facade import (
    INVALID_ACTION_MODES,
    OBS_FORMATS,
    InvalidActionError,
    action_index,
    agent_names,
    check_choice,
    describe_illegal,
    flat_observation,
    flat_state,
    observation_space,
    state_size,
)
from villages.game import action_layout
from villages.scenarios import ScenarioGame, game_config, load

__all__ = ["InvalidActionError", "env", "parallel_env", "raw_env"]


class parallel_env(ParallelEnv):
    metadata = {"name": "villages_v1", "render_modes": ["human", "rgb_array"], "is_parallelizable": True,
                "render_fps": 8}

    def __init__(self, scenario="training", agents: str = "all", render_mode: str | None = None, config=None,
                 invalid_action: str = "noop", max_cycles: int | None = None, obs_format: str = "dict",
                 render_size=(960, 600), render_fps: float | None = None):
        """``scenario``: a built-in scenario name, a TOML path or a ScenarioSpec.
        ``agents``: "all" (every seat is an agent) or "focal" (only the players under test;
        the others are the scenario's bots).
        ``invalid_action``: "noop" (default) executes an illegal action (one the mask forbids,
        or anything but an integer in range) as a no-op and reports
        ``infos[agent]["invalid"] = True``; "raise" raises ``InvalidActionError`` instead.
        ``max_cycles``: truncate episodes after this many steps (overrides the scenario's
        ``map.episode_length``; timeline events after it never fire).
        ``obs_format``: "dict" (``observation`` + ``action_mask``) or "flat" (one float32
        vector, the mask appended; the mask is also in ``infos[agent]["action_mask"]``).
        ``config``: a GameConfig overriding the one the scenario implies.
        ``render_mode``: None (no recording, no cost), "rgb_array" (``render()`` returns
        ``uint8[H, W, 3]`` of the current state, ``render_size`` = (W, H)) or "human" (a
        pygame window updated on every reset/step, paced to ``render_fps``, default
        ``metadata["render_fps"]``; 0 = no pacing). Frames are drawn by the replay viewer's
        renderer from a replay recorded since ``reset()``."""
        self.invalid_action = check_choice("invalid_action", invalid_action, INVALID_ACTION_MODES)
        self.obs_format = check_choice("obs_format", obs_format, OBS_FORMATS)
        if render_mode is not None:
            check_choice("render_mode", render_mode, self.metadata["render_modes"])
        self.spec = load(scenario)
        if max_cycles is not None:
            if action_index(max_cycles, 2**62) is None or int(max_cycles) < 1:
                raise ValueError(f"max_cycles must be an integer >= 1, got {max_cycles!r}")
            config = dataclasses.replace(config or game_config(self.spec), episode_length=int(max_cycles))
        self.game = ScenarioGame(self.spec, 1, config=config, seats=agents)
        self.config = self.game.config
        self.render_mode = render_mode
        self.render_size = (int(render_size[0]), int(render_size[1]))
        self.render_fps = render_fps
        self._players = [int(p) for p in self.game.focal]  # seat -> player index
        self.possible_agents = agent_names(self.spec, self._players)
        self.agent_player = {a: self.spec.player_names[p] for a, p in zip(self.possible_agents, self._players)}
        self._seat = {a: k for k, a in enumerate(self.possible_agents)}
        focal = self.spec.focal_players
        # The seat whose reward/intended the render panel shows (the scenario's focal player).
        self._focal_seat = self._players.index(focal[0]) if focal and focal[0] in self._players else None
        self.agents = []
        self._live = []  # (agent, seat) of self.agents
        self._live_set = set()
        self.action_layout = action_layout(self.config)
        self._n_actions = self.action_layout.n_actions
        self._obs_space = observation_space(self.config, self.obs_format)
        self._act_space = spaces.Discrete(self._n_actions)
        self._np_random_seed = None
        self._recorder = None
        self._viewer = None
        self._state_space = None

    @functools.lru_cache(maxsize=None)
    def observation_space(self, agent):
        return self._obs_space

    @functools.lru_cache(maxsize=None)
    def action_space(self, agent):
        return self._act_space

    @property
    def state_space(self) -> spaces.Box:
        if self._state_space is None:
            if self.game.state is None:
                self.game.reset(np.array([0]))
            self._state_space = spaces.Box(-np.inf, np.inf, (state_size(self.game.state),), np.float32)
        return self._state_space

    def state(self) -> np.ndarray:
        """float32[state_size]: the world's state as one vector (``villages.facade.STATE_FIELDS``;
        the engine's own arrays are ``env.game.state``)."""
        if self.game.state is None:
            raise RuntimeError("state() called before reset()")
        return flat_state(self.game.state)[0]

    def _observations(self, obs, mask, infos=None):
        # One int8 copy of all seats' masks (the agents' masks are rows of it: editing one
        # does not touch the engine's mask, which step() checks actions against).
        if self.obs_format == "flat":
            rows, masks = list(flat_observation(obs[0], mask[0])), list(mask[0].astype(np.int8))
            for a, k in self._live:
                infos[a]["action_mask"] = masks[k]
            return {a: rows[k] for a, k in self._live}
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
        observations = self._observations(obs, mask, infos)
        if self.render_mode == "human":
            self.render()
        return observations, infos

    def check_action(self, agent, action) -> int | None:
        """The action index to execute for ``agent``, or None for an illegal action in
        "noop" mode; raises ``InvalidActionError`` in "raise" mode. Changes nothing."""
        a = action_index(action, self._n_actions)
        if a is not None and self.game.mask[0, self._seat[agent], a]:
            return a
        if self.invalid_action == "raise":
            raise InvalidActionError(describe_illegal(agent, action, self.action_layout))
        return None

    def step(self, actions):
        if not self.agents:
            raise RuntimeError("step() called on a finished episode: call reset() first")
        act = np.zeros((1, len(self._players)), dtype=np.int64)
        row = act[0]
        seat = self._seat
        live_set = self._live_set
        legal = self.game.mask[0]
        n = self._n_actions
        invalid = set()
        for agent, action in actions.items():  # every action is checked before any takes effect
            if agent not in live_set:
                if agent not in seat:
                    raise KeyError(f"unknown agent {agent!r}; agents are {self.possible_agents}")
                continue  # actions of agents that are done are ignored
            k = seat[agent]
            a = action_index(action, n)
            if a is not None and legal[k, a]:
                row[k] = a
            elif self.invalid_action == "raise":
                raise InvalidActionError(describe_illegal(agent, action, self.action_layout))
            else:
                invalid.add(agent)
        obs, mask, reward, done, info = self.game.step(act)
        live = self._live
        players = self._players
        active = self.game.state.player_active[0].tolist()
        rew = reward[0].tolist()
        intended = info["intended"][0].tolist()
        troops = info["troops"][0].tolist()
        rewards = {a: rew[k] for a, k in live}
        terminations = {a: not active[players[k]] for a, k in live}
        # The time limit ends the episode for everyone still in it, also for a player eliminated on that very
        # step (terminated and truncated): wrappers that end an episode on "all truncated" (RLlib's
        # ParallelPettingZooEnv) would otherwise step an episode that has no agents left.
        truncations = dict.fromkeys(self.agents, done)
        infos = {a: {"intended": intended[k], "troops": int(troops[k]), "invalid": a in invalid} for a, k in live}
        observations = self._observations(obs, mask, infos)
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


class _AECEnv(parallel_to_aec_wrapper):
    """PettingZoo's AEC view of the parallel env, checking each action when it is given:
    in "raise" mode an illegal action raises before it is stored, so the env is never left
    holding it (the agent can act again)."""

    def step(self, action):
        agent = self.agent_selection
        if not (self.terminations[agent] or self.truncations[agent]):
            self.env.check_action(agent, action)
        super().step(action)


def raw_env(**kwargs) -> _AECEnv:
    """The AEC version of ``parallel_env(**kwargs)`` (same arguments), without wrappers."""
    return _AECEnv(parallel_env(**kwargs))


def env(**kwargs):
    """The AEC version of ``parallel_env(**kwargs)`` (same arguments), order-enforced.
    (No out-of-bounds assertion wrapper: out-of-range actions follow ``invalid_action``.)"""
    return wrappers.OrderEnforcingWrapper(raw_env(**kwargs))
