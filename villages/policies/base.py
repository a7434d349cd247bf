"""The Policy protocol: batched observations and masks in, actions out.

Scripted bots, the random policy, the neural assistant and anything the runner
drives share this one interface. ``obs`` is float32[B, n, obs_size] (n seats per
world), ``mask`` is bool/int8[B, n, n_actions], ``key`` is the per-world uint64 key
and ``tick`` the per-world tick, from which a policy derives any randomness it needs
(so world i of a batch acts as it would alone).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from villages.game import GameConfig, sample_legal


@runtime_checkable
class Policy(Protocol):
    name: str

    def act(self, obs: np.ndarray, mask: np.ndarray, key: np.ndarray, tick: np.ndarray) -> np.ndarray:
        """int64[B, n] actions; every action must be legal under ``mask``."""


@dataclass(frozen=True)
class PolicyChoice:
    """What a policy weighed when it chose ``actions[B, n]``, from the same forward pass.

    A policy that can explain itself has ``act_with_choice(obs, mask, key, tick, top_k)
    -> (actions, PolicyChoice)`` returning the very actions ``act`` would; replays record
    this for the focal agent (scripted bots have no such method: only their action is kept).
    """

    prob: np.ndarray  # float[B, n]: the policy's probability of the action it took
    top_actions: np.ndarray  # int[B, n, K]: the K most probable legal actions, best first (-1: fewer legal)
    top_probs: np.ndarray  # float[B, n, K]: their probabilities (NaN where top_actions is -1)
    value: np.ndarray  # float[B, n]: the value estimate


def choice_from_logits(masked_logits: np.ndarray, actions: np.ndarray, value: np.ndarray, top_k: int) -> PolicyChoice:
    """``PolicyChoice`` from masked logits ``[B, n, A]`` (illegal ones at a large negative
    value): the softmax over legal actions, its top ``top_k`` and the chosen action's share."""
    z = masked_logits.astype(np.float64)
    z = z - z.max(-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(-1, keepdims=True)
    k = min(int(top_k), p.shape[-1])
    top = np.argsort(-p, axis=-1, kind="stable")[..., :k]
    top_p = np.take_along_axis(p, top, -1)
    legal = top_p > 0
    chosen = np.take_along_axis(p, np.asarray(actions, np.int64)[..., None], -1)[..., 0]
    return PolicyChoice(prob=chosen, top_actions=np.where(legal, top, -1), top_probs=np.where(legal, top_p, np.nan),
                        value=np.asarray(value, np.float64))


class RandomPolicy:
    """Uniform over legal actions."""

    name = "random"

    def __init__(self, config: GameConfig | None = None):
        self.config = config

    def act(self, obs, mask, key, tick):
        return sample_legal(np.asarray(mask, bool), key, tick, salt=17)


class NoopPolicy:
    """Does nothing at all (the passive barbarian; also a capability floor)."""

    name = "passive"

    def __init__(self, config: GameConfig | None = None):
        self.config = config

    def act(self, obs, mask, key, tick):
        return np.zeros(mask.shape[:2], dtype=np.int64)
