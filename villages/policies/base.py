"""The Policy protocol: batched observations and masks in, actions out.

Scripted bots, the random policy, the neural assistant and anything the runner
drives share this one interface. ``obs`` is float32[B, n, obs_size] (n seats per
world), ``mask`` is bool/int8[B, n, n_actions], ``key`` is the per-world uint64 key
and ``tick`` the per-world tick, from which a policy derives any randomness it needs
(so world i of a batch acts as it would alone).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from villages.game import GameConfig, sample_legal


@runtime_checkable
class Policy(Protocol):
    name: str

    def act(self, obs: np.ndarray, mask: np.ndarray, key: np.ndarray, tick: np.ndarray) -> np.ndarray:
        """int64[B, n] actions; every action must be legal under ``mask``."""


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
