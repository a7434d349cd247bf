"""``villages replay FILE [--export OUT]``: watch a replay in a window, or export it headless."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .replay import ReplayError, load_replay

HEADLESS_DRIVERS = ("dummy", "offscreen")


def _fail(message: str):
    import typer

    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(2)


def cli_replay(file, export=None, size=None, fps: float = 10.0, substeps: int = 1) -> Path | None:
    """Open ``file`` in the pygame viewer, or (``export``) write a GIF (``.gif``), a single
    PNG frame of the last tick (``.png``) or a folder of PNG frames.

    A file that cannot be read prints ``error: replay file '...': <what is wrong>`` to
    stderr and exits with code 2 (``typer.Exit(2)``). Returns the export path.
    """
    try:
        replay = load_replay(file)
    except ReplayError as e:
        _fail(str(e))
    if replay.n_frames == 0:
        _fail(f"replay file {str(file)!r}: it holds no frames")
    if export is None:
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame

        from .viewer import run_viewer

        hint = "on a machine without a display, export instead: villages replay FILE --export out.gif"
        try:
            pygame.display.init()
        except pygame.error as e:
            _fail(f"cannot open a window ({e}); {hint}")
        driver = pygame.display.get_driver()
        if driver in HEADLESS_DRIVERS:  # SDL fell back to (or was told to use) an invisible display
            pygame.display.quit()
            _fail(f"no display to open a window on (SDL video driver {driver!r}); {hint}")
        try:
            run_viewer(replay, size=size or (1280, 800))
        except pygame.error as e:
            _fail(f"cannot open a window ({e}); {hint}")
        return None
    from . import viewer

    out = Path(export)
    try:
        if out.suffix.lower() == ".png":
            import pygame

            out.parent.mkdir(parents=True, exist_ok=True)
            pygame.image.save(viewer.Renderer(replay, size or (960, 600)).draw(replay.n_frames - 1), str(out))
        else:
            viewer.export(replay, out, size=size or (960, 600), fps=fps, substeps=substeps)
    except (OSError, RuntimeError, ValueError) as e:
        _fail(f"cannot export to {str(out)!r}: {e}")
    print(f"wrote {out} ({replay.n_frames} frames, ticks {int(replay.tick[0])}-{int(replay.tick[-1])})")
    return out
