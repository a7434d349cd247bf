"""Golden trajectories: one digest per built-in scenario of everything the engine produces.

Each scenario is played through ``ScenarioGame`` for ``TICKS`` ticks at a small batch and
a larger one (the engine's small- and large-batch code paths), focal seats picking
uniformly among their legal actions with a fixed ``np.random.Generator``, background
seats played by the scenario's bots. Every state array, every event column, the focal
observations, masks and rewards of every tick go into one SHA-256 per (scenario, batch).

``tests/test_golden.py`` compares the digests with ``tests/golden_digests.json``. Those
are regenerated only when a change of the rules is intended (and said so in the commit):

    PYTHONPATH=$PWD python tests/golden.py --write
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np

from villages.game import State
from villages.scenarios import loader
from villages.scenarios.runtime import ScenarioGame

TICKS = 60  # past the tick-40 and tick-50 timeline events of the built-ins
BATCHES = (1, 8)  # 8 worlds x 10 seats is above the engine's 64-row small-batch threshold
DIGESTS = Path(__file__).with_name("golden_digests.json")


def _feed(h, name: str, a) -> None:
    a = np.ascontiguousarray(np.asarray(a))
    h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
    h.update(a.tobytes())


def random_legal(mask: np.ndarray, gen: np.random.Generator) -> np.ndarray:
    """One uniformly drawn legal action per (world, seat) of a bool mask [B, n, n_actions]."""
    u = gen.random(mask.shape[:2])
    k = np.floor(u * mask.sum(-1)).astype(np.int64)
    return (np.cumsum(mask, -1) > k[..., None]).argmax(-1)


def trajectory_digest(name: str, batch: int, ticks: int = TICKS) -> str:
    game = ScenarioGame(loader.load(name), batch_size=batch)
    gen = np.random.default_rng(17)
    h = hashlib.sha256()
    obs, mask = game.reset(np.arange(batch) + 1000)
    for t in range(ticks):
        for f in fields(State):
            _feed(h, f"state.{f.name}", getattr(game.state, f.name))
        _feed(h, "obs", obs)
        _feed(h, "mask", mask)
        obs, mask, reward, done, info = game.step(random_legal(mask, gen))
        _feed(h, "reward", reward)
        for kind, cols in info["events"].to_records().items():
            for col in sorted(cols):
                _feed(h, f"event.{kind}.{col}", cols[col])
        if done:
            break
    for f in fields(State):
        _feed(h, f"state.{f.name}", getattr(game.state, f.name))
    return h.hexdigest()


def all_digests() -> dict[str, str]:
    return {f"{name}@{batch}": trajectory_digest(name, batch) for name in loader.builtin_names() for batch in BATCHES}


if __name__ == "__main__":
    digests = all_digests()
    if "--write" in sys.argv:
        DIGESTS.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")
    print(json.dumps(digests, indent=1, sort_keys=True))
