"""Counter-based randomness: one uint64 key per world.

Why not one ``np.random.Generator`` for the batch: draws would then depend on how
many battles happened in *other* worlds, and world i of a batch would not equal
world i run alone. Hashing (world key, stream, counters) gives every world its
own stream, is vectorised, and makes ``step`` a pure function of its inputs.
"""

from __future__ import annotations

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array (wrapping arithmetic)."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = x + _GOLDEN
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        x = x ^ (x >> np.uint64(31))
    return x


def derive(key: np.ndarray, *counters) -> np.ndarray:
    """Hash a per-world key with any number of integer counters (broadcasting)."""
    h = np.asarray(key, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for c in counters:
            h = mix(h ^ (np.asarray(c).astype(np.uint64) * _M2))
    return h


def uniform(key: np.ndarray, *counters) -> np.ndarray:
    """Uniform floats in [0, 1) from hashed counters."""
    return (derive(key, *counters) >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def seed_keys(seeds) -> np.ndarray:
    """Per-world keys from integer seeds."""
    return mix(np.asarray(seeds, dtype=np.int64).astype(np.uint64) ^ np.uint64(0x5EED))
