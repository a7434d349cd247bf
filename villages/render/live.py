"""Live rendering of a running PettingZoo env (``render_mode="rgb_array"`` / ``"human"``).

The env keeps a ``ReplayRecorder`` from ``reset()`` (only when a render mode is set) and
records every step; ``render_env(env)`` draws the last recorded frame with the same
``Renderer`` the replay viewer uses, so live frames and replay frames look the same:

* ``"rgb_array"``: returns ``uint8[H, W, 3]`` (off-screen; no display needed);
* ``"human"``: draws into a pygame window (opened on first use, resizable), paced to
  ``render_fps`` frames per second (0: as fast as the env steps); returns None. Closing
  the window stops the drawing for the rest of the env's life; ``env.close()`` closes it.

This module needs pygame (imported on first use of a view, not at import time).
"""

from __future__ import annotations

import os

import numpy as np

from .replay import ReplayRecorder, replay_meta

DEFAULT_SIZE = (960, 600)


def env_meta(env) -> dict:
    """Replay metadata for the env's current episode (the runner's, plus the agents and seed)."""
    seed = None if env._np_random_seed is None else int(env._np_random_seed)
    return replay_meta(env.game, 0, agents=list(env.possible_agents), seed=seed)


def start_recording(env) -> ReplayRecorder:
    """A recorder for the episode that ``env.reset()`` has just started, holding its first frame."""
    rec = ReplayRecorder(env.config, env_meta(env))
    rec.record(env.game.state, env.game.events, world=0, reward=0.0, intended=0.0)
    return rec


class LiveView:
    """Draws the last frame of a growing recording; owns the window in ``"human"`` mode."""

    def __init__(self, mode: str, size=DEFAULT_SIZE, fps: float = 8.0, title: str = "villages"):
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame

        self.pygame = pygame
        self.mode = mode
        self.size = (int(size[0]), int(size[1]))
        self.fps = float(fps or 0.0)
        self.title = title
        self.renderer = None
        self.screen = None
        self.clock = None
        self.closed = False  # the user closed the window: stop drawing
        self._drawn = None  # (recorder id, frames) last drawn

    def _renderer(self, recorder: ReplayRecorder, size):
        from .viewer import Renderer

        replay = recorder.replay()
        if self.renderer is None:
            self.renderer = Renderer(replay, size)
        else:
            self.renderer.set_replay(replay)
            self.renderer.resize(size)
        # the timeline spans the whole episode, not just the ticks played so far
        self.renderer.span = int(replay.meta.get("episode_length", 0)) - int(replay.tick[0])
        return self.renderer

    def rgb(self, recorder: ReplayRecorder) -> np.ndarray:
        rend = self._renderer(recorder, self.size)
        return rend.frame(rend.T - 1)

    def show(self, recorder: ReplayRecorder) -> None:
        if self.closed:
            return
        pg = self.pygame
        if self.screen is None:
            pg.display.init()
            pg.font.init()
            self.screen = pg.display.set_mode(self.size, pg.RESIZABLE)
            pg.display.set_caption(self.title)
            self.clock = pg.time.Clock()
        for e in pg.event.get():
            if e.type == pg.QUIT or (e.type == pg.KEYDOWN and e.key in (pg.K_ESCAPE, pg.K_q)):
                self.close()
                self.closed = True
                return
        self.screen = pg.display.get_surface()
        key = (id(recorder), recorder.n_frames, self.screen.get_size())
        if key != self._drawn:
            rend = self._renderer(recorder, self.screen.get_size())
            rend.draw(rend.T - 1, self.screen, status="live")
            pg.display.flip()
            self._drawn = key
        if self.fps > 0:
            self.clock.tick(self.fps)

    def close(self) -> None:
        if self.screen is not None:
            self.pygame.display.quit()
            self.screen = None
            self._drawn = None


def render_env(env):
    """``env.render()`` for ``villages.parallel_env``: a frame (``"rgb_array"``) or a window update (``"human"``)."""
    mode = env.render_mode
    if mode not in ("rgb_array", "human"):
        raise ValueError(f"render_env: render_mode must be 'rgb_array' or 'human', got {mode!r}")
    rec = env._recorder
    if rec is None or rec.n_frames == 0:
        raise RuntimeError("render() before reset(): call env.reset() first")
    view = env._viewer
    if view is None or view.mode != mode:
        size = getattr(env, "render_size", None) or DEFAULT_SIZE
        fps = getattr(env, "render_fps", None)
        fps = env.metadata.get("render_fps", 8) if fps is None else fps
        view = env._viewer = LiveView(mode, size, fps, title=f"villages - {env.spec.name}")
    if mode == "rgb_array":
        return view.rgb(rec)
    view.show(rec)
    return None
