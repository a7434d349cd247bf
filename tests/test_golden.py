"""The engine's trajectories are bit-identical to the recorded ones (see ``golden.py``)."""

import json

import pytest
from golden import BATCHES, DIGESTS, trajectory_digest

from villages.scenarios import loader

EXPECTED = json.loads(DIGESTS.read_text())


def test_every_builtin_scenario_has_a_golden_digest():
    assert sorted(EXPECTED) == sorted(f"{n}@{b}" for n in loader.builtin_names() for b in BATCHES)


@pytest.mark.parametrize("name", loader.builtin_names())
@pytest.mark.parametrize("batch", BATCHES)
def test_trajectory_matches_golden_digest(name, batch):
    got = trajectory_digest(name, batch)
    assert got == EXPECTED[f"{name}@{batch}"], (
        f"{name} at batch {batch}: the engine's trajectory changed (digest {got}). If the rules were meant "
        "to change, regenerate with `PYTHONPATH=$PWD python tests/golden.py --write` and say so in the commit.")
