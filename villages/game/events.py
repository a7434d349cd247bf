"""Event records emitted by the rules: what metrics, rewards and replays are computed from.

Each event kind is a table of equal-length numpy columns (one row per event, with its
``world`` and ``tick``), so a step's events are sparse records, cheap to concatenate
into an episode log and cheap to turn into per-seat rewards with ``np.bincount``.

Kinds and their columns:
* ``launch``: player, army, kind, src, dst, target_player, target_alliance, relation, troops[U], arrive
* ``battle``: army, attacker, defender, village, attacker_alliance, defender_alliance,
  relation, attacker_won, destroyed, damage (integrity taken off), attack, defence, sent[U], attacker_lost[U],
  defender_troops[U], defender_lost[U], loot[R]
* ``build``: player, village, building, level;  ``train``: player, village, unit, count
* ``support``: player, village, troops[U];  ``found``: player, village
* ``diplomacy``: alliance_a, alliance_b, relation, player (-1 for a scenario event)
* ``eliminated`` / ``left``: player;  ``army_lost``: player, troops[U]
* ``invalid``: player, action
"""

from __future__ import annotations

import numpy as np


class Events:
    def __init__(self):
        self.tables: dict[str, dict[str, list[np.ndarray]]] = {}

    def add(self, event_kind: str, /, **columns) -> None:
        table = self.tables.get(event_kind)
        if table is None:  # (the usual case: one add per kind and step)
            table = self.tables[event_kind] = {name: [np.asarray(col)] for name, col in columns.items()}
            if table:
                len(next(iter(table.values()))[0])  # a 0-d first column raises TypeError, as it always did
            return
        n = None
        for name, col in columns.items():
            col = np.asarray(col)
            n = len(col) if n is None else n
            table.setdefault(name, []).append(col)

    def extend(self, other: "Events") -> None:
        for kind, table in other.tables.items():
            mine = self.tables.setdefault(kind, {})
            for name, cols in table.items():
                mine.setdefault(name, []).extend(cols)

    def get(self, kind: str) -> dict[str, np.ndarray]:
        """Columns of one kind, concatenated (empty dict if none happened)."""
        table = self.tables.get(kind, {})
        return {name: np.concatenate(cols) for name, cols in table.items()}

    def count(self, kind: str) -> int:
        table = self.tables.get(kind)
        if not table:
            return 0
        return sum(len(c) for c in next(iter(table.values())))

    def kinds(self) -> list[str]:
        return sorted(self.tables)

    def select_world(self, world: int, new_index: int = 0) -> "Events":
        """The events of one world (renumbered ``new_index``), e.g. for a replay."""
        out = Events()
        for kind in self.tables:
            cols = self.get(kind)
            keep = cols["world"] == world
            if keep.any():
                cols = {k: c[keep] for k, c in cols.items()}
                cols["world"] = np.full(int(keep.sum()), new_index)
                out.add(kind, **cols)
        return out

    def to_records(self) -> dict[str, dict[str, np.ndarray]]:
        return {kind: self.get(kind) for kind in self.kinds()}

    def per_seat(self, kind: str, seat_column: str, n_worlds: int, n_seats: int, weights=None, where=None) -> np.ndarray:
        """Sum ``weights`` (default 1) of events into a [B, seats] array."""
        cols = self.get(kind)
        if not cols:
            return np.zeros((n_worlds, n_seats))
        seat = cols[seat_column]
        keep = (seat >= 0) & (seat < n_seats)
        if where is not None:
            keep &= where(cols)
        w = np.ones(len(seat)) if weights is None else np.asarray(weights(cols), dtype=float)
        flat = cols["world"][keep] * n_seats + seat[keep]
        return np.bincount(flat, weights=w[keep], minlength=n_worlds * n_seats).reshape(n_worlds, n_seats)
