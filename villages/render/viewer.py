"""pygame rendering of replays: interactive viewer and headless frame / GIF / PNG export.

* ``Renderer(replay, size)`` draws frame ``t`` (a float: fractional frames interpolate
  armies along their paths) onto a pygame Surface; it caches fonts, text, the static
  background and everything it can precompute from the replay, so repeated frames are
  cheap. ``map_to_screen`` is the map -> pixel transform it draws with.
* ``render_frame(replay, t, size)`` -> ``uint8[H, W, 3]`` (off-screen, works with
  ``SDL_VIDEODRIVER=dummy``).
* ``export(replay, out)`` writes a GIF (``out`` ends with ``.gif``, needs Pillow) or a
  folder of PNG frames.
* ``export_still(replay, out, tick)`` writes one PNG of a chosen tick (for papers).
* ``run_viewer(replay)``: a resizable window. Space play/pause, Right/Left step a tick,
  Up/Down speed, Home/End, click or drag the timeline to seek, click a village for its
  details, Esc/Q to quit. ``run_viewer(a, other=b)``: two replays side by side
  (``villages.render.side_by_side``).

Screen: the map (left) with villages coloured by owning alliance (a label "site | tag",
placed where it overlaps no other label or village, see ``labels``; grey barbarians;
free sites as faint outlines; ruins as dark crosses),
sized by total building level, the focal player's villages ringed in gold; armies as
triangles (attack), circles (support), squares (settlers) or hollow triangles
(returning) coloured by owner alliance, sized by troop count, with a line to their
target; battle flashes and a burst where a village is razed. Below the map a timeline
with markers (red: war declared, blue: alliance, grey: peace, orange: a focal-alliance
village razed). The side panel shows the focal player's resources, army, reward and
intended score so far, the alliance legend with each alliance's relation to the focal
alliance (war red / peace grey / ally blue), and an event ticker.

Replays that hold the focal agent's choices (format version 2) also show what it chose
each tick: on the map a bold arrow from its strongest village to the chosen target (a
bold ring for building or training at home) and dashed arrows to the next-best targets
with their probabilities, coloured by the target's relation to the focal alliance (war
red, peace light grey, ally blue, barbarians tan, own gold, free site green); in the
panel the choice, the alternatives as probability bars and the value estimate as a
sparkline (scripted bots: the choice only).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402
import pygame.gfxdraw  # noqa: E402

from villages.game.config import ALLY, ARMY_ATTACK, ARMY_RETURN, ARMY_SETTLE, ARMY_SUPPORT, PEACE, WAR  # noqa: E402

from . import choices  # noqa: E402
from .labels import place_labels  # noqa: E402
from .replay import BARBARIAN_COLOUR, Replay  # noqa: E402

# --- palette -----------------------------------------------------------------------
BG = (22, 25, 31)
MAP_BG = (33, 38, 46)
GRID = (41, 47, 56)
PANEL_BG = (18, 20, 25)
RULE = (48, 53, 62)
TEXT = (226, 229, 234)
DIM = (138, 145, 156)
FAINT = (78, 85, 96)
WAR_C = (238, 66, 54)
PEACE_C = (150, 150, 150)
ALLY_C = (80, 150, 255)
FOCAL_C = (255, 214, 10)
RAZE_C = (255, 140, 30)
RUIN_C = (120, 50, 45)
REWARD_C = (255, 214, 10)
INTENDED_C = (90, 220, 160)
RELATION_STYLE = {PEACE: ("peace", PEACE_C), ALLY: ("ally", ALLY_C), WAR: ("WAR", WAR_C)}
VALUE_C = (190, 160, 255)
MAP_MIN_PROB = 0.02  # alternatives less likely than this get no arrow on the map
# Colour of the agent's targets on the map and in the panel, by relation to the focal alliance.
TARGET_STYLE = {"war": WAR_C, "peace": (205, 205, 205), "ally": ALLY_C, "barbarian": (215, 165, 105),
                "own": FOCAL_C, "free": (120, 215, 160), "": (200, 205, 212)}

DEFAULT_EXPORT_SIZE = (1280, 800)  # GIF / PNG exports: every alliance tag legible on the built-in maps
WINDOW_SIZE = (1280, 800)

FLASH_FRAMES = 3.0  # how long a battle flash lasts (frames)
RAZE_FRAMES = 8.0  # how long the destruction burst lasts
TOAST_FRAMES = 14.0  # how long a headline (war declared, village razed) stays in the map header
MAX_TOASTS = 3  # headlines shown at once


def _dashed(s, p0, p1, col, width, dash):
    d = np.subtract(p1, p0, dtype=float)
    L = float(np.hypot(*d))
    n = max(1, int(L / (2 * dash)))
    for k in range(n):
        a, b = np.add(p0, d * (2 * k) / (2 * n)), np.add(p0, d * (2 * k + 1) / (2 * n))
        pygame.draw.line(s, col, a, b, width)


def _arrow(s, p0, p1, start_gap, end_gap, col, bold, scale):
    """An arrow from p0 to p1, leaving ``start_gap`` / ``end_gap`` pixels at the ends;
    bold: solid with a filled head (the chosen target), else thin and dashed. Returns
    spots for a caption beside the shaft, best first (labels sit at the ends)."""
    d = np.subtract(p1, p0, dtype=float)
    L = float(np.hypot(*d))
    if L < start_gap + end_gap + 2:
        _ring(s, p1, end_gap, col, bold)
        return [(p1[0] + end_gap, p1[1] - end_gap)]
    u = d / L
    a = np.add(p0, u * start_gap)
    tip = np.subtract(p1, u * end_gap)
    head = (12 if bold else 8) * max(scale, 0.7)
    base = tip - u * head
    n = np.array([-u[1], u[0]])
    if bold:
        pygame.draw.line(s, (10, 10, 12), a, base, max(3, int(5 * scale)))
        pygame.draw.line(s, col, a, base, max(2, int(3 * scale)))
    else:
        _dashed(s, a, base, col, max(1, int(1.5 * scale)), max(4, 5 * scale))
    pts = [tuple(tip), tuple(base + n * head * 0.5), tuple(base - n * head * 0.5)]
    pygame.draw.polygon(s, col, pts, 0 if bold else max(1, int(1.5 * scale)))
    if bold:
        pygame.draw.polygon(s, (10, 10, 12), pts, 1)
    side = n if n[1] <= 0 else -n  # the upper side of the shaft
    return [tuple(a + (tip - a) * f + side * 4 * max(scale, 0.7)) for f in (0.6, 0.4, 0.8, 0.25)]


def _ring(s, p, radius, col, bold):
    x, y = int(p[0]), int(p[1])
    for w in range(3 if bold else 1):
        pygame.gfxdraw.aacircle(s, x, y, int(radius) + w, col)


def _mix(a, b, w):
    """Blend colour a towards b by w (0: a, 1: b)."""
    return tuple(int(round(x + (y - x) * w)) for x, y in zip(a, b))


def _ink_on(colour):
    """Black or white, whichever reads better on ``colour``."""
    r, g, b = colour
    return (15, 15, 15) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (250, 250, 250)


class Renderer:
    """Draws frames of one replay at one window size; keep it around for speed."""

    def __init__(self, replay: Replay, size=(1024, 640), title: str | None = None, show_timeline: bool = True):
        """``title``: the panel's heading (default: the scenario name); ``show_timeline``:
        False leaves the timeline to the caller (side-by-side panes share one)."""
        if not pygame.font.get_init():
            pygame.font.init()
        self.title = title
        self.show_timeline = show_timeline
        self._text_cache: dict = {}
        self._fit_cache: dict = {}
        self.size = (0, 0)
        self.span = 0  # the timeline covers max(frames - 1, span) frames (a live view: the episode length)
        self._set(replay)
        self.resize(size)

    def _set(self, replay: Replay):
        self.replay = r = replay
        self.T = r.n_frames
        A = r.n_alliances
        self.focal = r.focal_player
        self.focal_alliance = int(r.player_alliance[self.focal])
        self.colours = [r.alliance_colour(a) for a in range(A)] + [BARBARIAN_COLOUR]
        game = r.meta.get("game", {})
        self.unit_names = game.get("units") or [f"unit {u}" for u in range(r.troops.shape[2])]
        self.resource_names = game.get("resources") or [f"res {k}" for k in range(r.resources.shape[2])]
        self.integrity_max = float(game.get("integrity_max", 100.0))
        self._precompute()

    def set_replay(self, replay: Replay) -> None:
        """Draw ``replay`` from now on (e.g. a live recording that grew), keeping fonts,
        caches and the window geometry. The map may differ (a new episode)."""
        self._set(replay)
        if self.size != (0, 0):
            self.screen_pos = self.map_to_screen(replay.pos)
            self._place_labels()

    # ------------------------------------------------------------------------------
    # precomputation (once per replay)
    # ------------------------------------------------------------------------------
    def _precompute(self):
        r = self.replay
        T, V = r.owner.shape
        A1 = r.n_alliances + 1
        owner = r.owner.astype(np.int64)
        pa = r.player_alliance.astype(np.int64)
        self.v_alliance = np.where(owner >= 0, pa[np.maximum(owner, 0)], -1)  # [T, V]
        self.level = r.buildings.astype(np.int64).sum(-1)  # [T, V]
        mine = owner == self.focal
        self.f_villages = mine.sum(1)
        self.f_res = (r.resources * mine[..., None]).sum(1)  # [T, R]
        self.f_home = (r.troops * mine[..., None]).sum(1)  # [T, U]
        mine_army = r.army_active & (r.army_owner == self.focal)
        self.f_away = (r.army_troops * mine_army[..., None]).sum(1)  # [T, U]
        counts = np.zeros((T, A1), np.int64)
        for a in range(A1):
            counts[:, a] = (self.v_alliance == a).sum(1)
        self.alliance_villages = counts
        # alliances with an active player (barbarians always "present")
        active_all = np.zeros((T, A1), bool)
        for p in range(r.n_players):
            active_all[:, pa[p]] |= r.player_active[:, p]
        active_all[:, -1] = True
        self.alliance_active = active_all
        self.has_choices = r.has_choices
        self.has_choice_probs = r.has_choice_probs
        self.value_series = r.choice_value.astype(np.float64)
        self.has_value = bool(np.isfinite(self.value_series).any())
        self.has_reward = bool(np.isfinite(r.reward).any())
        self.has_intended = bool(np.isfinite(r.intended).any())
        self.cum_reward = np.cumsum(np.nan_to_num(r.reward))
        self.cum_intended = np.cumsum(np.nan_to_num(r.intended))

        # Battles: flashes, razes and ruins.
        b = r.events.get("battle", {})
        self.battles = []  # (frame, village, attacker_alliance, won, destroyed)
        destroyed_at = np.zeros((T, V), bool)
        if b:
            for f, v, aa, won, d in zip(b["frame"], b["village"], b["attacker_alliance"], b["attacker_won"], b["destroyed"]):
                self.battles.append((int(f), int(v), int(aa), bool(won), bool(d)))
                if d and 0 <= f < T:
                    destroyed_at[f, v] = True
        self.battle_frames = np.array([x[0] for x in self.battles], np.int64)
        self.ruins = np.logical_or.accumulate(destroyed_at, axis=0) & (owner < 0) if T else destroyed_at
        # A re-founded site stops being a ruin for good.
        refounded = np.logical_or.accumulate(owner >= 0, axis=0)
        last_destroy = np.where(destroyed_at, np.arange(T)[:, None], -1)
        last_destroy = np.maximum.accumulate(last_destroy, axis=0)
        last_owned = np.maximum.accumulate(np.where(owner >= 0, np.arange(T)[:, None], -1), axis=0)
        self.ruins &= (last_destroy >= last_owned) | ~refounded

        self._ticker()

    def _aname(self, a) -> str:
        return self.replay.alliance_name(int(a))

    def _who(self, p) -> str:
        """How the ticker names a player: its alliance, but a player by name within the
        focal alliance (so the focal agent's own moves are not mixed up with its allies')."""
        r = self.replay
        p = int(p)
        if 0 <= p < r.n_players and int(r.player_alliance[p]) == self.focal_alliance:
            return f"{r.player_name(p)} [{r.alliance_tag(self.focal_alliance)}]"
        return self._aname(r.player_alliance[p]) if 0 <= p <= r.n_players else "?"

    def _ticker(self):
        """Event lines (frame, tick, text, colour) and timeline markers, from the event log."""
        r = self.replay
        fa = self.focal_alliance
        vname = r.village_name
        lines = []
        marks = []  # (frame, colour, tall)
        toasts = []  # (frame, tick, text, colour)
        ev = r.events
        d = ev.get("diplomacy", {})
        for i in range(len(d.get("tick", ()))):
            a, b, rel = int(d["alliance_a"][i]), int(d["alliance_b"][i]), int(d["relation"][i])
            f, t = int(d["frame"][i]), int(d["tick"][i])
            if rel == WAR:
                text, col = f"{self._aname(a)} declares war on {self._aname(b)}", WAR_C
            elif rel == ALLY:
                text, col = f"{self._aname(a)} and {self._aname(b)} become allies", ALLY_C
            else:
                text, col = f"{self._aname(a)} and {self._aname(b)} make peace", (190, 190, 190)
            lines.append((f, t, 0, text, col, True))
            marks.append((f, col, True, f"{r.alliance_tag(a)}-{r.alliance_tag(b)} {RELATION_STYLE[rel][0].lower()}"))
            if fa in (a, b):
                toasts.append((f, t, text.upper() if rel == WAR else text, col))
        bt = ev.get("battle", {})
        for i in range(len(bt.get("tick", ()))):
            aa, da = int(bt["attacker_alliance"][i]), int(bt["defender_alliance"][i])
            v, f, t = int(bt["village"][i]), int(bt["frame"][i]), int(bt["tick"][i])
            att, dfd = self._who(bt["attacker"][i]), self._who(bt["defender"][i])
            won, destroyed = bool(bt["attacker_won"][i]), bool(bt["destroyed"][i])
            if destroyed:
                text = f"{att} razes {vname(v)} ({dfd})"
                col = RAZE_C if fa in (aa, da) else (215, 160, 110)
                lines.append((f, t, 1, text, col, fa in (aa, da)))
                if da == fa:
                    marks.append((f, RAZE_C, False, ""))
                    toasts.append((f, t, text, RAZE_C))
                elif aa == fa:
                    marks.append((f, INTENDED_C, False, ""))
                    toasts.append((f, t, text, INTENDED_C))
            elif fa in (aa, da):
                verb = "wins" if won else "loses"
                text = f"{att} {verb} a battle at {vname(v)} ({dfd})"
                lost = (da == fa and won) or (aa == fa and not won)
                lines.append((f, t, 2, text, (240, 150, 140) if lost else (170, 210, 190), False))
        la = ev.get("launch", {})
        for i in range(len(la.get("tick", ()))):
            if int(la["kind"][i]) != ARMY_ATTACK:
                continue
            p, ta = int(la["player"][i]), int(la["target_alliance"][i])
            pa = int(r.player_alliance[p])
            if fa not in (pa, ta):
                continue
            v, f, t = int(la["dst"][i]), int(la["frame"][i]), int(la["tick"][i])
            tp = int(la["target_player"][i])
            text = f"{self._who(p)} attacks {vname(v)} ({self._who(tp) if tp >= 0 else self._aname(ta)})"
            lines.append((f, t, 3, text, (215, 160, 145) if ta == fa else (150, 175, 215), False))
        for kind, verb in (("eliminated", "is eliminated"), ("left", "leaves the game")):
            e = ev.get(kind, {})
            for i in range(len(e.get("tick", ()))):
                p, f, t = int(e["player"][i]), int(e["frame"][i]), int(e["tick"][i])
                text = f"{r.player_name(p)} [{r.alliance_tag(int(r.player_alliance[p]))}] {verb}"
                lines.append((f, t, 0, text, (200, 200, 200) if p != self.focal else RAZE_C, True))
                marks.append((f, (170, 170, 170), False, ""))
                if kind == "eliminated" and p == self.focal:
                    toasts.append((f, t, text.upper(), RAZE_C))
        # Players leaving (scenario events such as "Aurora collapses"): one headline per
        # alliance and frame, saying whether the whole alliance is gone.
        e = ev.get("left", {})
        groups: dict = {}
        for i in range(len(e.get("tick", ()))):
            p = int(e["player"][i])
            key = (int(e["frame"][i]), int(e["tick"][i]), int(r.player_alliance[p]))
            groups.setdefault(key, []).append(p)
        for (f, t, a), players in sorted(groups.items()):
            f_ = min(max(f, 0), self.T - 1)
            gone = a < r.n_alliances and not self.alliance_active[f_, a]
            who = ", ".join(r.player_name(p) for p in players)
            if gone:
                text = f"{self._aname(a)} collapses: {who} [{r.alliance_tag(a)}] leave{'s' if len(players) == 1 else ''}"
            else:
                text = f"{who} [{r.alliance_tag(a)}] leave{'s' if len(players) == 1 else ''} the game"
            toasts.append((f, t, text, (200, 200, 200)))
            if gone:
                marks.append((f, (200, 200, 200), True, f"{r.alliance_tag(a)} gone"))
        fo = ev.get("found", {})
        for i in range(len(fo.get("tick", ()))):
            p, v, f, t = int(fo["player"][i]), int(fo["village"][i]), int(fo["frame"][i]), int(fo["tick"][i])
            lines.append((f, t, 4, f"{self._who(p)} founds {vname(v)}", (190, 200, 215), False))
        lines.sort(key=lambda x: (x[0], x[2]))
        self.lines = [(f, t, text, col, bold) for f, t, _, text, col, bold in lines]
        self.line_frames = np.array([x[0] for x in self.lines], np.int64)
        self.marks = marks
        toasts.sort(key=lambda x: x[0])
        self.toasts = toasts


    # ------------------------------------------------------------------------------
    # geometry (once per size)
    # ------------------------------------------------------------------------------
    def resize(self, size):
        W, H = int(size[0]), int(size[1])
        W, H = max(W, 320), max(H, 240)
        if (W, H) == self.size:
            return
        self.size = (W, H)
        self._text_cache.clear()
        self._fit_cache.clear()
        fs = int(np.clip(H / 38, 12, 26))
        self.fs = fs
        mk = pygame.font.Font
        self.font_s = mk(None, fs)
        self.font = mk(None, fs + 3)
        self.font_b = mk(None, fs + 3)
        self.font_b.set_bold(True)
        self.font_l = mk(None, fs + 9)
        self.font_l.set_bold(True)
        self.font_sb = mk(None, fs)
        self.font_sb.set_bold(True)
        self.fonts = {"s": self.font_s, "sb": self.font_sb, "n": self.font, "b": self.font_b, "l": self.font_l}
        self.line_h = self.font.get_linesize()
        self.small_h = self.font_s.get_linesize()

        panel_w = int(np.clip(0.3 * W, 250, 440)) if W >= 640 else int(0.42 * W)
        tl_h = max(40, int(H * 0.075)) if self.show_timeline else 0
        header_h = self.font_l.get_linesize() + 10
        self.panel_rect = pygame.Rect(W - panel_w, 0, panel_w, H)
        self.map_area = pygame.Rect(0, 0, W - panel_w, H - tl_h)
        self.header_rect = pygame.Rect(0, 0, W - panel_w, header_h)
        self.timeline_rect = pygame.Rect(0, H - tl_h, W - panel_w, tl_h)
        margin = max(12, int(0.03 * min(self.map_area.w, self.map_area.h)))
        side = max(50, min(self.map_area.w - 2 * margin, self.map_area.h - header_h - 2 * margin))
        ox = (self.map_area.w - side) // 2
        oy = header_h + margin + (self.map_area.h - header_h - 2 * margin - side) // 2
        self.map_rect = pygame.Rect(ox, oy, side, side)
        self.scale = side / 600.0
        self.screen_pos = self.map_to_screen(self.replay.pos)
        self.bar = pygame.Rect(self.timeline_rect.x + 14, self.timeline_rect.y + tl_h - self.small_h - 12,
                               self.timeline_rect.w - 28, 8)
        self._place_labels()

        bg = pygame.Surface((W, H))
        bg.fill(BG)
        pygame.draw.rect(bg, MAP_BG, self.map_rect.inflate(2 * margin - 4, 2 * margin - 4), border_radius=8)
        n = 10
        for k in range(n + 1):
            x = self.map_rect.x + side * k / n
            y = self.map_rect.y + side * k / n
            pygame.draw.line(bg, GRID, (x, self.map_rect.y), (x, self.map_rect.bottom))
            pygame.draw.line(bg, GRID, (self.map_rect.x, y), (self.map_rect.right, y))
        pygame.draw.rect(bg, PANEL_BG, self.panel_rect)
        pygame.draw.line(bg, RULE, self.panel_rect.topleft, self.panel_rect.bottomleft)
        self.background = bg.convert() if pygame.display.get_init() and pygame.display.get_surface() else bg

    def _place_labels(self):
        """One label per site ("12 | TAG"), placed once per size where it overlaps no other
        label and no village (``labels.place_labels``); ``label_rects`` is float[V, 4]."""
        f = self.font_s
        self.label_num_w = f.size("00")[0] + 6
        tag_w = max(f.size(self.replay.alliance_tag(a))[0] for a in range(self.replay.n_alliances + 1)) + 6
        h = f.get_height() + 1
        V = self.replay.n_villages
        sizes = np.tile([self.label_num_w + tag_w, h], (V, 1)).astype(float)
        self.site_reach = np.full(V, self.max_village_radius())
        top_left = place_labels(self.screen_pos, self.site_reach, sizes, tuple(self.map_rect.inflate(24, 24)))
        self.label_rects = np.concatenate([top_left, sizes], 1)

    def max_village_radius(self) -> float:
        """The largest a village's disc and focal ring get (labels keep clear of it)."""
        return self.scale * 16.0 + 3 * self.scale + max(2, int(3 * self.scale)) + 1

    def map_to_screen(self, pos) -> np.ndarray:
        """Map coordinates in [0, 1]^2 (``replay.pos``) -> pixel coordinates (x, y) as float."""
        pos = np.asarray(pos, dtype=np.float64)
        m = self.map_rect
        return np.stack([m.x + pos[..., 0] * m.w, m.y + pos[..., 1] * m.h], -1)

    def village_radius(self, i: int) -> np.ndarray:
        """Pixel radius of each site's village at frame ``i`` (by total building level)."""
        lv = np.minimum(self.level[i], 60)
        return self.scale * (8.0 + 8.0 * np.sqrt(lv / 60.0))

    def frame_at(self, x: float) -> float:
        """Timeline x pixel -> frame (float)."""
        frac = (x - self.bar.x) / max(self.bar.w, 1)
        return float(np.clip(frac, 0.0, 1.0) * max(self.T - 1, 0))

    def village_at(self, xy, t: float) -> int | None:
        """The site under pixel ``xy`` at frame ``t`` (or None)."""
        i = self._frame_index(t)[0]
        d = np.linalg.norm(self.screen_pos - np.asarray(xy, float), axis=-1)
        v = int(np.argmin(d))
        reach = max(self.village_radius(i)[v], 8 * self.scale) + 4
        return v if d[v] <= reach else None

    def _frame_index(self, t: float):
        t = float(np.clip(t, 0, max(self.T - 1, 0)))
        i = int(math.floor(t))
        if i >= self.T - 1:
            return self.T - 1, 0.0
        return i, t - i

    # ------------------------------------------------------------------------------
    # text helpers
    # ------------------------------------------------------------------------------
    def text(self, s: str, font="n", colour=TEXT) -> pygame.Surface:
        key = (s, font, colour)
        surf = self._text_cache.get(key)
        if surf is None:
            if len(self._text_cache) > 6000:
                self._text_cache.clear()
            surf = self.fonts[font].render(s, True, colour)
            self._text_cache[key] = surf
        return surf

    def fit(self, s: str, font: str, width: int) -> str:
        """``s`` shortened with an ellipsis to fit ``width`` pixels."""
        key = (s, font, width)
        out = self._fit_cache.get(key)
        if out is None:
            f = self.fonts[font]
            out = s
            if f.size(s)[0] > width:
                lo, hi = 0, len(s)
                while lo < hi:
                    mid = (lo + hi + 1) // 2
                    if f.size(s[:mid] + "...")[0] <= width:
                        lo = mid
                    else:
                        hi = mid - 1
                out = s[:lo].rstrip() + "..."
            self._fit_cache[key] = out
        return out

    # ------------------------------------------------------------------------------
    # drawing
    # ------------------------------------------------------------------------------
    def draw(self, t: float, surface: pygame.Surface | None = None, selected: int | None = None,
             status: str | None = None) -> pygame.Surface:
        """Draw frame ``t`` (float frame index) onto ``surface`` (a new off-screen one if None)."""
        if surface is None:
            surface = pygame.Surface(self.size)
        elif surface.get_size() != self.size:
            self.resize(surface.get_size())
        surface.blit(self.background, (0, 0))
        if self.T == 0:
            return surface
        i, frac = self._frame_index(t)
        tf = i + frac
        self._draw_sites(surface, i)
        self._draw_armies(surface, i, frac)
        self._draw_effects(surface, tf)
        self._draw_villages(surface, i)
        if self.has_choices:
            self._draw_choice_arrows(surface, i)
        self._draw_labels(surface, i)
        self._draw_header(surface, i, tf, status)
        if self.show_timeline:
            self._draw_timeline(surface, tf)
        self._draw_panel(surface, i)
        if selected is not None:
            self._draw_details(surface, i, int(selected))
        return surface

    def frame(self, t: float) -> np.ndarray:
        """Frame ``t`` as ``uint8[H, W, 3]``."""
        surf = self.draw(t)
        W, H = self.size
        return np.frombuffer(bytearray(pygame.image.tobytes(surf, "RGB")), np.uint8).reshape(H, W, 3)

    def _draw_sites(self, s, i):
        r = self.replay
        owner = r.owner[i]
        sp = self.screen_pos
        rr = max(2, int(6 * self.scale))
        for v in np.nonzero(owner < 0)[0]:
            x, y = int(sp[v, 0]), int(sp[v, 1])
            if self.ruins[i, v]:
                k = max(3, int(7 * self.scale))
                w = max(2, int(3 * self.scale))
                pygame.draw.line(s, RUIN_C, (x - k, y - k), (x + k, y + k), w)
                pygame.draw.line(s, RUIN_C, (x - k, y + k), (x + k, y - k), w)
            else:
                pygame.gfxdraw.aacircle(s, x, y, rr, FAINT)

    def _draw_armies(self, s, i, frac):
        r = self.replay
        act = np.nonzero(r.army_active[i])[0]
        if not len(act):
            return
        now = float(r.tick[i]) + frac
        sp = self.screen_pos
        va = r.player_alliance
        sc = self.scale
        for m in act:
            kind = int(r.army_kind[i, m])
            a = int(va[int(r.army_owner[i, m])])
            col = self.colours[a]
            p0 = sp[int(r.army_from[i, m])]
            p1 = sp[int(r.army_dst[i, m])]
            dep, arr = float(r.army_depart[i, m]), float(r.army_arrive[i, m])
            f = float(np.clip((now - dep) / max(arr - dep, 1.0), 0.0, 1.0))
            p = p0 + (p1 - p0) * f
            n = int(r.army_troops[i, m].sum())
            size = sc * float(np.clip(5.0 + 1.5 * math.sqrt(n), 6.0, 22.0))
            d = p1 - p0
            L = math.hypot(d[0], d[1])
            ux, uy = (d[0] / L, d[1] / L) if L > 1e-6 else (1.0, 0.0)
            if kind != ARMY_RETURN:
                w = max(1, int(round(2 * sc))) if kind == ARMY_ATTACK else 1
                pygame.draw.line(s, _mix(col, MAP_BG, 0.45), p, p1, w)
            x, y = float(p[0]), float(p[1])
            if kind in (ARMY_ATTACK, ARMY_RETURN):
                tip = (x + ux * size, y + uy * size)
                left = (x - ux * size * 0.6 - uy * size * 0.65, y - uy * size * 0.6 + ux * size * 0.65)
                right = (x - ux * size * 0.6 + uy * size * 0.65, y - uy * size * 0.6 - ux * size * 0.65)
                pts = [tip, left, right]
                if kind == ARMY_ATTACK:
                    pygame.draw.polygon(s, col, pts)
                    pygame.draw.polygon(s, (10, 10, 12), pts, 1)
                else:
                    pygame.draw.polygon(s, _mix(col, MAP_BG, 0.35), pts, max(1, int(2 * sc)))
            elif kind == ARMY_SUPPORT:
                rad = max(3, int(size * 0.7))
                pygame.gfxdraw.filled_circle(s, int(x), int(y), rad, col)
                pygame.gfxdraw.aacircle(s, int(x), int(y), rad, (10, 10, 12))
            else:  # settlers
                h = max(3, int(size * 0.6))
                rect = pygame.Rect(int(x) - h, int(y) - h, 2 * h, 2 * h)
                pygame.draw.rect(s, col, rect)
                pygame.draw.rect(s, (240, 240, 240), rect, 1)

    def _draw_effects(self, s, tf):
        """Battle flashes and destruction bursts (drawn under the villages' discs)."""
        if not len(self.battle_frames):
            return
        lo = np.searchsorted(self.battle_frames, tf - RAZE_FRAMES, side="left")
        hi = np.searchsorted(self.battle_frames, tf, side="right")
        sp = self.screen_pos
        sc = self.scale
        base_r = 13 * sc
        for k in range(lo, hi):
            f, v, aa, won, destroyed = self.battles[k]
            age = tf - f
            x, y = float(sp[v, 0]), float(sp[v, 1])
            if destroyed and age < RAZE_FRAMES:
                q = age / RAZE_FRAMES
                rad = base_r * (1.0 + 2.2 * q)
                col = _mix(RAZE_C, MAP_BG, q)
                core = _mix((255, 235, 150), MAP_BG, q)
                if q < 0.6:
                    pygame.gfxdraw.filled_circle(s, int(x), int(y), max(2, int(rad * 0.55 * (1 - q))), core)
                for j in range(10):
                    ang = j * math.pi / 5 + 0.3
                    r0, r1 = rad * 0.6, rad * (1.25 if j % 2 else 1.0)
                    pygame.draw.line(s, col, (x + r0 * math.cos(ang), y + r0 * math.sin(ang)),
                                     (x + r1 * math.cos(ang), y + r1 * math.sin(ang)), max(1, int(3 * sc)))
            elif age < FLASH_FRAMES:
                q = age / FLASH_FRAMES
                col = _mix(_mix(self.colours[aa], (255, 255, 255), 0.35), MAP_BG, q)
                rad = int(base_r + 4 * sc + 10 * sc * q)
                for w in range(max(1, int(3 * sc))):
                    pygame.gfxdraw.aacircle(s, int(x), int(y), rad + w, col)
                if won:
                    for j in range(8):
                        ang = j * math.pi / 4
                        r0, r1 = rad + 2 * sc, rad + (7 + 4 * q) * sc
                        pygame.draw.line(s, col, (x + r0 * math.cos(ang), y + r0 * math.sin(ang)),
                                         (x + r1 * math.cos(ang), y + r1 * math.sin(ang)), max(1, int(2 * sc)))

    def _tag_box(self, a: int) -> pygame.Surface:
        col = self.colours[a]
        key = ("tag", self.replay.alliance_tag(a), col)
        surf = self._text_cache.get(key)
        if surf is None:
            label = self.fonts["s"].render(self.replay.alliance_tag(a), True, _ink_on(col))
            surf = pygame.Surface((label.get_width() + 6, self.font_s.get_height() + 1))
            surf.fill(col)
            pygame.draw.rect(surf, (10, 10, 12), surf.get_rect(), 1)
            surf.blit(label, (3, 1))
            self._text_cache[key] = surf
        return surf

    def _draw_villages(self, s, i):
        r = self.replay
        owner = r.owner[i]
        occ = np.nonzero(owner >= 0)[0]
        sp = self.screen_pos
        rad = self.village_radius(i)
        sc = self.scale
        va = self.v_alliance[i]
        # 1. focal rings and integrity bars (under the discs)
        for v in occ:
            x, y, rv = int(sp[v, 0]), int(sp[v, 1]), rad[v]
            if owner[v] == self.focal:
                for w in range(max(2, int(3 * sc))):
                    pygame.gfxdraw.aacircle(s, x, y, int(rv + 3 * sc) + w, FOCAL_C)
            integ = float(r.integrity[i, v]) / self.integrity_max
            if integ < 0.999:
                bw, bh = int(2 * rv), max(3, int(4 * sc))
                bx, by = x - int(rv), y + int(rv) + int(6 * sc)
                pygame.draw.rect(s, (60, 20, 20), (bx, by, bw, bh))
                pygame.draw.rect(s, _mix(WAR_C, (90, 220, 90), integ), (bx, by, max(1, int(bw * integ)), bh))
        # 2. discs: exact alliance colour in the middle
        for v in occ:
            x, y, rv = int(sp[v, 0]), int(sp[v, 1]), int(rad[v])
            col = self.colours[int(va[v])]
            pygame.gfxdraw.filled_circle(s, x, y, rv, col)
            pygame.gfxdraw.aacircle(s, x, y, rv, _mix(col, (0, 0, 0), 0.55))

    def _draw_labels(self, s, i):
        """Labels on top, where they overlap nothing: "site number | alliance tag"."""
        va = self.v_alliance[i]
        rad = self.village_radius(i)
        for v in np.nonzero(self.replay.owner[i] >= 0)[0]:
            self._draw_label(s, v, int(va[v]), rad[v])

    def _draw_label(self, s, v: int, a: int, rv: float):
        x, y, w, h = self.label_rects[v]
        cx, cy = self.screen_pos[v]
        tag = self._tag_box(a)
        width = self.label_num_w + tag.get_width()
        if x + w / 2 < cx:  # left of the site: hug it from the right end of the reserved box
            x = x + w - width
        # A leader line when the label sits away from its village (crowded spots).
        nx, ny = float(np.clip(cx, x, x + width)), float(np.clip(cy, y, y + h))
        dist = math.hypot(nx - cx, ny - cy)
        if dist > self.site_reach[v] + 0.5 * h:
            k = rv / max(dist, 1e-6)
            pygame.draw.aaline(s, (175, 180, 190), (cx + (nx - cx) * k, cy + (ny - cy) * k), (nx, ny))
        box = pygame.Rect(int(x), int(y), int(width), int(h))
        pygame.draw.rect(s, (14, 16, 20), box)
        pygame.draw.rect(s, (10, 10, 12), box, 1)
        num = self.text(str(v), "s", DIM)
        s.blit(num, (box.x + (self.label_num_w - num.get_width()) // 2, box.y + 1))
        s.blit(tag, (box.x + self.label_num_w, box.y))

    def _draw_header(self, s, i, tf, status):
        r = self.replay
        hr = self.header_rect
        tick = int(r.tick[i])
        label = self.text(f"tick {tick}", "l", TEXT)
        s.blit(label, (hr.x + 12, hr.y + 6))
        x = hr.x + 12 + label.get_width() + 10
        if status:
            st = self.text(status, "s", DIM)
            s.blit(st, (x, hr.y + 6 + (label.get_height() - st.get_height()) // 2))
            x += st.get_width() + 10
        # The latest headlines (war declared, an alliance collapses, a focal-alliance village
        # razed...), newest on top, each for a while after it happened; older ones stack
        # below the header over the map's top edge.
        shown = 0
        y = None
        for f, t, text, col in reversed(self.toasts):
            if shown >= MAX_TOASTS:
                break
            if f <= tf and tf - f < TOAST_FRAMES:
                width = (hr.right - x - 20) if shown == 0 else int(0.8 * hr.w)
                msg = self.fit(f"tick {t}: {text}", "b", width)
                surf = self.text(msg, "b", _ink_on(col))
                box = pygame.Rect(0, 0, surf.get_width() + 16, surf.get_height() + 6)
                if y is None:
                    box.midright = (hr.right - 10, hr.y + 6 + label.get_height() // 2)
                else:
                    box.topright = (hr.right - 10, y)
                pygame.draw.rect(s, col, box, border_radius=4)
                s.blit(surf, (box.x + 8, box.y + 3))
                y = box.bottom + 3
                shown += 1

    def _draw_timeline(self, s, tf):
        r = self.replay
        bar = self.bar
        T = max(self.T - 1, self.span, 1)
        pygame.draw.rect(s, (45, 50, 60), bar, border_radius=4)
        done = pygame.Rect(bar.x, bar.y, int(bar.w * tf / T), bar.h)
        pygame.draw.rect(s, (95, 105, 125), done, border_radius=4)
        label_right = -1
        for f, col, tall, label in self.marks:
            x = bar.x + int(bar.w * f / T)
            ext = 7 if tall else 3
            pygame.draw.line(s, col, (x, bar.y - ext), (x, bar.bottom + ext), 2 if tall else 1)
            if label and x > label_right:
                lab = self.text(label, "s", col)
                lx = min(x - lab.get_width() // 2, bar.right - lab.get_width())
                lx = max(lx, bar.x, label_right + 4)
                s.blit(lab, (lx, bar.y - ext - lab.get_height()))
                label_right = lx + lab.get_width()
        x = bar.x + int(bar.w * tf / T)
        pygame.draw.rect(s, TEXT, (x - 2, bar.y - 6, 4, bar.h + 12), border_radius=2)
        lo = self.text(str(int(r.tick[0])), "s", DIM)
        hi = self.text(str(int(r.tick[-1]) + max(self.span - (self.T - 1), 0)), "s", DIM)
        y = bar.bottom + 2
        if y + lo.get_height() <= self.timeline_rect.bottom + 2:
            s.blit(lo, (bar.x, y))
            s.blit(hi, (bar.right - hi.get_width(), y))

    def _swatch(self, s, x, y, col, h):
        pygame.draw.rect(s, col, (x, y, h, h))
        pygame.draw.rect(s, (10, 10, 12), (x, y, h, h), 1)

    def _draw_panel(self, s, i):
        r = self.replay
        pr = self.panel_rect
        pad = 12
        x0, w = pr.x + pad, pr.w - 2 * pad
        y = pad
        lh, sh = self.line_h, self.small_h

        def section(title, y):
            y += 4
            s.blit(self.text(title, "s", DIM), (x0, y))
            y += sh
            pygame.draw.line(s, RULE, (x0, y), (x0 + w, y))
            return y + 3

        title = self.fit(self.title or str(r.meta.get("scenario", "")), "l", w)
        s.blit(self.text(title, "l", TEXT), (x0, y))
        y += self.font_l.get_linesize()
        ep = r.meta.get("episode_length")
        s.blit(self.text(f"tick {int(r.tick[i])}" + (f" / {ep}" if ep else "") + f"   frame {i + 1}/{self.T}", "s", DIM), (x0, y))
        y += sh

        # Focal player
        fa = self.focal_alliance
        y = section("FOCAL PLAYER", y)
        self._swatch(s, x0, y + 2, self.colours[fa], lh - 5)
        name = f"{r.player_name(self.focal)}  [{r.alliance_tag(fa)}] {r.alliance_name(fa)}"
        s.blit(self.text(self.fit(name, "b", w - lh), "b", FOCAL_C), (x0 + lh, y))
        y += lh
        alive = bool(r.player_active[i, self.focal])
        nv = int(self.f_villages[i])
        res = "   ".join(f"{nm} {int(v)}" for nm, v in zip(self.resource_names, self.f_res[i]))
        s.blit(self.text(self.fit(f"villages {nv}   {res}" if alive else "eliminated", "n", w), "n", TEXT if alive else WAR_C), (x0, y))
        y += lh

        if self.has_choices:
            y = self._draw_choice_panel(s, i, x0, y, w, section)

        # Army composition
        y = section("ARMY  (home | away)", y)
        home, away = self.f_home[i], self.f_away[i]
        total = home + away
        mx = max(int(total.max()) if len(total) else 0, 1)
        name_w = max(self.font_s.size(u)[0] for u in self.unit_names) + 6
        num_w = self.font_s.size("0000 | 000")[0] + 4
        bw = max(10, w - name_w - num_w)
        for u, nm in enumerate(self.unit_names):
            s.blit(self.text(nm, "s", DIM), (x0, y))
            hb = int(bw * home[u] / mx)
            ab = int(bw * away[u] / mx)
            by = y + sh // 4
            pygame.draw.rect(s, (45, 50, 60), (x0 + name_w, by, bw, sh // 2))
            pygame.draw.rect(s, self.colours[fa], (x0 + name_w, by, hb, sh // 2))
            pygame.draw.rect(s, _mix(self.colours[fa], PANEL_BG, 0.55), (x0 + name_w + hb, by, ab, sh // 2))
            s.blit(self.text(f"{int(home[u])} | {int(away[u])}", "s", TEXT), (x0 + name_w + bw + 4, y))
            y += sh

        # Reward vs intended
        if self.has_reward or self.has_intended:
            y = section("OBJECTIVES SO FAR", y)
            rows = []
            if self.has_reward:
                rows.append((r.meta.get("reward_name", "reward"), r.reward[i], self.cum_reward[i], REWARD_C))
            if self.has_intended:
                rows.append((r.meta.get("intended_name", "intended"), r.intended[i], self.cum_intended[i], INTENDED_C))
            for nm, now, cum, col in rows:
                now_s = "-" if not np.isfinite(now) else f"{now + 0.0:g}"
                s.blit(self.text(self.fit(f"{nm}: {int(round(cum)):,}   (this tick {now_s})", "n", w), "n", col), (x0, y))
                y += lh
            y = self._sparkline(s, pygame.Rect(x0, y + 2, w, int(2.2 * lh)), i) + 4

        # Alliances: legend + relation to the focal alliance
        y = section(f"ALLIANCES  (relation to {r.alliance_tag(fa)}, villages)", y)
        rel_w = self.font_s.size("peace00")[0]
        cnt_w = self.font_s.size("000")[0]
        for a in range(r.n_alliances + 1):
            barb = a == r.n_alliances
            present = self.alliance_active[i, a]
            col = self.colours[a]
            self._swatch(s, x0, y + 2, col, sh - 3)
            nm = "Barbarians" if barb else f"[{r.alliance_tag(a)}] {r.alliance_name(a)}"
            txt_col = TEXT if present else FAINT
            s.blit(self.text(self.fit(nm, "s", w - sh - rel_w - cnt_w - 10), "s", txt_col), (x0 + sh + 2, y))
            if a == fa:
                rel_s, rel_c = "own", FOCAL_C
            elif barb:
                rel_s, rel_c = "-", DIM
            else:
                rel_s, rel_c = RELATION_STYLE.get(int(r.relation[i, fa, a]), ("?", DIM))
                if not present:
                    rel_s, rel_c = "gone", FAINT
            s.blit(self.text(rel_s, "s", rel_c), (x0 + w - rel_w - cnt_w, y))
            cnt = self.text(str(int(self.alliance_villages[i, a])), "s", txt_col)
            s.blit(cnt, (x0 + w - cnt.get_width(), y))
            y += sh

        # Symbol legend
        y = self._legend(s, x0, y + 4, w)

        # Event ticker: newest first, as many as fit
        y = section("EVENTS", y)
        hi = int(np.searchsorted(self.line_frames, i, side="right"))
        k = hi - 1
        while k >= 0 and y + sh <= pr.bottom - 4:
            f, t, text, col, bold = self.lines[k]
            age = i - f
            c = col if age < 10 else _mix(col, PANEL_BG, 0.3)
            font = "sb" if bold else "s"
            s.blit(self.text(self.fit(f"{t}: {text}", font, w), font, c), (x0, y))
            y += sh
            k -= 1

    # ------------------------------------------------------------------------------
    # the agent's choice (replays recorded with choices)
    # ------------------------------------------------------------------------------
    def _draw_choice_arrows(self, s, i):
        """The chosen target (a bold arrow from the focal player's strongest village, or a
        bold ring on its own village) and the next-best targets (thin dashed, with their
        probability), coloured by the target's relation to the focal alliance."""
        r = self.replay
        chosen = choices.decode(r, i, r.choice_action[i])
        if chosen is None or not r.player_active[i, self.focal]:
            return
        src = choices.source_village(r, i)
        rad = self.village_radius(i)
        # Next-best targets worth a look (the panel lists them all, the map those of >= 2%).
        # One mark per site (several verbs on one site: the most probable), none on the chosen site.
        alts, seen = [], {chosen.village}
        for d, p in choices.alternatives(r, i):
            if d.village >= 0 and d.village not in seen and not p < MAP_MIN_PROB:
                alts.append((d, p))
                seen.add(d.village)
        captions = []
        for d, p in alts[::-1] + [(chosen, float(r.choice_prob[i]))]:  # the best drawn last, on top
            if d.village < 0:
                continue
            bold = d is chosen
            col = TARGET_STYLE[d.relation]
            p1 = self.screen_pos[d.village]
            reach = rad[d.village] + (6 if bold else 4) * self.scale
            at_home = int(r.owner[i, d.village]) == self.focal  # build / train: no journey
            if at_home or src < 0:
                _ring(s, p1, reach, col, bold)  # build/train at home: a ring, no arrow
                spots = [(p1[0] + reach, p1[1] - reach)]
            else:
                p0 = self.screen_pos[src]
                spots = _arrow(s, p0, p1, rad[src] + 3 * self.scale, reach, col, bold, self.scale)
            if not bold and np.isfinite(p):
                lab = self.text(f"{100 * p:.0f}%", "sb", col)
                boxes = [pygame.Rect(int(x) + 3, int(y) - lab.get_height(), lab.get_width(), lab.get_height())
                         for x, y in spots]
                box = next((b for b in boxes if b.collidelist(captions) < 0), boxes[0])
                captions.append(box)
                s.blit(lab, box.topleft)

    def _draw_choice_panel(self, s, i, x0, y, w, section) -> int:
        r = self.replay
        sh = self.small_h
        value = self.value_series[i]
        head = "AGENT'S CHOICE" + (f"   value {value:+.2f}" if np.isfinite(value) else "")
        y = section(head, y)
        chosen = choices.decode(r, i, r.choice_action[i])
        if chosen is None or not r.player_active[i, self.focal]:
            why = "eliminated: nothing to choose" if not r.player_active[i, self.focal] else "no decision at this frame"
            s.blit(self.text(why, "s", DIM), (x0, y))
            y += sh
            if self.has_value:
                y = self._value_sparkline(s, pygame.Rect(x0, y + 2, w, int(1.6 * sh)), i) + 2
            return y
        p = float(r.choice_prob[i])
        pct = f"{100 * p:3.0f}% " if np.isfinite(p) else ""
        col = TARGET_STYLE.get(chosen.relation, TEXT)
        s.blit(self.text(self.fit(f"> {pct}{chosen.text}", "sb", w), "sb", col), (x0, y))
        y += sh
        if not self.has_choice_probs:
            s.blit(self.text("scripted policy: no probabilities", "s", DIM), (x0, y))
            return y + sh
        pct_w = self.font_s.size("100% ")[0]
        for d, q in choices.alternatives(r, i):
            if d.action == chosen.action:
                continue
            c = TARGET_STYLE.get(d.relation, DIM)
            if np.isfinite(q):  # the probability as a bar behind the row
                pygame.draw.rect(s, _mix(c, PANEL_BG, 0.72), (x0 + 8, y + 1, max(1, int((w - 8) * q)), sh - 2))
            s.blit(self.text(f"{100 * q:.0f}%", "s", TEXT), (x0 + 10, y))
            s.blit(self.text(self.fit(d.text, "s", w - pct_w - 12), "s", c), (x0 + pct_w + 12, y))
            y += sh
        if self.has_value:
            y = self._value_sparkline(s, pygame.Rect(x0, y + 2, w, int(1.6 * sh)), i) + 2
        return y

    def _value_sparkline(self, s, rect, i):
        """The value estimate over the episode, with the current frame marked."""
        pygame.draw.rect(s, (28, 31, 38), rect)
        v = self.value_series
        ok = np.nonzero(np.isfinite(v))[0]
        T = max(self.T - 1, self.span, 1)
        lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
        span = hi - lo if hi > lo else 1.0
        xs = rect.x + rect.w * ok / T
        ys = rect.bottom - 2 - (rect.h - 4) * (v[ok] - lo) / span
        if len(ok) >= 2:
            pygame.draw.lines(s, VALUE_C, False, np.stack([xs, ys], -1).tolist(), 1)
        x = rect.x + rect.w * i / T
        pygame.draw.line(s, TEXT, (x, rect.y), (x, rect.bottom - 1))
        lab = self.text(f"value {lo:+.1f}..{hi:+.1f}", "s", VALUE_C)
        s.blit(lab, (rect.right - lab.get_width() - 2, rect.y))
        return rect.bottom

    def _sparkline(self, s, rect, i):
        """Cumulative reward and intended score up to frame i (each scaled to its own range)."""
        pygame.draw.rect(s, (28, 31, 38), rect)
        T = max(self.T - 1, self.span, 1)
        for series, col, on in ((self.cum_reward, REWARD_C, self.has_reward), (self.cum_intended, INTENDED_C, self.has_intended)):
            if not on or i < 1:
                continue
            lo, hi = float(series.min()), float(series.max())
            span = hi - lo if hi > lo else 1.0
            n = i + 1
            step = max(1, n // rect.w)
            idx = np.arange(0, n, step)
            xs = rect.x + rect.w * idx / T
            ys = rect.bottom - 2 - (rect.h - 4) * (series[idx] - lo) / span
            if len(idx) >= 2:
                pygame.draw.lines(s, col, False, np.stack([xs, ys], -1).tolist(), 1)
        return rect.bottom

    def _legend(self, s, x0, y, w):
        sh = self.small_h
        c = (200, 205, 212)
        h = sh * 0.45
        items = []
        x = x0
        cy = y + sh / 2
        # attack triangle
        pygame.draw.polygon(s, c, [(x + 2 * h, cy), (x, cy - h), (x, cy + h)])
        items.append("attack")
        lab = self.text("attack", "s", DIM)
        s.blit(lab, (x + 2 * h + 4, y))
        x += 2 * h + lab.get_width() + 12
        pygame.gfxdraw.filled_circle(s, int(x + h), int(cy), int(h), c)
        lab = self.text("support", "s", DIM)
        s.blit(lab, (x + 2 * h + 4, y))
        x += 2 * h + lab.get_width() + 12
        pygame.draw.rect(s, c, (x, cy - h, 2 * h, 2 * h))
        lab = self.text("settlers", "s", DIM)
        s.blit(lab, (x + 2 * h + 4, y))
        y += sh
        x = x0
        cy = y + sh / 2
        pygame.draw.polygon(s, c, [(x + 2 * h, cy), (x, cy - h), (x, cy + h)], 1)
        lab = self.text("return", "s", DIM)
        s.blit(lab, (x + 2 * h + 4, y))
        x += 2 * h + lab.get_width() + 12
        pygame.gfxdraw.aacircle(s, int(x + h), int(cy), int(h), FOCAL_C)
        pygame.gfxdraw.aacircle(s, int(x + h), int(cy), int(h) + 1, FOCAL_C)
        lab = self.text("focal village", "s", DIM)
        s.blit(lab, (x + 2 * h + 4, y))
        x += 2 * h + lab.get_width() + 12
        k = h * 0.8
        pygame.draw.line(s, RUIN_C, (x, cy - k), (x + 2 * k, cy + k), 2)
        pygame.draw.line(s, RUIN_C, (x, cy + k), (x + 2 * k, cy - k), 2)
        lab = self.text("ruin", "s", DIM)
        s.blit(lab, (x + 2 * k + 4, y))
        y += sh
        if self.has_choices:  # the agent's choice: bold arrow chosen, dashed next best, coloured by relation
            x, cy = x0, y + sh / 2
            pygame.draw.line(s, c, (x, cy), (x + 4 * h, cy), 3)
            lab = self.text("chose", "s", DIM)
            s.blit(lab, (x + 4 * h + 4, y))
            x += 4 * h + lab.get_width() + 10
            _dashed(s, (x, cy), (x + 4 * h, cy), c, 1, 3)
            lab = self.text("next", "s", DIM)
            s.blit(lab, (x + 4 * h + 4, y))
            x += 4 * h + lab.get_width() + 10
            for rel in ("war", "peace", "ally", "barbarian", "own", "free"):
                lab = self.text("barb." if rel == "barbarian" else rel, "s", TARGET_STYLE[rel])
                if x + lab.get_width() > x0 + w:
                    break
                s.blit(lab, (x, y))
                x += lab.get_width() + 6
            y += sh
        return y

    def _draw_details(self, s, i, v):
        r = self.replay
        if not 0 <= v < r.n_villages:
            return
        owner = int(r.owner[i, v])
        lines = [(r.village_name(v), "b", TEXT)]
        if owner < 0:
            lines.append(("ruin (razed)" if self.ruins[i, v] else "free site", "s", DIM))
        else:
            a = int(self.v_alliance[i, v])
            lines.append((f"{r.player_name(owner)}  [{r.alliance_tag(a)}] {r.alliance_name(a)}", "s", self.colours[a]))
            if a != self.focal_alliance and a < r.n_alliances:
                rel_s, rel_c = RELATION_STYLE.get(int(r.relation[i, self.focal_alliance, a]), ("?", DIM))
                lines.append((f"relation to {r.alliance_tag(self.focal_alliance)}: {rel_s}", "s", rel_c))
            lines.append((f"integrity {float(r.integrity[i, v]):.0f} / {self.integrity_max:.0f}", "s", TEXT))
            names = (r.meta.get("game") or {}).get("buildings") or [f"b{k}" for k in range(r.buildings.shape[2])]
            lvls = ", ".join(f"{n[:4]} {int(l)}" for n, l in zip(names, r.buildings[i, v]) if l > 0)
            lines.append((f"buildings: {lvls}", "s", TEXT))
            tr = ", ".join(f"{n} {int(c)}" for n, c in zip(self.unit_names, r.troops[i, v]) if c > 0) or "none"
            lines.append((f"troops: {tr}", "s", TEXT))
            rs = ", ".join(f"{n} {int(c)}" for n, c in zip(self.resource_names, r.resources[i, v]))
            lines.append((f"stock: {rs}", "s", TEXT))
        surfs = [self.text(t, f, c) for t, f, c in lines]
        bw = max(sf.get_width() for sf in surfs) + 16
        bh = sum(sf.get_height() for sf in surfs) + 12
        x, y = self.screen_pos[v]
        box = pygame.Rect(int(x) + 16, int(y) - bh // 2, bw, bh)
        box.clamp_ip(self.map_area)
        pygame.draw.rect(s, (14, 16, 20), box, border_radius=6)
        pygame.draw.rect(s, FOCAL_C if owner == self.focal else (150, 155, 165), box, 1, border_radius=6)
        pygame.gfxdraw.aacircle(s, int(x), int(y), int(self.village_radius(i)[v] + 7 * self.scale), (255, 255, 255))
        yy = box.y + 6
        for sf in surfs:
            s.blit(sf, (box.x + 8, yy))
            yy += sf.get_height()


# ----------------------------------------------------------------------------------
# headless API
# ----------------------------------------------------------------------------------

_cache: dict = {}


def _renderer_for(replay: Replay, size) -> Renderer:
    key = (id(replay), tuple(int(x) for x in size))
    rend = _cache.get("r")
    if rend is None or _cache.get("key") != key or rend.replay is not replay:
        rend = Renderer(replay, size)
        _cache.update(r=rend, key=key)
    return rend


def render_frame(replay: Replay, t: float, size=(1024, 640), renderer: Renderer | None = None) -> np.ndarray:
    """Frame ``t`` (frame index; fractional = interpolated) as ``uint8[H, W, 3]``.

    Reuses one cached ``Renderer`` per (replay, size); pass ``renderer`` to control it.
    """
    rend = renderer or _renderer_for(replay, size)
    return rend.frame(t)


def _have_pil() -> bool:
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        return False
    return True


def film_times(n_frames: int, start: int = 0, stop: int | None = None, every: int = 1, substeps: int = 1) -> list:
    """Frame times of a film: frames ``start..stop`` (every ``every``-th), with ``substeps - 1``
    interpolated times between consecutive ones."""
    stop = n_frames if stop is None else min(int(stop), n_frames)
    ticks = list(range(int(start), stop, max(1, int(every))))
    if not ticks:
        raise ValueError(f"export: no frames in range({start}, {stop}, {every}) of a {n_frames}-frame replay")
    substeps = max(1, int(substeps))
    times = []
    for k, f in enumerate(ticks):
        times.append(float(f))
        if k + 1 < len(ticks):
            nxt = ticks[k + 1]
            times += [f + (nxt - f) * j / substeps for j in range(1, substeps)]
    return times


def write_film(drawer, out, times, fps: float = 10.0, substeps: int = 1) -> Path:
    """Frames ``times`` of ``drawer`` (a ``Renderer`` or ``SideBySide``) as a GIF (``out``
    ends with .gif, needs Pillow), one PNG (``out`` ends with .png: the first time only)
    or a folder of PNGs ``frame_00000.png``..."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix == ".png":
        out.parent.mkdir(parents=True, exist_ok=True)
        pygame.image.save(drawer.draw(times[0]), str(out))
        return out
    if suffix == ".gif":
        if not _have_pil():
            raise RuntimeError("GIF export needs Pillow (pip install pillow); or export PNG frames to a folder")
        from PIL import Image

        # One palette for the whole film (from a few sample frames): stable colours, fast.
        sample_t = sorted({times[0], times[len(times) // 3], times[2 * len(times) // 3], times[-1]})
        sample = np.concatenate([drawer.frame(t) for t in sample_t], 0)
        palette = Image.fromarray(sample).quantize(colors=255, method=Image.Quantize.MEDIANCUT)
        frames = [Image.fromarray(drawer.frame(t)).quantize(palette=palette, dither=Image.Dither.NONE) for t in times]
        duration = max(20, int(round(1000.0 / (fps * max(1, int(substeps))))))
        out.parent.mkdir(parents=True, exist_ok=True)
        frames[0].save(out, save_all=True, append_images=frames[1:], duration=duration, loop=0, optimize=False,
                       disposal=1)
        return out
    out.mkdir(parents=True, exist_ok=True)
    for k, t in enumerate(times):
        pygame.image.save(drawer.draw(t), str(out / f"frame_{k:05d}.png"))
    return out


def export(replay: Replay, out, size=DEFAULT_EXPORT_SIZE, fps: float = 10.0, substeps: int = 1, start: int = 0,
           stop: int | None = None, every: int = 1) -> Path:
    """Write frames ``start..stop`` (every ``every``-th) as a GIF (``out`` ends with .gif) or PNGs.

    ``substeps > 1`` adds interpolated frames between ticks (armies glide). A GIF has
    ``len(range(start, stop, every))`` frames times ``substeps`` (less the sub-frames
    after the last one). PNGs go to the folder ``out`` as ``frame_00000.png``...
    Returns ``out`` as a Path. (A still of one tick: ``export_still``.)
    """
    out = Path(out)
    if out.suffix.lower() == ".png":
        raise ValueError(f"export: {str(out)!r} is a single PNG; use export_still(replay, out, tick) for one frame")
    times = film_times(replay.n_frames, start, stop, every, substeps)
    return write_film(Renderer(replay, size), out, times, fps, substeps)


def export_still(replay: Replay, out, tick: int | None = None, size=DEFAULT_EXPORT_SIZE) -> Path:
    """One PNG of the frame at game tick ``tick`` (default: the last frame), for papers."""
    frame = replay.n_frames - 1 if tick is None else replay.frame_of_tick(int(tick))
    return write_film(Renderer(replay, size), Path(out), [float(frame)])


# ----------------------------------------------------------------------------------
# interactive viewer
# ----------------------------------------------------------------------------------

SPEEDS = (0.5, 1, 2, 4, 8, 16, 32, 64)


def run_viewer(replay: Replay, size=WINDOW_SIZE, speed: float = 8.0, start: float = 0.0, fps: int = 60,
               max_iterations: int | None = None, other: Replay | None = None) -> float:
    """Open a resizable window and play the replay (with ``other``: both side by side on
    one timeline); returns the frame shown last.

    Keys: space play/pause, Right/Left step one frame, Up/Down faster/slower,
    Home/End first/last frame, Esc/Q quit. Mouse: click/drag the timeline to seek,
    click a village for its details (click elsewhere to close).
    ``max_iterations`` stops after that many loop turns (for tests).
    """
    pygame.display.init()
    pygame.font.init()
    screen = pygame.display.set_mode(size, pygame.RESIZABLE)
    pygame.display.set_caption(f"villages replay - {replay.meta.get('scenario', '')}")
    if other is None:
        rend = Renderer(replay, screen.get_size())
    else:
        from .side_by_side import SideBySide

        rend = SideBySide(replay, other, screen.get_size())
    clock = pygame.time.Clock()
    t = float(start)
    playing = True
    speed_i = int(np.argmin([abs(s - speed) for s in SPEEDS]))
    selected = None
    dragging = False
    last = max(rend.T - 1, 0)
    it = 0
    try:
        running = True
        while running:
            dt = clock.tick(fps) / 1000.0
            for e in pygame.event.get():
                if e.type == pygame.QUIT:
                    running = False
                elif e.type == pygame.VIDEORESIZE or e.type == getattr(pygame, "WINDOWSIZECHANGED", -1):
                    screen = pygame.display.get_surface()
                    rend.resize(screen.get_size())
                elif e.type == pygame.KEYDOWN:
                    if e.key in (pygame.K_ESCAPE, pygame.K_q):
                        running = False
                    elif e.key == pygame.K_SPACE:
                        playing = not playing
                        if playing and t >= last:
                            t = 0.0
                    elif e.key == pygame.K_RIGHT:
                        playing = False
                        t = min(last, math.floor(t + 1e-9) + 1)
                    elif e.key == pygame.K_LEFT:
                        playing = False
                        t = max(0.0, math.ceil(t - 1e-9) - 1)
                    elif e.key == pygame.K_UP:
                        speed_i = min(speed_i + 1, len(SPEEDS) - 1)
                    elif e.key == pygame.K_DOWN:
                        speed_i = max(speed_i - 1, 0)
                    elif e.key == pygame.K_HOME:
                        t = 0.0
                    elif e.key == pygame.K_END:
                        t = float(last)
                elif e.type == pygame.MOUSEBUTTONDOWN and e.button == 1:
                    if rend.timeline_rect.collidepoint(e.pos):
                        dragging = True
                        t = rend.frame_at(e.pos[0])
                    elif rend.map_area.collidepoint(e.pos):
                        selected = rend.village_at(e.pos, t)
                    else:
                        selected = None
                elif e.type == pygame.MOUSEBUTTONUP and e.button == 1:
                    dragging = False
                elif e.type == pygame.MOUSEMOTION and dragging:
                    t = rend.frame_at(e.pos[0])
            if playing:
                t += SPEEDS[speed_i] * dt
                if t >= last:
                    t, playing = float(last), False
            if screen.get_size() != rend.size:
                rend.resize(screen.get_size())
            status = f"{'playing' if playing else 'paused'}  x{SPEEDS[speed_i]:g}   space play/pause, arrows step/speed, click village/timeline"
            rend.draw(t, screen, selected=selected, status=status)
            pygame.display.flip()
            it += 1
            if max_iterations is not None and it >= max_iterations:
                break
    finally:
        pygame.display.quit()
    return t
