"""What a replay file may contain, checked before the viewer indexes anything with it.

``check_contents`` is called by ``villages.render.replay`` on every replay it reads, after
the shapes: dtypes as written, every index within the sizes the file declares (sites,
seats, alliances, frames), counts and amounts finite and non-negative, and metadata of
the right types. ``sha256_of`` is the content hash a version-2 file carries.
"""

from __future__ import annotations

import hashlib

import numpy as np

from villages.game.config import ARMY_RETURN, RELATION_NAMES
from villages.validation import MAX_TROOPS

# Event columns that index something, by name: (what, lowest) with the highest from the sizes.
_SITE_COLUMNS = ("village", "src", "dst")
_SEAT_COLUMNS = ("player", "attacker", "defender", "target_player", "owner")
_ALLIANCE_COLUMNS = ("alliance_a", "alliance_b", "attacker_alliance", "defender_alliance", "target_alliance",
                     "alliance")
# Event columns with a value per unit or resource (a second axis); every other column is one number per event.
_TABLE_COLUMNS = ("troops", "sent", "attacker_lost", "defender_troops", "defender_lost", "loot")


def sha256_of(arrays: dict[str, np.ndarray]) -> str:
    """Hash of every member but ``sha256``: names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        if name == "sha256":
            continue
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def check_contents(kw: dict[str, np.ndarray], meta, events: dict, dtypes: dict, bad) -> None:
    """``kw``: the frame and static arrays; ``dtypes``: name -> the dtype the writer uses;
    ``bad(message)`` raises."""
    if not isinstance(meta, dict):
        bad(f"meta: expected a JSON object, got {type(meta).__name__}")
    for name, dtype in dtypes.items():
        if kw[name].dtype != np.dtype(dtype):
            bad(f"array {name!r}: expected dtype {np.dtype(dtype).name}, got {kw[name].dtype.name}")
    T, V = kw["owner"].shape
    P, A = kw["player_alliance"].shape[0] - 1, kw["relation"].shape[1] - 1

    def within(name, a, lo, hi):
        if a.size and (a.min() < lo or a.max() > hi):
            bad(f"array {name!r}: expected values in [{lo}, {hi}], got [{a.min()}, {a.max()}]")

    within("owner", kw["owner"], -1, P)
    within("player_alliance", kw["player_alliance"], 0, A)
    within("relation", kw["relation"], 0, len(RELATION_NAMES) - 1)
    within("army_kind", kw["army_kind"], 0, ARMY_RETURN)
    within("army_owner", kw["army_owner"], 0, P)
    for name in ("army_src", "army_dst", "army_from", "home"):
        within(name, kw[name], 0, V - 1)
    for name in ("troops", "army_troops"):
        within(name, kw[name], 0, MAX_TROOPS.value)
    within("buildings", kw["buildings"], 0, np.iinfo(np.int8).max)
    within("tick", kw["tick"], 0, np.iinfo(np.int32).max)
    for name in ("integrity", "resources", "pos", "banner"):
        if not np.isfinite(kw[name]).all():
            bad(f"array {name!r}: expected finite numbers, got NaN or infinity")
    within("integrity", kw["integrity"], 0, np.inf)
    within("resources", kw["resources"], 0, np.inf)
    within("pos", kw["pos"], 0, 1)
    for name in ("reward", "intended"):  # NaN: not given
        if np.isinf(kw[name]).any():
            bad(f"array {name!r}: expected numbers (NaN where not given), got infinity")

    for key, n in (("alliance_names", A), ("alliance_tags", A), ("player_names", P), ("village_names", V)):
        value = meta.get(key)
        if not isinstance(value, list) or len(value) != n or not all(isinstance(x, str) for x in value):
            bad(f"meta[{key!r}]: expected {n} strings, got {_brief(value)}")
    colours = meta.get("alliance_colours")
    if not isinstance(colours, list) or len(colours) != A or not all(
            isinstance(c, list) and len(c) == 3 and all(_is_int(x) and 0 <= x <= 255 for x in c) for c in colours):
        bad(f"meta['alliance_colours']: expected {A} [r, g, b] triples of integers 0..255, got {_brief(colours)}")
    focal = meta.get("focal_player")
    if not _is_int(focal) or not 0 <= focal < P:
        bad(f"meta['focal_player']: expected an integer in [0, {P}), got {focal!r}")
    for key in ("scenario", "reward_name", "intended_name"):
        if key in meta and not isinstance(meta[key], str):
            bad(f"meta[{key!r}]: expected a string, got {_brief(meta[key])}")
    game = meta.get("game", {})
    if not isinstance(game, dict):
        bad(f"meta['game']: expected a JSON object, got {_brief(game)}")
    for key, axis in (("units", kw["troops"].shape[2]), ("resources", kw["resources"].shape[2]),
                      ("buildings", kw["buildings"].shape[2])):
        value = game.get(key)
        if value is not None and (not isinstance(value, list) or len(value) != axis
                                  or not all(isinstance(x, str) for x in value)):
            bad(f"meta['game'][{key!r}]: expected {axis} strings, got {_brief(value)}")
    limit = game.get("integrity_max", 100.0)
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not np.isfinite(limit) or limit <= 0:
        bad(f"meta['game']['integrity_max']: expected a finite number > 0, got {_brief(limit)}")
    if "episode_length" in meta and (not _is_int(meta["episode_length"]) or meta["episode_length"] < 0):
        bad(f"meta['episode_length']: expected a non-negative integer, got {meta['episode_length']!r}")

    for kind, cols in events.items():
        for col, a in cols.items():
            where = f"event/{kind}/{col}"
            ndim = 2 if col in _TABLE_COLUMNS else 1
            if a.ndim != ndim or a.dtype.kind not in "biuf":
                bad(f"array {where!r}: expected {'a table' if ndim == 2 else 'a column'} of numbers (a row per "
                    f"event), got {a.dtype.name}{a.shape}")
            if a.dtype.kind == "f" and not np.isfinite(a).all():
                bad(f"array {where!r}: expected finite numbers, got NaN or infinity")
            if col == "frame":
                within(where, a, 0, max(T - 1, 0))
            elif col == "relation":
                within(where, a, -1, len(RELATION_NAMES) - 1)
            elif col in _SITE_COLUMNS:
                within(where, a, 0, V - 1)
            elif col in _SEAT_COLUMNS:
                within(where, a, -1, P)
            elif col in _ALLIANCE_COLUMNS:
                within(where, a, -1, A)
            elif col == "kind":
                within(where, a, 0, ARMY_RETURN)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _brief(x) -> str:
    text = repr(x)
    return text if len(text) <= 80 else text[:77] + "..."
