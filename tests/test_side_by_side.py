"""Side by side: two agents' replays of the same episode seed in two panes with one
timeline, exported headless (GIF, PNG frames, a still), through ``villages replay A B``."""

import os

os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import numpy as np
import pytest
from test_replay_choices import sharp_policy

from villages.render.replay import ReplayObserver
from villages.render import load_replay
from villages.render.side_by_side import DEFAULT_PAIR_SIZE, SideBySide, export_side_by_side, pane_label
from villages.render.viewer import Renderer
from villages.scenarios import game_config, load
from villages.scenarios.runner import run_episodes

TICKS = 20
SMALL = (960, 540)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Two different networks and a scripted bot on episode 0 of seed 7 (a shorter one for
    the bot), plus the first network on another seed."""
    spec = load("inner-misalignment")
    config = game_config(spec, episode_length=TICKS)
    d = tmp_path_factory.mktemp("pair")
    paths = {}
    for name, policy, seed, cfg in (("a", sharp_policy(config, 0), 7, config), ("b", sharp_policy(config, 1), 7, config),
                                    ("bot", "raider", 7, game_config(spec, episode_length=TICKS // 2)),
                                    ("other_seed", sharp_policy(config, 0), 8, config)):
        paths[name] = d / f"{name}.replay.npz"
        run_episodes(spec, policy, n_episodes=1, seed=seed, observer=ReplayObserver(paths[name]), config=cfg)
    return paths


def test_panes_are_the_single_replay_views_on_one_timeline(recordings):
    a, b = load_replay(recordings["a"]), load_replay(recordings["b"])
    pair = SideBySide(a, b, SMALL, labels=("first", "second"))
    assert pair.aligned and pair.mismatch is None and pair.T == a.n_frames == b.n_frames
    assert pair.labels == ("A: first", "B: second")
    t = 9.0
    img = pair.frame(t)
    assert img.shape == (SMALL[1], SMALL[0], 3)
    for k, replay in enumerate((a, b)):
        rect = pair.pane_rects[k]
        alone = Renderer(replay, rect.size, title=pair.labels[k], show_timeline=False).frame(t)
        pane = img[rect.y : rect.bottom, rect.x : rect.right]
        inner = slice(0, -2) if k == 0 else slice(2, None)  # (the rule between the panes)
        assert np.array_equal(pane[:, inner], alone[:, inner]), f"pane {'AB'[k]} differs from its replay drawn alone"
    assert not np.array_equal(img[:, : SMALL[0] // 2], img[:, SMALL[0] // 2 :])  # two different agents
    # the shared timeline below both panes moves with t
    tl = pair.timeline_rect
    assert not np.array_equal(pair.frame(2.0)[tl.y :], img[tl.y :])


def test_pair_gif_and_png_frames_headless(recordings, tmp_path):
    from PIL import Image

    a, b = load_replay(recordings["a"]), load_replay(recordings["b"])
    gif = export_side_by_side(a, b, tmp_path / "pair.gif", size=SMALL, every=2)
    with Image.open(gif) as im:
        assert im.size == SMALL and im.n_frames == len(range(0, a.n_frames, 2))
    frames = export_side_by_side(a, b, tmp_path / "frames", size=SMALL, every=5)
    assert len(list(frames.glob("frame_*.png"))) == len(range(0, a.n_frames, 5))


def test_still_of_a_chosen_tick_through_the_command(recordings, tmp_path, capsys):
    from PIL import Image

    from villages.render import cli_replay

    out = cli_replay(recordings["a"], tmp_path / "still.png", other=recordings["b"], still=12)
    a, b = load_replay(recordings["a"]), load_replay(recordings["b"])
    pair = SideBySide(a, b, DEFAULT_PAIR_SIZE)
    with Image.open(out) as im:
        assert im.size == DEFAULT_PAIR_SIZE
        assert np.array_equal(np.asarray(im.convert("RGB")), pair.frame(a.frame_of_tick(12)))
    assert "a still of tick 12" in capsys.readouterr().out
    # a single replay's still
    one = cli_replay(recordings["a"], tmp_path / "one.png", still=12)
    with Image.open(one) as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), Renderer(a, im.size).frame(a.frame_of_tick(12)))


def test_still_needs_a_png_and_a_bad_second_file_exits_2(recordings, tmp_path, capsys):
    import typer

    from villages.render import cli_replay

    with pytest.raises(typer.Exit) as e:
        cli_replay(recordings["a"], tmp_path / "x.gif", other=recordings["b"], still=3)
    assert e.value.exit_code == 2 and "--export OUT.png" in capsys.readouterr().err
    with pytest.raises(typer.Exit) as e:
        cli_replay(recordings["a"], tmp_path / "x.gif", other=tmp_path / "missing.npz")
    assert e.value.exit_code == 2 and "missing.npz" in capsys.readouterr().err
    assert not (tmp_path / "x.gif").exists()


def test_one_world_seed_in_two_scenarios_is_a_pair_not_a_mismatch(recordings):
    import copy

    from villages.render.side_by_side import pairing_note

    a = load_replay(recordings["a"])
    b = copy.copy(a)
    b.meta = {**a.meta, "scenario": "oversight-control"}
    note, bad = pairing_note(a, b)
    assert not bad and note.startswith("same world seed, two scenarios") and "oversight-control" in note
    assert pairing_note(a, load_replay(recordings["other_seed"]))[1]


def test_different_episodes_are_flagged_and_lengths_may_differ(recordings, tmp_path, capsys):
    from villages.render import cli_replay

    a = load_replay(recordings["a"])
    other = load_replay(recordings["other_seed"])
    pair = SideBySide(a, other, SMALL)
    assert "seed" in pair.mismatch and "different maps" in pair.mismatch
    cli_replay(recordings["a"], tmp_path / "x.png", other=recordings["other_seed"], size="800x450")
    assert "not the same episode" in capsys.readouterr().err
    bot = load_replay(recordings["bot"])  # the same episode seed, ended earlier
    pair = SideBySide(a, bot, SMALL)
    assert pair.aligned and pair.mismatch is None and pair.T == a.n_frames > bot.n_frames
    assert pair.pane_time(1, pair.T - 1) == bot.n_frames - 1 and pair.pane_time(0, pair.T - 1) == a.n_frames - 1


def test_pair_viewer_loop_headless(recordings):
    import pygame

    from villages.render import run_viewer

    a, b = load_replay(recordings["a"]), load_replay(recordings["b"])
    pygame.display.init()
    pygame.display.set_mode(SMALL)
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_SPACE, mod=0, unicode="", scancode=0))
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_RIGHT, mod=0, unicode="", scancode=0))
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=(700, 200), button=1))
    t = run_viewer(a, size=SMALL, start=4, max_iterations=20, other=b)
    assert t == 5  # paused at 4, one step right


def test_pane_label_names_the_checkpoint(recordings):
    a = load_replay(recordings["a"])
    assert pane_label(a, "A") == "sharp"  # the policy's own name
    a.meta["policy"] = "runs/villages-seed0/final.pt"
    assert pane_label(a, "A") == "villages-seed0"
    a.meta["policy"] = "agents/diverse-3.pt"
    assert pane_label(a, "A") == "diverse-3"
