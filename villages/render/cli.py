"""``villages replay FILE [FILE_B] [--export OUT] [--still TICK]``: watch one replay (or two
side by side) in a window, or export it headless."""

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


def _load(file):
    try:
        replay = load_replay(file)
    except ReplayError as e:
        _fail(str(e))
    if replay.n_frames == 0:
        _fail(f"replay file {str(file)!r}: it holds no frames")
    return replay


def parse_size(text: str | None):
    """``"1280x800"`` -> (1280, 800); None -> None."""
    if text is None:
        return None
    try:
        w, h = (int(x) for x in str(text).lower().split("x"))
    except ValueError:
        _fail(f"--size must look like 1280x800, got {text!r}")
    if w < 320 or h < 240:
        _fail(f"--size must be at least 320x240, got {text!r}")
    return (w, h)


def cli_replay(file, export=None, size=None, fps: float = 10.0, substeps: int = 1, other=None, still=None,
               every: int = 1) -> Path | None:
    """Open ``file`` (and ``other``, side by side, one timeline) in the pygame viewer, or
    (``export``) write a GIF (``.gif``), one PNG (``.png``: the frame of game tick ``still``,
    default the last) or a folder of PNG frames.

    A file that cannot be read prints ``error: replay file '...': <what is wrong>`` to
    stderr and exits with code 2 (``typer.Exit(2)``). Returns the export path.
    """
    replay = _load(file)
    second = _load(other) if other is not None else None
    if isinstance(size, str):
        size = parse_size(size)
    if second is not None:
        from .side_by_side import pairing_note

        note, bad = pairing_note(replay, second)
        if bad:
            print(f"warning: {file} and {other}: {note}; showing them side by side anyway", file=sys.stderr)
    if still is not None and (export is None or Path(export).suffix.lower() != ".png"):
        _fail(f"--still {still} writes one PNG: give --export OUT.png")
    if export is None:
        return _window(replay, second, size)
    from . import viewer

    out = Path(export)
    try:
        if second is not None:
            from .side_by_side import DEFAULT_PAIR_SIZE, export_side_by_side

            export_side_by_side(replay, second, out, size=size or DEFAULT_PAIR_SIZE, fps=fps, every=every,
                                substeps=substeps, still=still)
        elif out.suffix.lower() == ".png":
            viewer.export_still(replay, out, still, size=size or viewer.DEFAULT_EXPORT_SIZE)
        else:
            viewer.export(replay, out, size=size or viewer.DEFAULT_EXPORT_SIZE, fps=fps, substeps=substeps,
                          every=every)
    except (OSError, RuntimeError, ValueError) as e:
        _fail(f"cannot export to {str(out)!r}: {e}")
    if out.suffix.lower() == ".png":
        what = f"a still of tick {int(replay.tick[-1]) if still is None else still}"
    else:
        what = f"ticks {int(replay.tick[0])}-{int(replay.tick[-1])}" + (f", every {every}th frame" if every > 1 else "")
    pair = f", beside {other}" if second is not None else ""
    print(f"wrote {out} ({what}{pair})")
    return out


def _window(replay, second, size):
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    from .viewer import WINDOW_SIZE, run_viewer

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
        run_viewer(replay, size=size or WINDOW_SIZE, other=second)
    except pygame.error as e:
        _fail(f"cannot open a window ({e}); {hint}")
    return None
