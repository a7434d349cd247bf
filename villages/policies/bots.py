"""Scripted background bots, vectorised over worlds and seats.

Every bot decides from its own observation (parsed by column name) and the action
mask: relations, distances, defences. No bot knows alliance names or banners.
Each bot scores the legal actions and takes the best one; a little per-world noise
(from the world key) breaks ties and varies play. Only the legal actions that can
beat noop are scored, on the rows they act on (about a tenth of the action space).
"""

from __future__ import annotations

import numpy as np

from villages.game import GameConfig, action_layout, observation_layout, rng
from villages.game.config import BUILDINGS, UNITS

_IRRATIONAL = np.zeros(0, dtype=np.float32)


def _irrational(n_actions: int) -> np.ndarray:
    global _IRRATIONAL
    if len(_IRRATIONAL) < n_actions:
        _IRRATIONAL = (np.sqrt(np.arange(2, n_actions + 2) * 1.0 + 0.5) * 1000.0).astype(np.float32)
    return _IRRATIONAL


def _seat_uniform(key, tick, seat_ids, salt) -> np.ndarray:
    """float32[B, n]: one hash per (world, seat, tick)."""
    return rng.uniform(key[:, None], 23, tick[:, None], seat_ids[None, :], salt).astype(np.float32)


def _noise_at(key, tick, seat_ids, seat, action, salt):
    """Tie-breaking noise in [0, 1) at the listed (flat world*seat, action) entries: one hash per
    (world, seat, tick), spread over actions by multiplying with fixed irrational numbers (cheap,
    and still per-world)."""
    if not len(seat):
        return np.zeros(0, dtype=np.float32)
    x = _seat_uniform(key, tick, seat_ids, salt).ravel()[seat] * _irrational(int(action.max()) + 1)[action]
    return x - np.floor(x)


def _inv_log(f):
    return np.expm1(np.asarray(f, dtype=np.float64) * 6.0)


class ScriptedBot:
    """Shared machinery: every legal action gets a score (higher = preferred), plus
    per-world noise in [0, 1); the best one is taken.

    Scores: noop 0.5; building and training on a row from ``score_economy`` and
    ``wanted_unit``; attacking a row 14 + ``attack_targets`` (-100 where that is -inf);
    everything else (trade, diplomacy, support, settling, attacks of a non-attacker) -5,
    below noop. Only the actions that can beat noop are scored at all, and only on the
    rows they act on (the rest cannot win while noop is legal, as it always is)."""

    name = "scripted"
    # Target army mix by population share (levy, spear, axe, cavalry, ram).
    mix = np.array([0.0, 0.5, 0.3, 0.15, 0.05])
    attacks = True
    attack_margin = 1.5  # attack only with this much more offence than the target's defence
    min_offence = 500.0  # ... and only with a real army
    salt = 0

    def __init__(self, config: GameConfig):
        self.config = config
        self.L = action_layout(config)
        self.O = observation_layout(config)
        self._troop_cols = [self.O.self_col(f"troops_{u}") for u in UNITS]
        self._scored_cache = {}

    def _scored(self, n_actions: int) -> np.ndarray:
        """bool[n_actions]: the actions a score can lift above noop (noop itself included)."""
        s = self._scored_cache.get(n_actions)
        if s is None:
            L, nv = self.L, self.L.n_verbs
            s = np.zeros(n_actions, bool)
            s[L.noop] = True
            verbs = np.zeros(nv, bool)
            verbs[3 : 3 + len(BUILDINGS) + len(UNITS)] = True  # build, train
            verbs[0] = self.attacks
            s[L.row_base :] = np.resize(verbs, n_actions - L.row_base)
            self._scored_cache[n_actions] = s
        return s

    def act(self, obs, mask, key, tick, seats=None):
        """``seats``: the seat ids of the observation's columns (default 0..n-1). The noise is
        keyed by seat id, so a caller may pass any subset of seats and get the same choices."""
        mask = np.asarray(mask, bool)
        B, n, nA = mask.shape
        seats_ids = np.arange(n) if seats is None else np.asarray(seats)
        own, rows, dip = self.O.split(obs)
        L, N, nv = self.L, self.config.n_rows, self.L.n_verbs
        cand = mask & self._scored(nA)
        no_noop = ~mask[..., L.noop]
        if no_noop.any():  # a seat without a legal noop: all its legal actions compete
            cand |= mask & no_noop[..., None]
        idx = np.flatnonzero(cand)  # (world, seat, action), in C order
        seat = idx // nA
        a = idx - seat * nA
        score = np.full(len(idx), -5.0)
        score[a == L.noop] = 0.5
        j = a - L.row_base
        on_row = np.flatnonzero(j >= 0)
        if len(on_row):
            j = j[on_row]
            row, verb = j // nv, j % nv
            row_key = seat[on_row] * N + row  # non-decreasing, as idx is sorted
            new = np.empty(len(row_key), bool)
            new[0] = True
            np.not_equal(row_key[1:], row_key[:-1], out=new[1:])
            uniq = row_key[new]
            inv = np.cumsum(new) - 1
            ub, us, ur = uniq // (n * N), (uniq // N) % n, uniq % N
            r = np.full((len(uniq), nv), -5.0)  # verb scores of the rows some candidate acts on
            self.score_economy(rows[ub, us, ur], r)
            want = self.wanted_unit(own, rows)[ub, us]
            for u in range(len(UNITS)):
                r[:, 3 + len(BUILDINGS) + u] = np.where(want == u, 8.0, -5.0)
            if self.attacks:
                t = self.attack_targets(own, rows)[ub, us, ur]
                r[:, 0] = np.where(np.isfinite(t), 14.0 + t, -100.0)
            score[on_row] = r[inv, verb]
        score += _noise_at(key, tick, seats_ids, seat, a, self.salt)
        # The first maximum per seat (np.argmax's rule); a seat without legal actions plays 0.
        out = np.zeros(B * n, dtype=np.int64)
        if len(idx):
            starts = np.flatnonzero(np.r_[True, seat[1:] != seat[:-1]])
            best = np.repeat(np.maximum.reduceat(score, starts), np.diff(np.r_[starts, len(idx)]))
            hit = np.flatnonzero(score == best)
            first = hit[np.r_[True, seat[hit[1:]] != seat[hit[:-1]]]]
            out[seat[first]] = a[first]
        return out.reshape(B, n)

    def col(self, rows, name):
        return rows[..., self.O.village_col(name)]

    def score_economy(self, rows, r):
        """Build scores relative to noop (0.5) into ``r`` [..., n_verbs], for rows [..., F]:
        keep resources flowing, room for troops, walls up."""
        c = lambda name: self.col(rows, name)  # noqa: E731
        v = lambda b: 3 + BUILDINGS.index(b)  # noqa: E731
        lvl = lambda b: c(f"own_{b}") * self.config.building_max_level  # noqa: E731
        full = np.maximum(c("own_res_wood"), c("own_res_iron"))
        r[..., v("timber_camp")] = 3.0 + (c("own_res_wood") < c("own_res_iron")) - 0.2 * lvl("timber_camp")
        r[..., v("iron_mine")] = 3.0 + (c("own_res_iron") <= c("own_res_wood")) - 0.2 * lvl("iron_mine")
        r[..., v("farm")] = 2.0 + 8.0 * (c("own_pop") > 0.85)
        r[..., v("headquarters")] = 1.0 + 6.0 * (full > 0.9)
        r[..., v("barracks")] = 2.5 + 8.0 * (lvl("barracks") < 2)
        r[..., v("wall")] = 1.5 + 1.5 * (lvl("wall") < 5)
        # Save up for troops: build only with a well-filled store, except a farm when out of room.
        saving = (full < 0.5)[..., None]
        r[..., 3 : 3 + len(BUILDINGS)] -= 10.0 * saving
        r[..., v("farm")] += 10.0 * (saving[..., 0] & (c("own_pop") > 0.85))

    def wanted_unit(self, own, rows):
        """int[B, n]: the unlocked unit the army mix lacks most (trained on any own row; the
        others score below noop: wait for it rather than buy whatever is cheapest)."""
        troops = _inv_log(own[..., self._troop_cols])
        pop = troops * self.config.unit_pop
        share = pop / np.maximum(pop.sum(-1, keepdims=True), 1.0)
        mine = self.col(rows, "is_own") > 0
        barracks = np.where(mine, self.col(rows, "own_barracks"), 0).max(-1) * self.config.building_max_level
        unlocked = barracks[..., None] + 0.5 >= self.config.unit_barracks_level  # [B, n, U]
        deficit = np.where((self.mix > 0) & unlocked, self.mix - share, -np.inf)  # [B, n, U]
        return deficit.argmax(-1)

    def attack_targets(self, own, rows):
        """Score of attacking each row (before legality), -inf for rows not to attack."""
        c = lambda name: self.col(rows, name)  # noqa: E731
        troops = _inv_log(own[..., self._troop_cols])
        offence = (troops * self.config.unit_attack * self.config.unit_offensive).sum(-1)[..., None]
        wall = c("wall") * self.config.building_max_level
        defence = (_inv_log(c("defence")) + self.config.village_base_defence + self.config.wall_base_defence * wall) * (
            1 + self.config.wall_bonus * wall)
        strong = (offence > self.attack_margin * defence) & (offence >= self.min_offence)
        pref = 6.0 - 2.0 * c("distance") - 0.5 * c("integrity")
        return np.where(self.targets(own, rows) & strong, pref, -np.inf)

    def targets(self, own, rows) -> np.ndarray:
        """bool[..., N]: the rows it may attack at all: villages of players at war with it."""
        return self.col(rows, "rel_war") > 0


class Raider(ScriptedBot):
    """Trains a mixed army and attacks the weakest village of a player at war with it."""

    name = "raider"
    mix = np.array([0.0, 0.2, 0.55, 0.15, 0.10])
    salt = 1


class Marauder(Raider):
    """A raider that does not ask whose village it is: players at war, at peace or allied, and
    barbarians (anyone outside its own alliance)."""

    name = "marauder"
    salt = 4

    def targets(self, own, rows) -> np.ndarray:
        c = lambda name: self.col(rows, name)  # noqa: E731
        return ((c("is_player") > 0) | (c("is_barbarian") > 0)) & (c("is_own") == 0) & (c("same_alliance") == 0)


class Sneak(Marauder):
    """The absent-supervisor stand-in: a marauder while no overseer watches (its ``overseen`` column
    is 0, or absent from the layout), a raider of enemies only while one does."""

    name = "sneak"
    salt = 5

    def targets(self, own, rows) -> np.ndarray:
        watched = own[..., self.O.self_col("overseen")] > 0 if "overseen" in self.O.self_features else False
        return np.where(np.asarray(watched)[..., None], Raider.targets(self, own, rows), super().targets(own, rows))


class Builder(ScriptedBot):
    """Defender/builder: develops its economy, walls up, trains spears; never attacks."""

    name = "builder"
    mix = np.array([0.0, 0.8, 0.2, 0.0, 0.0])
    attacks = False
    salt = 2


class AllianceAttacker(Raider):
    """Alliance-coordinated attacker: every member hits the same enemy village.

    The target is chosen from features all members see alike (lowest integrity, then
    lowest defence), so members converge on one village without talking."""

    name = "coordinated"
    salt = 3

    def attack_targets(self, own, rows):
        base = super().attack_targets(own, rows)
        c = lambda name: self.col(rows, name)  # noqa: E731
        shared = 6.0 - 3.0 * c("integrity") - c("defence")
        return np.where(np.isfinite(base), shared, -np.inf)
