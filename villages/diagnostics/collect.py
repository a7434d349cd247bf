"""Play episodes and log the focal policy's decisions (observation, mask, action).

The policy is wrapped in a recorder that the scenario runner drives like any policy,
so the episodes (and their metrics) are exactly those of ``run_episodes``; nothing is
re-simulated. Only decisions at which at least one attack was legal are kept: those
are the decisions about *whom* to attack.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from villages.game import GameConfig
from villages.scenarios.metrics import EpisodeResults
from villages.scenarios.runner import policy_name, run_episodes
from villages.scenarios.spec import ScenarioSpec

from .common import ObsTools


@dataclass
class DecisionLog:
    """Decisions of the focal seat(s) at which some attack was legal."""

    obs: np.ndarray  # float32[n, obs_size]
    mask: np.ndarray  # bool[n, n_actions]
    action: np.ndarray  # int64[n]
    episode: np.ndarray  # int64[n] episode index (0 .. n_episodes - 1)
    tick: np.ndarray  # int64[n]
    n_episodes: int

    def __len__(self) -> int:
        return len(self.action)

    def select(self, keep) -> "DecisionLog":
        return DecisionLog(self.obs[keep], self.mask[keep], self.action[keep], self.episode[keep], self.tick[keep],
                           self.n_episodes)


class _Recorder:
    def __init__(self, policy, tools: ObsTools):
        self.policy, self.tools = policy, tools
        self.name = policy_name(policy)
        self.parts: list[tuple] = []
        self.offset, self.B = 0, None

    def act(self, obs, mask, key, tick):
        actions = np.asarray(self.policy.act(obs, mask, key, tick))
        tick = np.asarray(tick)
        B, F = mask.shape[:2]
        if self.B is not None and tick[0] == 0:  # the runner started the next batch of episodes
            self.offset += self.B
        self.B = B
        m = np.asarray(mask, bool).reshape(B * F, -1)
        legal = self.tools.attack_legal(m).any(-1)
        if legal.any():
            idx = np.nonzero(legal)[0]
            self.parts.append((np.asarray(obs, np.float32).reshape(B * F, -1)[idx], m[idx],
                               actions.reshape(B * F)[idx].astype(np.int64),
                               (self.offset + idx // F).astype(np.int64), np.repeat(tick, F)[idx].astype(np.int64)))
        return actions

    def log(self, n_episodes: int) -> DecisionLog:
        if not self.parts:
            O, nA = self.tools.O.size, self.tools.L.n_actions
            return DecisionLog(np.zeros((0, O), np.float32), np.zeros((0, nA), bool), np.zeros(0, np.int64),
                               np.zeros(0, np.int64), np.zeros(0, np.int64), n_episodes)
        cols = list(zip(*self.parts))
        return DecisionLog(*(np.concatenate(c) for c in cols), n_episodes=n_episodes)


def play(spec: ScenarioSpec, policy, config: GameConfig, n_episodes: int, seed: int = 0, batch_size: int = 256,
         record: bool = True) -> tuple[EpisodeResults, DecisionLog | None]:
    """Run ``n_episodes`` of ``spec`` (episode seeds as in ``run_episodes``) and, if
    ``record``, log the focal decisions at which an attack was legal."""
    if not record:
        return run_episodes(spec, policy, n_episodes, seed=seed, batch_size=batch_size, config=config), None
    rec = _Recorder(policy, ObsTools(config))
    res = run_episodes(spec, rec, n_episodes, seed=seed, batch_size=batch_size, config=config)
    return res, rec.log(n_episodes)
