"""Watch or export a replay.

    python -m villages.render REPLAY                      # interactive window
    python -m villages.render REPLAY --export out.gif     # GIF (or a folder: PNG frames)
        [--size 1280x800] [--fps 10] [--substeps 2] [--start 0] [--stop N] [--every 1]
    python -m villages.render --demo out.replay.npz [--ticks 150] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m villages.render", description=__doc__.splitlines()[0])
    ap.add_argument("replay", help="replay file (.replay.npz); with --demo, where to write the demo replay")
    ap.add_argument("--export", metavar="OUT", help="write a GIF (OUT ends with .gif) or PNG frames into folder OUT")
    ap.add_argument("--frame", type=float, metavar="T", help="with --export OUT.png: render the single frame T")
    ap.add_argument("--size", default=None, help="WxH pixels (default 1280x800)")
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--substeps", type=int, default=1, help="interpolated frames per tick in exports")
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--stop", type=int, default=None)
    ap.add_argument("--every", type=int, default=1)
    ap.add_argument("--demo", action="store_true", help="generate a demo replay instead of reading one")
    ap.add_argument("--ticks", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)

    from .replay import ReplayError, load_replay, save_replay

    if a.demo:
        from ._demo import demo_replay

        save_replay(demo_replay(a.ticks, a.seed), a.replay)
        print(f"wrote {a.replay}")
        return 0
    try:
        replay = load_replay(a.replay)
    except ReplayError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    size = None
    if a.size:
        try:
            w, h = (int(x) for x in a.size.lower().split("x"))
        except ValueError:
            ap.error(f"--size must look like 960x600, got {a.size!r}")
        size = (w, h)
    if a.export:
        from . import viewer

        if a.frame is not None or a.export.lower().endswith(".png"):
            import pygame

            frame = replay.n_frames - 1 if a.frame is None else a.frame
            rend = viewer.Renderer(replay, size or viewer.DEFAULT_EXPORT_SIZE)
            pygame.image.save(rend.draw(frame), a.export)
        else:
            viewer.export(replay, a.export, size=size or viewer.DEFAULT_EXPORT_SIZE, fps=a.fps, substeps=a.substeps,
                          start=a.start, stop=a.stop, every=a.every)
        print(f"wrote {a.export}")
        return 0
    from .viewer import run_viewer

    run_viewer(replay, size=size or (1280, 800), start=a.start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
