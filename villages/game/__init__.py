"""The game: rules over batched numpy state. Imports nothing outside numpy."""

from . import rng
from .actions import ActionLayout, action_mask
from .actions import layout_for as action_layout
from .config import BUILDINGS, RELATION_NAMES, RESOURCES, UNITS, GameConfig
from .events import Events
from .observation import ObservationLayout, encode
from .observation import layout_for as observation_layout
from .rules import players_leave, set_relation, step
from .state import Layout, State, concat, init_state


def sample_legal(mask, key, tick, salt=0):
    """Uniform legal action per seat from per-world keys: int[B, n] (vectorised)."""
    import numpy as np

    B, n, _ = mask.shape
    u = rng.uniform(key[:, None], 11, tick[:, None], np.arange(n)[None, :], salt)
    count = mask.sum(-1)
    k = np.floor(u * count).astype(np.int64)
    csum = np.cumsum(mask, -1, dtype=np.int16)
    return (csum > k[..., None]).argmax(-1)


__all__ = [
    "ActionLayout", "BUILDINGS", "Events", "GameConfig", "Layout", "ObservationLayout", "RELATION_NAMES",
    "RESOURCES", "State", "UNITS", "action_layout", "action_mask", "concat", "encode", "init_state",
    "observation_layout", "players_leave", "rng", "sample_legal", "set_relation", "step",
]
