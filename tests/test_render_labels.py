"""Readable exports: on every built-in scenario's map (several episode seeds: the map is
drawn per seed), at the default export size and in a side-by-side pane, no village label
overlaps another label or any village disc, and every label lies on the map."""

import os

os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import numpy as np
import pytest

from villages.render import ReplayRecorder
from villages.render.labels import overlaps, place_labels
from villages.render.side_by_side import DEFAULT_PAIR_SIZE, SideBySide
from villages.render.viewer import DEFAULT_EXPORT_SIZE, Renderer
from villages.scenarios import ScenarioGame, builtin_names, load
from villages.render.replay import replay_meta
from villages.scenarios.runner import episode_seeds

N_MAPS = 6  # episode seeds per scenario


def first_frames(name: str) -> list:
    """A one-frame replay of each of the first N_MAPS episodes of evaluation seed 0."""
    spec = load(name)
    game = ScenarioGame(spec, N_MAPS)
    game.reset(episode_seeds(0, N_MAPS))
    out = []
    for world in range(N_MAPS):
        rec = ReplayRecorder(game.config, replay_meta(game, world))
        rec.record(game.state, None, world=world)
        out.append(rec.replay())
    return out


def assert_legible(rend: Renderer, where: str) -> None:
    rects = rend.label_rects
    found = overlaps(rects, rend.screen_pos, np.full(len(rects), rend.max_village_radius()))
    assert not found, f"{where}: overlapping labels/discs {found[:6]}"
    m = rend.map_area
    assert (rects[:, 0] >= m.x).all() and (rects[:, 1] >= m.y).all(), where
    assert (rects[:, 0] + rects[:, 2] <= m.right).all() and (rects[:, 1] + rects[:, 3] <= m.bottom).all(), where


@pytest.mark.parametrize("name", builtin_names())
def test_labels_never_overlap_on_builtin_maps(name):
    for k, replay in enumerate(first_frames(name)):
        assert_legible(Renderer(replay, DEFAULT_EXPORT_SIZE), f"{name} episode {k} at {DEFAULT_EXPORT_SIZE}")
        pair = SideBySide(replay, replay, DEFAULT_PAIR_SIZE)
        for side, pane in zip("AB", pair.panes):
            assert_legible(pane, f"{name} episode {k}, pane {side} of a {DEFAULT_PAIR_SIZE} pair")


def test_overlaps_finds_what_overlaps():
    rects = np.array([[0, 0, 10, 10], [5, 5, 10, 10], [40, 40, 5, 5]], float)
    assert overlaps(rects) == [("label", 0, 1)]
    assert overlaps(rects[2:], centres=[[0.0, 0.0], [43.0, 50.0]], radii=[3.0, 6.0]) == [("disc", 0, 1)]


def test_placement_moves_labels_out_of_a_cluster():
    """Six sites on top of each other: the labels fan out without overlapping."""
    centres = np.array([[200.0, 200.0]] * 3 + [[206.0, 203.0]] * 3)
    sizes = np.tile([40.0, 14.0], (6, 1))
    top_left = place_labels(centres, np.full(6, 9.0), sizes, (0, 0, 400, 400))
    rects = np.concatenate([top_left, sizes], 1)
    assert overlaps(rects, centres, np.full(6, 9.0)) == []
