"""Bad input from a user: one error type, the limits every loader enforces, and the checks
shared by more than one kind of input.

Each kind of input is checked beside the code that reads it, before anything is allocated
from it: scenario files in ``villages.scenarios.loader``, checkpoints in
``villages.policies.checkpoint``, replays in ``villages.render.replay_check``, command-line
values here (``parse_ints`` ...). All raise an ``InputError`` (or a subclass): a one-line
message naming the file or option, the key, what was expected and, for a limit, why the
limit is what it is. ``villages.cli`` prints it and exits with code 2.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from villages.game.layouts import MAX_ALLIANCES as _ENGINE_MAX_ALLIANCES
from villages.game.config import GameConfig


class InputError(ValueError):
    """A user's file, option or value is unusable. ``str(e)`` is one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def describe(source: str, key: str, expected: str, got=None, why: str = "") -> str:
    """``source: key: expected <expected>, got <got> (<why>)``, the shape of every message."""
    msg = f"{source}: {key}: expected {expected}"
    if got is not None:
        msg += f", got {_short(got)}"
    if why:
        msg += f" ({why})"
    return msg


def _short(value, limit: int = 120) -> str:
    text = value if isinstance(value, AsIs) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class AsIs(str):
    """A ``got`` that describes the value (shown without quotes)."""

    def __repr__(self):
        return str(self)


# --- limits ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limit:
    """An upper bound on an input and the reason for it (both shown in the error message)."""

    value: int | float
    why: str

    def __str__(self):
        return f"{self.value:,}" if isinstance(self.value, int) else f"{self.value:g}"


_cfg = GameConfig()

MAX_ALLIANCES = Limit(_ENGINE_MAX_ALLIANCES, f"the action mask places its 3 global actions and 4 diplomacy verbs per "
                                             f"alliance in one float64-exact 53-bit field: 3 + 4 x alliances <= 53")
MAX_VILLAGES = Limit(512, "each world keeps a float64 distance table of sites x sites: 512 sites are 2 MiB per world, "
                          "256 MiB for the trainer's 128 worlds")
MAX_EPISODE_LENGTH = Limit(10_000, "the engine takes about 1 ms per tick, so 10,000 ticks are 10 s per episode; a "
                                   "replay keeps one frame per tick")
MAX_TROOPS = Limit(1_000_000_000, "replays store troop counts as int32 (at most 2,147,483,647) and villages train "
                                  "more during an episode")
MAX_REWARD_WEIGHT = Limit(1e6, "rewards pass through float32 in the trainer; larger weights drown every other term")
MAX_EVENTS = Limit(10_000, "every event is checked every tick")
MAX_SCENARIO_BYTES = Limit(1 << 20, "the built-in scenarios are a few KB; a bound keeps parsing quick")
MAX_TOML_DEPTH = Limit(32, "scenarios nest tables three deep; deeper nesting exhausts the TOML parser's recursion")
MAX_HIDDEN = Limit(4096, "a 4096-wide network is already about 100x the default (64) in memory and time")
MAX_BANNER_DIM = Limit(64, f"the game's banners have {_cfg.banner_dim} features")
MAX_CHECKPOINT_BYTES = Limit(1 << 30, "the largest network the limits allow with its optimizer state is well under "
                                      "1 GiB")
MAX_REPLAY_BYTES = Limit(1 << 30, "a replay of the largest scenario the limits allow (512 sites, 10,000 ticks) is "
                                  "about 250 MB uncompressed")
MAX_EPISODES = Limit(1_000_000, "the worlds of evaluation seed s are s x 1,000,000 + episode: more episodes would "
                                 "replay the next seed's worlds")
MAX_SEED = Limit(2**31 - 1, "world seeds are a seed times about 10^6 plus a world index, kept in int64")
MAX_SEEDS = Limit(1000, "each seed is a full evaluation")

LIMITS = {name: value for name, value in globals().items() if isinstance(value, Limit)}


def over(limit: Limit, source: str, key: str, what: str, got) -> InputError:
    """The error for ``got`` above ``limit``: names the bound and why it is there."""
    return InputError(describe(source, key, f"{what} at most {limit}", got, limit.why))


# --- values shared by several inputs --------------------------------------------------------


def finite(x) -> bool:
    try:
        return math.isfinite(x)
    except (TypeError, OverflowError):
        return False


def parse_ints(text: str, option: str, minimum: int = 0, limit: Limit = MAX_SEEDS,
               largest: Limit = MAX_SEED) -> list[int]:
    """A comma-separated list of integers or ranges from the command line (``--seeds 0,1,2`` or
    ``0-9``): at most ``limit`` of them, each in [minimum, largest]."""
    parts = [p.strip() for p in str(text).split(",")]
    if not parts or any(not re.fullmatch(r"-?[0-9]+|[0-9]+-[0-9]+", p) for p in parts):
        raise InputError(describe(option, "value", "comma-separated integers or ranges such as 0,1,2 or 0-9", text))
    values: list[int] = []
    for part in parts:
        lo, dash, hi = part.partition("-") if not part.startswith("-") else (part, "", "")
        if dash:
            lo, hi = int(lo), int(hi)
            if hi < lo:
                raise InputError(describe(option, "value", "a range low-high with low <= high", part))
            if hi - lo + 1 + len(values) > limit.value:
                raise over(limit, option, "value", "a count", hi - lo + 1 + len(values))
            values += range(lo, hi + 1)
        else:
            values.append(int(lo))
    if len(values) > limit.value:
        raise over(limit, option, "value", "a count", len(values))
    for v in values:
        if v < minimum:
            raise InputError(describe(option, "value", f"integers >= {minimum}", v))
        if v > largest.value:
            raise over(largest, option, "value", "integers", v)
    return values


def parse_numbers(text: str, option: str, lo: float, hi: float, example: str, lo_inclusive: bool = True) -> list[float]:
    """A comma-separated list of numbers in [lo, hi] (``lo_inclusive=False``: (lo, hi]) from the command line."""
    interval = f"{'[' if lo_inclusive else '('}{lo:g}, {hi:g}]"
    try:
        values = [float(p) for p in str(text).split(",")]
    except ValueError:
        raise InputError(describe(option, "value", f"comma-separated numbers in {interval} such as {example}",
                                  text)) from None
    for v in values:
        if not ((lo <= v) if lo_inclusive else (lo < v)) or not v <= hi:  # (also refuses nan)
            raise InputError(describe(option, "value", f"numbers in {interval}", v))
    return values


def parse_fractions(text: str, option: str) -> list[float]:
    """A comma-separated list of numbers in [0, 1] from the command line."""
    return parse_numbers(text, option, 0, 1, "0,0.5,1")


def check_count(value, option: str, minimum: int = 1, limit: Limit | None = None):
    """An integer option in [minimum, limit]."""
    if value is None:
        return value
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InputError(describe(option, "value", f"an integer >= {minimum}", value))
    if limit is not None and value > limit.value:
        raise over(limit, option, "value", "an integer", value)
    return value


def check_output_path(path, option: str, kind: str = "file"):
    """An output ``kind`` ("file" or "folder") can be created at ``path``: it is not an existing
    thing of the other kind, and no part of the path above it is a file. Checked before the
    work whose result it will hold."""
    if path is None:
        return path
    from pathlib import Path

    p = Path(path)
    if p.exists() and p.is_dir() != (kind == "folder"):
        raise InputError(describe(option, "value", f"a path for a {kind}", str(p),
                                  f"it exists and is a {'folder' if p.is_dir() else 'file'}"))
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(describe(option, "value", f"a path for a {kind}", str(p), f"{parent} is a file"))
            break
    return path
