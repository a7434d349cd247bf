"""Scripted background bots, vectorised over worlds and seats.

Every bot decides from its own observation (parsed by column name) and the action
mask: relations, distances, defences. No bot knows alliance names or banners.
Each bot scores every action, illegal ones get -inf, and the best one is taken;
a little per-world noise (from the world key) breaks ties and varies play.
"""

from __future__ import annotations

import numpy as np

from villages.game import GameConfig, action_layout, observation_layout, rng
from villages.game.config import BUILDINGS, UNITS

_IRRATIONAL = None


def _noise(key, tick, n, n_actions, salt):
    """Tie-breaking noise in [0, 1) per action: one hash per seat, spread over actions
    by multiplying with fixed irrational numbers (cheap, and still per-world)."""
    global _IRRATIONAL
    if _IRRATIONAL is None or len(_IRRATIONAL) < n_actions:
        _IRRATIONAL = (np.sqrt(np.arange(2, n_actions + 2) * 1.0 + 0.5) * 1000.0).astype(np.float32)
    u = rng.uniform(key[:, None], 23, tick[:, None], np.arange(n)[None, :], salt).astype(np.float32)  # [B, n]
    x = u[..., None] * _IRRATIONAL[:n_actions]
    return x - np.floor(x)


def _inv_log(f):
    return np.expm1(np.asarray(f, dtype=np.float64) * 6.0)


class ScriptedBot:
    """Shared machinery: subclasses fill ``scores`` (higher = preferred)."""

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

    def act(self, obs, mask, key, tick):
        mask = np.asarray(mask, bool)
        B, n, nA = mask.shape
        own, rows, dip = self.O.split(obs)
        # Unscored actions (e.g. attacks for a builder, trades, diplomacy) stay below noop.
        scores = np.full((B, n, nA), -5.0)
        scores[..., self.L.noop] = 0.5
        self.score_economy(own, rows, scores)
        self.score_army(own, rows, scores)
        if self.attacks:
            self.score_attacks(own, rows, scores)
        scores += _noise(key, tick, n, nA, self.salt)
        scores = np.where(mask, scores, -np.inf)
        return scores.argmax(-1)

    def row_scores(self, scores):
        N, nv = self.config.n_rows, self.L.n_verbs
        return scores[..., self.L.row_base :].reshape(*scores.shape[:2], N, nv)

    def col(self, rows, name):
        return rows[..., self.O.village_col(name)]

    def score_economy(self, own, rows, scores):
        """Build scores relative to noop (0.5): keep resources flowing, room for troops, walls up."""
        r = self.row_scores(scores)
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

    def score_army(self, own, rows, scores):
        r = self.row_scores(scores)
        troops = _inv_log(own[..., [self.O.self_size - len(UNITS) + u for u in range(len(UNITS))]])
        pop = troops * self.config.unit_pop
        share = pop / np.maximum(pop.sum(-1, keepdims=True), 1.0)
        mine = self.col(rows, "is_own") > 0
        barracks = np.where(mine, self.col(rows, "own_barracks"), 0).max(-1) * self.config.building_max_level
        unlocked = barracks[..., None] + 0.5 >= self.config.unit_barracks_level  # [B, n, U]
        deficit = np.where((self.mix > 0) & unlocked, self.mix - share, -np.inf)  # [B, n, U]
        # Wait for the unit the mix lacks most rather than buying whatever is cheapest.
        want = deficit.argmax(-1)[..., None]  # [B, n, 1]
        for u in range(len(UNITS)):
            r[..., 3 + len(BUILDINGS) + u] = np.where(want == u, 8.0, -5.0)

    def attack_targets(self, own, rows):
        """Score of attacking each row (before legality), -inf for rows not to attack."""
        c = lambda name: self.col(rows, name)  # noqa: E731
        troops = _inv_log(own[..., [self.O.self_size - len(UNITS) + u for u in range(len(UNITS))]])
        offence = (troops * self.config.unit_attack * self.config.unit_offensive).sum(-1)[..., None]
        wall = c("wall") * self.config.building_max_level
        defence = (_inv_log(c("defence")) + self.config.village_base_defence + self.config.wall_base_defence * wall) * (
            1 + self.config.wall_bonus * wall)
        war = c("rel_war") > 0
        strong = (offence > self.attack_margin * defence) & (offence >= self.min_offence)
        pref = 6.0 - 2.0 * c("distance") - 0.5 * c("integrity")
        return np.where(war & strong, pref, -np.inf)

    def score_attacks(self, own, rows, scores):
        r = self.row_scores(scores)
        t = self.attack_targets(own, rows)
        r[..., 0] = np.where(np.isfinite(t), 14.0 + t, -100.0)


class Raider(ScriptedBot):
    """Trains a mixed army and attacks the weakest village of a player at war with it."""

    name = "raider"
    mix = np.array([0.0, 0.2, 0.55, 0.15, 0.10])
    salt = 1


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
