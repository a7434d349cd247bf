"""What every outside view of a scenario shares (PettingZoo, Gymnasium, vector env).

* The action contract: an action is an integer (``int``, a numpy integer, or a 0-d
  integer array) in ``[0, n_actions)`` that the current ``action_mask`` allows.
  Anything else (``0.7``, ``"0"``, ``np.float64(0)``, ``True``, ``-1``, ``n_actions``) is
  an illegal action and gets the env's ``invalid_action`` treatment: ``"noop"`` (the
  default) executes a no-op and reports ``infos[agent]["invalid"] = True``; ``"raise"``
  raises ``InvalidActionError`` (a ``ValueError``) before anything changes.
* Agent names: ``<role>_<n>``, role ``focal`` for the scenario's players under test and
  ``background`` for the others, numbered from 0 within the role in seat order
  (``focal_0``, ``background_0`` ... ``background_8``). Multi-agent libraries that group
  agents by that convention (TorchRL's ``PettingZooWrapper``) group them by role.
* The global state vector (``state()``): the engine's per-world arrays named in
  ``STATE_FIELDS``, flattened in that order, as float32.
* The flat observation (``obs_format="flat"``): ``observation`` then ``action_mask`` as
  one float32 vector, for models and wrappers that read only ``Box`` observations.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from villages.game import State, action_layout, observation_layout

INVALID_ACTION_MODES = ("noop", "raise")
OBS_FORMATS = ("dict", "flat")

# The engine arrays that make up ``state()``, in order (static ones such as the distance
# matrix and row ordering are left out: they follow from ``pos``/``home``).
STATE_FIELDS = ("tick", "pos", "owner", "resources", "buildings", "troops", "integrity", "player_alliance",
                "player_active", "relation", "offer", "banner", "army_active", "army_kind", "army_owner",
                "army_src", "army_dst", "army_arrive", "army_troops", "army_loot")


class InvalidActionError(ValueError):
    """An action that is not an integer in range, or that the action mask forbids."""


def check_choice(name: str, value, choices) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def action_index(action, n_actions: int) -> int | None:
    """The action index ``action`` names, or None when it is not an integer in range."""
    kind = type(action)
    if kind is int or kind is np.int64:  # the common cases first (this runs per agent per step)
        a = int(action)
    elif isinstance(action, (bool, np.bool_)):
        return None
    elif isinstance(action, (int, np.integer)):
        a = int(action)
    elif isinstance(action, np.ndarray) and action.shape == () and action.dtype.kind in "iu":
        a = int(action)
    else:
        return None
    return a if 0 <= a < n_actions else None


def describe_illegal(agent, action, layout) -> str:
    a = action_index(action, layout.n_actions)
    what = f"{action!r} is not an integer in [0, {layout.n_actions})" if a is None else \
        f"{a} ({layout.names[a]}) is not legal now (see action_mask)"
    return f"agent {agent!r}: action {what}"


def agent_names(spec, seats) -> list[str]:
    """``<role>_<n>`` names of the given player seats (see the module docstring)."""
    count = {"focal": 0, "background": 0}
    names = []
    for p in seats:
        role = "focal" if spec.players[int(p)].policy == "focal" else "background"
        names.append(f"{role}_{count[role]}")
        count[role] += 1
    return names


def state_size(state: State) -> int:
    return sum(int(np.prod(getattr(state, f).shape[1:])) for f in STATE_FIELDS)


def flat_state(state: State) -> np.ndarray:
    """float32[B, state_size]: the ``STATE_FIELDS`` arrays of every world, flattened."""
    B = state.batch_size
    return np.concatenate([np.asarray(getattr(state, f), dtype=np.float32).reshape(B, -1) for f in STATE_FIELDS],
                          axis=1)


def observation_space(config, obs_format: str) -> spaces.Space:
    n_obs, n_actions = observation_layout(config).size, action_layout(config).n_actions
    if obs_format == "flat":
        return spaces.Box(-np.inf, np.inf, (n_obs + n_actions,), np.float32)
    return spaces.Dict({
        "observation": spaces.Box(-np.inf, np.inf, (n_obs,), np.float32),
        "action_mask": spaces.Box(0, 1, (n_actions,), np.int8),
    })


def flat_observation(obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """float32[..., n_obs + n_actions]: observations with their masks appended."""
    return np.concatenate([obs, mask.astype(np.float32)], axis=-1)
