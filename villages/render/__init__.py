"""Replays and rendering: replay file format, pygame viewer, headless frame/GIF export.

``villages.render.replay`` (recording/loading) does not need pygame; the viewer names
(``Renderer``, ``render_frame``, ``export``, ``run_viewer``) import it on first use.
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

_VIEWER = ("Renderer", "render_frame", "export", "run_viewer")


def __getattr__(name):
    if name in _VIEWER:
        from . import viewer

        return getattr(viewer, name)
    if name == "cli_replay":
        from .cli import cli_replay

        return cli_replay
    raise AttributeError(f"module 'villages.render' has no attribute {name!r}")


__all__ = ["FORMAT_VERSION", "Replay", "ReplayError", "ReplayRecorder", "load_replay", "save_replay", "cli_replay", *_VIEWER]
