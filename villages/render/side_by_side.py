"""Two replays of the same episode side by side: two panes, one timeline.

The picture a paper on this testbed prints: a pseudo-aligned and a robust agent on the
same deployment episode (same scenario, same episode seed), each pane with its map,
the agent's choices and its panel, driven by one shared timeline (markers of A above
the bar, of B below it).

    pair = SideBySide(load_replay("villages.replay.npz"), load_replay("diverse.replay.npz"))
    export_side_by_side(replay_a, replay_b, "pair.gif")          # or a folder, or a .png still

Frames are matched by index when both replays have the same ticks (two recordings of one
episode seed always do, up to the shorter one's end) and by game tick otherwise.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402

from .replay import Replay  # noqa: E402
from .viewer import BG, DIM, RULE, TEXT, Renderer, film_times, write_film  # noqa: E402

DEFAULT_PAIR_SIZE = (1800, 900)


def pane_label(replay: Replay, fallback: str) -> str:
    """A short name for a pane: the policy's checkpoint name (its run folder for the
    generic ``checkpoint.pt`` / ``final.pt``), else the policy name, else ``fallback``."""
    policy = replay.meta.get("policy")
    if not policy:
        return Path(replay.path).name.split(".")[0] if replay.path else fallback
    p = Path(str(policy))
    if p.suffix == ".pt":
        return p.parent.name if p.stem in ("checkpoint", "final") and p.parent.name else p.stem
    return str(policy)


def mismatch(a: Replay, b: Replay) -> str | None:
    """Why the two replays are not the same episode (scenario, episode seed), or None."""
    diffs = []
    for key in ("scenario", "seed"):
        va, vb = a.meta.get(key), b.meta.get(key)
        if va != vb:
            diffs.append(f"{key} {va!r} vs {vb!r}")
    if not np.array_equal(a.pos, b.pos):
        diffs.append("different maps")
    return ", ".join(diffs) or None


def pairing_note(a: Replay, b: Replay) -> tuple[str, bool]:
    """(what the two panes are, whether that is a problem). The same world seed on the same map in two
    scenarios is a paired comparison by design (e.g. unwatched vs watched), not a mismatch."""
    why = mismatch(a, b)
    if why is None:
        return "same episode", False
    if a.meta.get("seed") == b.meta.get("seed") and np.array_equal(a.pos, b.pos):  # (so only the scenario differs)
        return f"same world seed, two scenarios: {a.meta.get('scenario')} vs {b.meta.get('scenario')}", False
    return f"not the same episode: {why}", True


class SideBySide:
    """Draws replays A and B in two panes above one shared timeline (the ``Renderer`` API:
    ``draw``, ``frame``, ``resize``, ``frame_at``, ``village_at``, ``T``)."""

    def __init__(self, replay_a: Replay, replay_b: Replay, size=DEFAULT_PAIR_SIZE, labels=None):
        self.replays = (replay_a, replay_b)
        labels = labels or (pane_label(replay_a, "A"), pane_label(replay_b, "B"))
        self.labels = tuple(f"{k}: {lab}" for k, lab in zip("AB", labels))
        self.panes = [Renderer(r, (640, 480), title=lab, show_timeline=False) for r, lab in zip(self.replays, self.labels)]
        n = min(replay_a.n_frames, replay_b.n_frames)
        self.aligned = bool(np.array_equal(replay_a.tick[:n], replay_b.tick[:n]))
        self.master = 0 if replay_a.n_frames >= replay_b.n_frames else 1
        self.T = max(replay_a.n_frames, replay_b.n_frames)
        self.mismatch = mismatch(replay_a, replay_b)
        self.note, self.note_is_warning = pairing_note(replay_a, replay_b)  # (once: the timeline shows it each frame)
        self.size = (0, 0)
        self.resize(size)

    # -- geometry ----------------------------------------------------------------
    def resize(self, size):
        W, H = max(int(size[0]), 640), max(int(size[1]), 300)
        if (W, H) == self.size:
            return
        self.size = (W, H)
        tl_h = max(56, int(H * 0.085))
        half = W // 2
        self.pane_rects = [pygame.Rect(0, 0, half, H - tl_h), pygame.Rect(half, 0, W - half, H - tl_h)]
        for pane, rect in zip(self.panes, self.pane_rects):
            pane.resize(rect.size)
        self._pane_surfaces = [pygame.Surface(rect.size) for rect in self.pane_rects]
        self.map_area = pygame.Rect(0, 0, W, H - tl_h)
        self.timeline_rect = pygame.Rect(0, H - tl_h, W, tl_h)
        self.font = pygame.font.Font(None, int(np.clip(H / 38, 12, 26)))
        self.font_b = pygame.font.Font(None, int(np.clip(H / 38, 12, 26)))
        self.font_b.set_bold(True)
        pad = self.font_b.size("B ")[0] + 16
        mid = self.timeline_rect.y + tl_h // 2
        self.bar = pygame.Rect(pad, mid - 4, W - pad - 16, 8)

    def frame_at(self, x: float) -> float:
        """Timeline x pixel -> frame (float)."""
        frac = (x - self.bar.x) / max(self.bar.w, 1)
        return float(np.clip(frac, 0.0, 1.0) * max(self.T - 1, 0))

    def frame_of_tick(self, tick: int) -> int:
        """Frame (on the shared timeline) of game tick ``tick``."""
        return self.replays[self.master].frame_of_tick(tick)

    def pane_time(self, k: int, t: float) -> float:
        """Pane ``k``'s frame (float) at shared time ``t``."""
        r = self.replays[k]
        t = float(np.clip(t, 0, self.T - 1))
        if self.aligned or k == self.master:
            return min(t, r.n_frames - 1)
        i = int(math.floor(t))
        return float(r.frame_of_tick(int(self.replays[self.master].tick[i])))

    def village_at(self, xy, t: float):
        """(pane, site) under pixel ``xy``, or None."""
        for k, rect in enumerate(self.pane_rects):
            if rect.collidepoint(xy):
                v = self.panes[k].village_at((xy[0] - rect.x, xy[1] - rect.y), self.pane_time(k, t))
                return None if v is None else (k, v)
        return None

    # -- drawing -----------------------------------------------------------------
    def draw(self, t: float, surface: pygame.Surface | None = None, selected=None, status: str | None = None):
        """Draw shared time ``t`` onto ``surface`` (a new one if None); ``selected``: (pane, site)."""
        if surface is None:
            surface = pygame.Surface(self.size)
        elif surface.get_size() != self.size:
            self.resize(surface.get_size())
        surface.fill(BG)
        for k, (pane, rect) in enumerate(zip(self.panes, self.pane_rects)):
            sel = selected[1] if selected is not None and selected[0] == k else None
            # Each pane on a surface of its own, then copied: a pane looks exactly as its replay alone.
            if self._pane_surfaces[k].get_size() != rect.size:
                self._pane_surfaces[k] = pygame.Surface(rect.size)
            pane.draw(self.pane_time(k, t), self._pane_surfaces[k], selected=sel, status=status if k == 0 else None)
            surface.blit(self._pane_surfaces[k], rect)
        x = self.pane_rects[1].x
        pygame.draw.line(surface, (120, 126, 138), (x, 0), (x, self.map_area.bottom), 3)
        self._draw_timeline(surface, float(np.clip(t, 0, self.T - 1)))
        return surface

    def frame(self, t: float) -> np.ndarray:
        surf = self.draw(t)
        W, H = self.size
        return np.frombuffer(bytearray(pygame.image.tobytes(surf, "RGB")), np.uint8).reshape(H, W, 3)

    def _text(self, s, colour, bold=False):
        return (self.font_b if bold else self.font).render(s, True, colour)

    def _draw_timeline(self, s, t):
        tr, bar = self.timeline_rect, self.bar
        pygame.draw.rect(s, (18, 20, 25), tr)
        pygame.draw.line(s, RULE, tr.topleft, tr.topright)
        T = max(self.T - 1, 1)
        pygame.draw.rect(s, (45, 50, 60), bar, border_radius=4)
        pygame.draw.rect(s, (95, 105, 125), (bar.x, bar.y, int(bar.w * t / T), bar.h), border_radius=4)
        for k, pane in enumerate(self.panes):  # A's markers above the bar, B's below
            up = k == 0
            lab = self._text("AB"[k], TEXT, bold=True)
            s.blit(lab, (8, bar.y - lab.get_height() - 1 if up else bar.bottom + 1))
            label_right = -1
            for f, col, tall, text in pane.marks:
                f = self._shared_frame(k, f)
                x = bar.x + int(bar.w * f / T)
                ext = 9 if tall else 5
                y0, y1 = (bar.y - ext, bar.centery) if up else (bar.centery, bar.bottom + ext)
                pygame.draw.line(s, col, (x, y0), (x, y1), 2 if tall else 1)
                if text and up and x > label_right:
                    surf = self._text(text, col)
                    lx = max(min(x - surf.get_width() // 2, bar.right - surf.get_width()), bar.x, label_right + 4)
                    s.blit(surf, (lx, tr.y + 2))
                    label_right = lx + surf.get_width()
        x = bar.x + int(bar.w * t / T)
        pygame.draw.rect(s, TEXT, (x - 2, bar.y - 8, 4, bar.h + 16), border_radius=2)
        master = self.replays[self.master]
        i = int(min(math.floor(t), self.T - 1))
        cap = self._text(f"tick {int(master.tick[i])}", TEXT, bold=True)
        s.blit(cap, (min(max(x - cap.get_width() // 2, bar.x), bar.right - cap.get_width()), bar.bottom + 4))
        surf = self._text(self.note, (238, 66, 54) if self.note_is_warning else DIM)
        s.blit(surf, (bar.right - surf.get_width(), tr.bottom - surf.get_height() - 2))

    def _shared_frame(self, k: int, f: int) -> float:
        """Pane ``k``'s frame ``f`` on the shared timeline."""
        if self.aligned or k == self.master:
            return float(f)
        return float(self.frame_of_tick(int(self.replays[k].tick[min(f, self.replays[k].n_frames - 1)])))


def export_side_by_side(replay_a: Replay, replay_b: Replay, out, size=DEFAULT_PAIR_SIZE, fps: float = 10.0,
                        every: int = 1, substeps: int = 1, still: int | None = None, labels=None) -> Path:
    """Write the pair as a GIF (``out`` ends with .gif), a folder of PNG frames, or one PNG
    (``out`` ends with .png) of game tick ``still`` (default: the last frame).

    ``labels``: the two pane names (default: the policies' checkpoint names)."""
    pair = SideBySide(replay_a, replay_b, size, labels)
    out = Path(out)
    if out.suffix.lower() == ".png":
        frame = pair.T - 1 if still is None else pair.frame_of_tick(int(still))
        return write_film(pair, out, [float(frame)])
    if still is not None:
        raise ValueError(f"a still (tick {still}) is one PNG: give an output ending with .png, not {str(out)!r}")
    return write_film(pair, out, film_times(pair.T, every=every, substeps=substeps), fps, substeps)
