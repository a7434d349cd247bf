"""Replay format round trip and errors, headless rendering, GIF/PNG export, viewer loop."""

import os

os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import json
import subprocess
import sys

import numpy as np
import pytest

from villages.game import GameConfig, init_state, step
from villages.game.config import ARMY_RETURN, WAR
from villages.render import ReplayError, ReplayRecorder, load_replay, save_replay
from villages.render._demo import demo_layout, demo_meta, demo_replay
from villages.render.replay import FRAME_ARRAYS, STATIC_ARRAYS, replay_arrays
from villages.render.viewer import DEFAULT_EXPORT_SIZE

N_TICKS = 90


@pytest.fixture(scope="module")
def replay():
    return demo_replay(N_TICKS, seed=2)


@pytest.fixture(scope="module")
def replay_file(replay, tmp_path_factory):
    return save_replay(replay, tmp_path_factory.mktemp("replay") / "demo.replay.npz")


# --- format -------------------------------------------------------------------------


def test_round_trip(replay, replay_file):
    back = load_replay(replay_file)
    assert back.n_frames == replay.n_frames == N_TICKS + 1
    for name, dtype in FRAME_ARRAYS + STATIC_ARRAYS:
        a, b = getattr(replay, name), getattr(back, name)
        assert a.dtype == b.dtype == np.dtype(dtype), name
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert back.meta == replay.meta
    assert back.meta["alliance_names"][2] == "Brotherhood"
    assert back.meta["format_version"] == 3
    assert sorted(back.events) == sorted(replay.events)
    for kind, cols in replay.events.items():
        assert sorted(cols) == sorted(back.events[kind])
        for col, arr in cols.items():
            np.testing.assert_array_equal(arr, back.events[kind][col], err_msg=f"{kind}/{col}")
    # the file uses the documented flat names
    with np.load(replay_file) as z:
        assert "event/battle/attacker" in z.files and "event/diplomacy/relation" in z.files
        assert sorted(str(x) for x in z["index"]) == sorted(f for f in z.files if f != "index")
        assert json.loads(str(z["meta"]))["scenario"] == "render-demo"


def test_recorder_keeps_one_world_and_events():
    cfg = GameConfig()
    s = init_state(cfg, demo_layout(cfg), [5, 6, 7])
    rec = ReplayRecorder(cfg, demo_meta(cfg, 10))
    rec.record(s, world=1)
    from villages.game import action_mask, sample_legal

    for _ in range(10):
        a = sample_legal(action_mask(cfg, s, np.arange(cfg.n_players)), s.key, s.tick)
        s, ev = step(cfg, s, a)
        rec.record(s, ev, world=1, reward=np.arange(3.0), intended=None)
    r = rec.replay()
    assert r.n_frames == 11
    np.testing.assert_array_equal(r.owner[-1], s.owner[1])
    np.testing.assert_array_equal(r.troops[-1], s.troops[1])
    np.testing.assert_array_equal(r.relation[-1], s.relation[1])
    np.testing.assert_array_equal(r.pos, s.pos[1])
    assert np.all(r.reward[1:] == 1.0) and np.isnan(r.reward[0]) and np.isnan(r.intended).all()
    n_build_world1 = int((ev.get("build").get("world", np.array([])) == 1).sum()) if ev.count("build") else 0
    assert len(r.events_in_frame(10).get("build", {}).get("tick", [])) == n_build_world1


def test_event_helpers_and_army_legs(replay):
    d = replay.events["diplomacy"]
    war = np.nonzero((d["relation"] == WAR) & (d["player"] == -1))[0]
    assert len(war) == 1
    t = int(d["tick"][war[0]])
    assert "diplomacy" in replay.events_at(t)
    f = int(d["frame"][war[0]])
    assert replay.events_in_frame(f)["diplomacy"]["alliance_a"][0] == 2
    assert replay.relation[f, 2, 0] == WAR and replay.relation[f - 1, 2, 0] != WAR
    # Launches: departure tick and origin of the leg are recorded with the army.
    la = replay.events["launch"]
    for m, tick, frame, src in zip(la["army"], la["tick"], la["frame"], la["src"]):
        assert replay.army_active[frame, m]
        assert replay.army_depart[frame, m] == tick and replay.army_from[frame, m] == src
    # Armies returning from a battle start at the battlefield.
    bt = replay.events["battle"]
    checked = 0
    for m, tick, frame, v in zip(bt["army"], bt["tick"], bt["frame"], bt["village"]):
        if replay.army_active[frame, m] and replay.army_kind[frame, m] == ARMY_RETURN:
            assert replay.army_from[frame, m] == v and replay.army_depart[frame, m] == tick
            checked += 1
    assert checked > 0


def test_meta_validation():
    cfg = GameConfig()
    with pytest.raises(ValueError, match="alliance_names"):
        ReplayRecorder(cfg, {"alliance_names": ["just one"]})
    with pytest.raises(ValueError, match="focal_player"):
        ReplayRecorder(cfg, {"focal_player": 99})
    with pytest.raises(ValueError, match="alliance_colours"):
        ReplayRecorder(cfg, {"alliance_colours": [[300, 0, 0]] * cfg.n_alliances})
    meta = ReplayRecorder(cfg, {}).meta  # defaults fill everything
    assert len(meta["alliance_names"]) == cfg.n_alliances and meta["focal_player"] == 0


def test_truncated_file(replay_file, tmp_path):
    bad = tmp_path / "truncated.replay.npz"
    data = replay_file.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReplayError, match="truncated") as e:
        load_replay(bad)
    assert "truncated.replay.npz" in str(e.value)


def test_corrupted_file(replay_file, tmp_path):
    bad = tmp_path / "corrupted.replay.npz"
    data = bytearray(replay_file.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 64] = bytes((b ^ 0x5A) for b in data[mid : mid + 64])
    bad.write_bytes(bytes(data))
    with pytest.raises(ReplayError, match="corrupted") as e:
        load_replay(bad)
    assert "corrupted.replay.npz" in str(e.value)


def test_single_flipped_bit_in_member_data(replay_file, tmp_path):
    import struct
    import zipfile

    with zipfile.ZipFile(replay_file) as zf:
        info = zf.getinfo("troops.npy")
    data = bytearray(replay_file.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    k = info.header_offset + 30 + name_len + extra_len + info.compress_size // 2
    data[k] ^= 0x01
    bad = tmp_path / "bitflip.replay.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(ReplayError, match=r"bitflip.replay.npz.*corrupted.*'troops'"):
        load_replay(bad)


def test_wrong_version(replay, tmp_path):
    bad = tmp_path / "future.replay.npz"
    arrays = replay_arrays(replay)
    arrays["version"] = np.array(99)
    with open(bad, "wb") as f:
        np.savez_compressed(f, **arrays)
    with pytest.raises(ReplayError, match="version 99 is newer") as e:
        load_replay(bad)
    assert "future.replay.npz" in str(e.value)


def test_not_a_replay(tmp_path):
    other = tmp_path / "other.npz"
    np.savez_compressed(other, x=np.arange(3))
    with pytest.raises(ReplayError, match="not a villages replay"):
        load_replay(other)
    with pytest.raises(ReplayError, match="no such file"):
        load_replay(tmp_path / "missing.npz")
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(ReplayError, match="empty"):
        load_replay(empty)


# --- rendering ----------------------------------------------------------------------


def test_frame_shape_and_interpolation(replay):
    from villages.render import render_frame

    img = render_frame(replay, 10, size=(640, 400))
    assert img.shape == (400, 640, 3) and img.dtype == np.uint8
    # armies glide between ticks: a half-tick frame differs from both neighbours
    moving = [i for i in range(replay.n_frames - 1) if replay.army_active[i].sum() >= 3]
    i = moving[len(moving) // 2]
    a, h = render_frame(replay, i, size=(640, 400)), render_frame(replay, i + 0.5, size=(640, 400))
    assert not np.array_equal(a, h)


def test_village_pixels_carry_alliance_colour(replay):
    from villages.render import Renderer

    rend = Renderer(replay, size=(900, 600))
    checked = 0
    for i in (0, replay.n_frames // 2, replay.n_frames - 1):
        img = rend.frame(i)
        xy = rend.map_to_screen(replay.pos)
        rad = rend.village_radius(i)
        owned = np.nonzero(replay.owner[i] >= 0)[0]
        for v in owned:
            # discs are drawn in site order; skip a centre that a later disc covers
            later = [w for w in owned if w > v and np.hypot(*(xy[w] - xy[v])) <= rad[w] + 1.5]
            if later:
                continue
            a = replay.player_alliance[replay.owner[i, v]]
            x, y = int(xy[v, 0]), int(xy[v, 1])
            assert tuple(img[y, x]) == replay.alliance_colour(int(a)), (i, v)
            checked += 1
    assert checked >= 20


def test_gif_export(replay, tmp_path):
    from PIL import Image

    from villages.render import export

    out = export(replay, tmp_path / "film.gif", size=(480, 300), start=0, stop=20, every=2)
    with Image.open(out) as im:
        assert im.format == "GIF"
        assert im.size == (480, 300)
        assert im.n_frames == 10


def test_png_export_with_substeps(replay, tmp_path):
    from villages.render import export

    out = export(replay, tmp_path / "frames", size=(320, 240), start=30, stop=36, substeps=2)
    files = sorted(out.glob("frame_*.png"))
    assert len(files) == 6 + 5  # 6 ticks, one sub-frame between consecutive ticks


def test_viewer_loop_headless(replay):
    import pygame

    from villages.render import run_viewer

    pygame.display.init()
    pygame.display.set_mode((800, 500))

    def key(k):
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=k, mod=0, unicode="", scancode=0))

    for k in (pygame.K_SPACE, pygame.K_RIGHT, pygame.K_RIGHT, pygame.K_RIGHT, pygame.K_LEFT, pygame.K_UP, pygame.K_DOWN):
        key(k)
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=(400, 200), button=1))
    pygame.event.post(pygame.event.Event(pygame.QUIT))
    t = run_viewer(replay, size=(800, 500), start=5, max_iterations=50)
    assert t == 7  # paused at 5, three steps right, one left
    # without events it plays and stops after max_iterations
    t = run_viewer(replay, size=(640, 400), start=0, max_iterations=3)
    assert 0 < t < replay.n_frames


def test_renderer_clicks(replay):
    from villages.render import Renderer

    rend = Renderer(replay, size=(800, 500))
    i = 20
    v = int(np.nonzero(replay.owner[i] >= 0)[0][0])
    x, y = rend.map_to_screen(replay.pos[v])
    assert rend.village_at((x, y), i) == v
    bar = rend.bar
    assert rend.frame_at(bar.x) == 0 and rend.frame_at(bar.right) == replay.n_frames - 1
    img = rend.draw(i, selected=v)
    assert img.get_size() == (800, 500)
    rend.resize((1200, 700))
    assert rend.frame(i).shape == (700, 1200, 3)


def test_game_does_not_import_render():
    code = "import sys, villages.game; assert not any(m.startswith('villages.render') for m in sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)
    code = "import sys, villages.render.replay; assert 'pygame' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- the `villages replay` command ------------------------------------------------


def test_cli_replay_bad_files_exit_2(tmp_path, capsys):
    import typer

    from villages.render import cli_replay

    bad = tmp_path / "bad.replay.npz"
    bad.write_bytes(b"not a zip at all")
    for path, why in ((bad, "not a valid replay archive"), (tmp_path / "missing.npz", "no such file")):
        with pytest.raises(typer.Exit) as e:
            cli_replay(path, tmp_path / "out.gif")
        assert e.value.exit_code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: replay file") and str(path) in err and why in err
    assert not (tmp_path / "out.gif").exists()


def test_cli_replay_without_a_display_says_export(replay_file, capsys):
    import typer

    from villages.render import cli_replay

    with pytest.raises(typer.Exit) as e:  # SDL_VIDEODRIVER=dummy here: a window would be invisible
        cli_replay(replay_file)
    assert e.value.exit_code == 2 and "--export" in capsys.readouterr().err


def test_cli_replay_exports(replay_file, tmp_path):
    from PIL import Image

    from villages.render import cli_replay

    gif = cli_replay(replay_file, tmp_path / "film.gif", size=(400, 250))
    with Image.open(gif) as im:
        assert im.n_frames == N_TICKS + 1 and im.size == (400, 250)
    png = cli_replay(replay_file, tmp_path / "last.png")
    with Image.open(png) as im:
        assert im.size == DEFAULT_EXPORT_SIZE == (1280, 800)  # the default size
    folder = cli_replay(replay_file, tmp_path / "frames", size=(320, 240))
    assert len(list(folder.glob("frame_*.png"))) == N_TICKS + 1


def test_documented_eval_then_replay_gif(tmp_path):
    """README path: `villages eval ... --record DIR`, then `villages replay FILE --export out.gif`.
    The replay of inner-misalignment shows Aurora's collapse and Brotherhood's war at tick 0."""
    from PIL import Image

    from villages.render import Renderer
    from villages.render.viewer import WAR_C

    env = dict(os.environ, SDL_VIDEODRIVER="dummy")
    villages_cmd = [sys.executable, "-m", "villages.cli"]
    subprocess.run(villages_cmd + ["eval", "raider", "--scenario", "inner-misalignment", "--episodes", "2",
                                   "--record", str(tmp_path / "replays")], check=True, env=env, capture_output=True)
    rfile = tmp_path / "replays" / "inner-misalignment-seed0-episode0.replay.npz"
    assert rfile.exists()
    gif = tmp_path / "inner.gif"
    out = subprocess.run(villages_cmd + ["replay", str(rfile), "--export", str(gif)], env=env, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    r = load_replay(rfile)
    with Image.open(gif) as im:
        assert im.n_frames == r.n_frames
        # Frame 0 is the world before the tick-0 timeline events; the events show on the last tick-0 frame.
        tick0 = int(np.nonzero(r.tick == 0)[0][-1])
        im.seek(tick0)
        first = np.asarray(im.convert("RGB"))
    # headlines at tick 0: the war declaration (red box) and Aurora's collapse
    rend = Renderer(r, DEFAULT_EXPORT_SIZE)
    heads = [text for f, t, text, col in rend.toasts if r.tick[f] == 0]
    assert any("DECLARES WAR" in h and "BROTHERHOOD" in h for h in heads)
    assert any(h.startswith("Aurora collapses") for h in heads)
    header = first[: rend.header_rect.bottom + 30, rend.header_rect.centerx:rend.header_rect.right]
    assert (np.abs(header.astype(int) - WAR_C).sum(-1) < 30).sum() > 200
    # a bad file through the command: message on stderr, exit code 2
    bad = tmp_path / "bad.replay.npz"
    bad.write_bytes(rfile.read_bytes()[:500])
    out = subprocess.run(villages_cmd + ["replay", str(bad)], env=env, capture_output=True, text=True)
    assert out.returncode == 2 and "error: replay file" in out.stderr and "bad.replay.npz" in out.stderr
