"""Label placement on the map: every village's label where it overlaps no other label and
no village disc, so that alliance tags stay legible in clusters.

Greedy, crowded sites first: each label tries spots around its site, nearest first
(up-right first, the classic flag position), and takes the first that is free; if none
is, the spot that overlaps least. Placement depends only on the site positions and the
label sizes, so it is done once per map and window size and labels never jump between
frames. Pure numpy (no pygame), so tests can check it on every built-in map.
"""

from __future__ import annotations

import math

import numpy as np

# Directions tried around a site (screen y points down): up-right first, then the other
# diagonals, the sides, and the 8 in between.
_ANGLES = [-45, -135, 45, 135, -90, 90, 0, 180, -22.5, -157.5, 22.5, 157.5, -67.5, -112.5, 67.5, 112.5]
_DISTANCES = (0.0, 0.4, 0.8, 1.3, 2.0, 3.0, 4.5, 6.5)  # extra distance, in label heights


def _rect_at(cx, cy, reach, angle_deg, w, h):
    """The w x h rectangle just outside distance ``reach`` from (cx, cy) in direction angle."""
    a = math.radians(angle_deg)
    ux, uy = math.cos(a), math.sin(a)
    px, py = cx + reach * ux, cy + reach * uy
    x = px if ux > 0.38 else px - w if ux < -0.38 else px - w / 2
    y = py if uy > 0.38 else py - h if uy < -0.38 else py - h / 2
    return x, y


def _circle_overlap(x, y, w, h, cx, cy, r):
    """Per circle: how deep each rectangle edge region reaches into circle (cx, cy, r) (> 0: overlap)."""
    nx = np.clip(cx, x, x + w)
    ny = np.clip(cy, y, y + h)
    return r - np.hypot(cx - nx, cy - ny)


def _rect_overlap(x, y, w, h, rects):
    """Overlap area of rectangle (x, y, w, h) with each row (x, y, w, h) of ``rects``."""
    if not len(rects):
        return np.zeros(0)
    ox = np.minimum(x + w, rects[:, 0] + rects[:, 2]) - np.maximum(x, rects[:, 0])
    oy = np.minimum(y + h, rects[:, 1] + rects[:, 3]) - np.maximum(y, rects[:, 1])
    return np.clip(ox, 0, None) * np.clip(oy, 0, None)


def place_labels(centres, radii, sizes, bounds, gap: float = 2.0) -> np.ndarray:
    """Top-left corners (x, y) of one label per site, as float[V, 2].

    ``centres``: float[V, 2] site pixel positions; ``radii``: float[V] the largest disc
    (with its ring) each site can show; ``sizes``: float[V, 2] label width and height;
    ``bounds``: (x, y, w, h) the labels must stay inside.
    """
    c = np.asarray(centres, np.float64)
    r = np.asarray(radii, np.float64)
    sz = np.asarray(sizes, np.float64)
    bx, by, bw, bh = (float(v) for v in bounds)
    V = len(c)
    d = np.hypot(*(c[:, None, :] - c[None, :, :]).transpose(2, 0, 1))
    crowd = (d < 4 * sz[:, 1:2].max(initial=1.0)).sum(1)
    order = np.lexsort((np.arange(V), -crowd))  # crowded sites choose first
    placed = np.zeros((0, 4))
    out = np.zeros((V, 2))
    for v in order:
        w, h = sz[v]
        best, best_cost = None, math.inf
        for extra in _DISTANCES:
            for ang in _ANGLES:
                x, y = _rect_at(c[v, 0], c[v, 1], r[v] + gap + extra * h, ang, w, h)
                outside = (max(bx - x, 0) + max(x + w - bx - bw, 0)) * h + (max(by - y, 0) + max(y + h - by - bh, 0)) * w
                discs = np.clip(_circle_overlap(x, y, w, h, c[:, 0], c[:, 1], r + gap), 0, None).sum()
                labels = _rect_overlap(x - gap / 2, y - gap / 2, w + gap, h + gap, placed).sum()
                cost = 10 * outside + discs * h + labels
                if cost < best_cost:
                    best, best_cost = (x, y), cost
                if cost == 0:
                    break
            if best_cost == 0:
                break
        out[v] = best
        placed = np.vstack([placed, [best[0], best[1], w, h]])
    return out


def overlaps(rects, centres=None, radii=None) -> list[tuple]:
    """What overlaps: ("label", i, j) for labels i < j that share area, and ("disc", i, v)
    for label i over site v's disc (its own site's included); empty when all is legible."""
    rects = np.asarray(rects, np.float64)
    found = []
    for i in range(len(rects)):
        area = _rect_overlap(*rects[i], rects[i + 1 :])
        found += [("label", i, i + 1 + int(j)) for j in np.nonzero(area > 1e-9)[0]]
        if centres is not None:
            c = np.asarray(centres, np.float64)
            depth = _circle_overlap(*rects[i], c[:, 0], c[:, 1], np.asarray(radii, np.float64))
            found += [("disc", i, int(v)) for v in np.nonzero(depth > 1e-9)[0]]
    return found
