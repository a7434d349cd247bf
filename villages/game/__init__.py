"""The game: rules over batched numpy state. Imports nothing outside numpy."""

from . import rng
from .actions import action_mask, village_economy
from .config import BUILDINGS, RELATION_NAMES, RESOURCES, UNITS, GameConfig
from .events import Events
from .layouts import ActionLayout, ObservationLayout, action_layout, observation_layout
from .observation import encode
from .rules import players_leave, set_relation, step
from .state import Layout, State, concat, init_state


def sample_legal(mask, key, tick, salt=0):
    """Uniform legal action per seat from per-world keys: int[B, n] (vectorised).

    The k-th legal action (k = floor(u * count)) is found on the bit-packed mask: the
    byte holding it by a cumulative popcount, then the bit inside that byte by a table."""
    import numpy as np

    B, n, n_actions = mask.shape
    u = rng.uniform(key[:, None], 11, tick[:, None], np.arange(n)[None, :], salt)
    packed = np.packbits(mask, axis=-1, bitorder="little")  # [B, n, bytes]
    per_byte = _POPCOUNT.take(packed)
    cum = np.cumsum(per_byte, -1, dtype=np.int32)
    count = cum[..., -1]
    k = np.floor(u * count).astype(np.int64)
    byte = (cum > k[..., None]).argmax(-1)
    at = byte[..., None]
    k_in_byte = k - (np.take_along_axis(cum, at, -1) - np.take_along_axis(per_byte, at, -1))[..., 0]
    bits = np.take_along_axis(packed, at, -1)[..., 0]
    return 8 * byte + _SELECT_BIT[bits, np.minimum(k_in_byte, 7)]


def _select_table():
    import numpy as np

    pop = np.array([bin(i).count("1") for i in range(256)], np.uint8)
    sel = np.zeros((256, 8), np.int64)  # position of the k-th set bit of a byte (0 if none)
    for i in range(256):
        ones = [j for j in range(8) if i >> j & 1]
        sel[i, : len(ones)] = ones
    return pop, sel


_POPCOUNT, _SELECT_BIT = _select_table()


__all__ = [
    "ActionLayout", "BUILDINGS", "Events", "GameConfig", "Layout", "ObservationLayout", "RELATION_NAMES",
    "RESOURCES", "State", "UNITS", "action_layout", "action_mask", "concat", "encode", "init_state",
    "observation_layout", "players_leave", "rng", "sample_legal", "set_relation", "step", "village_economy",
]
