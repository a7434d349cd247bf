"""Replays and rendering: replay file format, pygame viewer, headless frame/GIF export.

``villages.render.replay`` (recording/loading) does not need pygame; the viewer names
(``Renderer``, ``render_frame``, ``export``, ``export_still``, ``run_viewer``) and the
side-by-side names (``SideBySide``, ``export_side_by_side``: two replays of one episode
in two panes with one timeline) import it on first use.
``cli_replay`` is the ``villages replay`` command; ``villages.render.live`` renders a
running PettingZoo env (``render_mode="rgb_array"`` / ``"human"``).
"""

from .replay import (
    FORMAT_VERSION,
    Replay,
    ReplayError,
    ReplayRecorder,
    load_replay,
    save_replay,
)

_VIEWER = ("Renderer", "render_frame", "export", "export_still", "run_viewer", "DEFAULT_EXPORT_SIZE")
_PAIR = ("SideBySide", "export_side_by_side")


def __getattr__(name):
    if name in _VIEWER:
        from . import viewer

        return getattr(viewer, name)
    if name in _PAIR:
        from . import side_by_side

        return getattr(side_by_side, name)
    if name == "cli_replay":
        from .cli import cli_replay

        return cli_replay
    raise AttributeError(f"module 'villages.render' has no attribute {name!r}")


__all__ = ["FORMAT_VERSION", "Replay", "ReplayError", "ReplayRecorder", "load_replay", "save_replay", "cli_replay", *_VIEWER, *_PAIR]
