"""Headless rendering speed: frames/s for a 500-tick replay (target >= 60 frames/s).

    SDL_VIDEODRIVER=dummy .venv/bin/python benchmarks/render.py [n_ticks] [W] [H]

Measures ``Renderer.frame`` (draw + copy to a uint8[H, W, 3] array) for every frame,
then the same with interpolated half-tick frames, then GIF encoding of 100 frames.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from villages.render import Renderer, export, load_replay, save_replay  # noqa: E402
from villages.render._demo import demo_replay  # noqa: E402


def main():
    n_ticks = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    size = (int(sys.argv[2]), int(sys.argv[3])) if len(sys.argv) > 3 else (1024, 640)
    t0 = time.perf_counter()
    replay = demo_replay(n_ticks, seed=0)
    t_sim = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.replay.npz"
        t0 = time.perf_counter()
        save_replay(replay, path)
        t_save = time.perf_counter() - t0
        t0 = time.perf_counter()
        replay = load_replay(path)
        t_load = time.perf_counter() - t0
        kb = path.stat().st_size / 1024
    print(f"replay: {replay.n_frames} frames, {kb:.0f} KiB; simulate+record {t_sim:.2f}s, save {t_save * 1e3:.0f} ms, "
          f"load {t_load * 1e3:.0f} ms")

    t0 = time.perf_counter()
    rend = Renderer(replay, size)
    t_init = time.perf_counter() - t0
    rend.frame(0)  # warm the caches
    t0 = time.perf_counter()
    for t in range(replay.n_frames):
        rend.frame(t)
    dt = time.perf_counter() - t0
    fps = replay.n_frames / dt
    t0 = time.perf_counter()
    n_half = 0
    for t in range(replay.n_frames - 1):
        rend.frame(t + 0.5)
        n_half += 1
    fps_half = n_half / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for t in range(replay.n_frames):
        rend.draw(t)
    fps_draw = replay.n_frames / (time.perf_counter() - t0)
    print(f"renderer init {t_init * 1e3:.0f} ms; size {size[0]}x{size[1]}")
    print(f"render_frame: {fps:.0f} frames/s (interpolated sub-ticks {fps_half:.0f} frames/s; draw only {fps_draw:.0f} frames/s)"
          f"  [target >= 60: {'OK' if fps >= 60 else 'TOO SLOW'}]")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        export(replay, Path(tmp) / "bench.gif", size=(800, 500), stop=100)
        print(f"GIF export: 100 frames at 800x500 in {time.perf_counter() - t0:.2f}s")


if __name__ == "__main__":
    main()
