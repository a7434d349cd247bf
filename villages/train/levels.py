"""Training levels and the curricula that choose them.

A **level** is one training world as data: its world seed (map, luck, bots' noise) and the
identity the scenario's diversity role wears (the training enemy's own, or another one of
its pool). A level whose enemy wears another identity *disambiguates* "attack enemies"
from "attack the training enemy's banner". The trainer plays one level per world and episode, drawn by a sampler:

* ``dr`` (domain randomization): every level is new, from the generator: with probability
  ``budget`` the role wears an identity drawn uniformly from the pool's others.
* ``plr`` (robust prioritized level replay, Jiang et al. 2021): with probability
  ``replay_prob`` a world replays a level from a buffer, drawn by rank of its score (positive
  value loss: the mean positive GAE advantage of its last episode, a regret estimate), mixed
  with staleness; otherwise a new level from the generator, scored when played.
* ``sfl`` (sampling for learnability, Rutherford et al. 2024): the same buffer, scored by
  learnability p (1 - p), where p is the level's success rate (the share of the enemy's
  villages the agent destroyed, averaged over the episodes played on it): levels the agent
  solves about half the time are replayed most.

All three get the same env-steps and draw new levels from the same generator, so the
*budget of disambiguating levels* (the generator's share) is the same; what differs is
which levels are replayed. The share of disambiguating levels actually *played* is logged
(``levels/played_disambiguating``) with the buffer's statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CURRICULA = ("none", "dr", "plr", "sfl")


@dataclass(frozen=True)
class LevelSpace:
    """What a level can be: the diversity role of a scenario and the identities it may wear."""

    role: int  # alliance index of the role (the training enemy)
    own: int  # identity index it wears by default
    others: tuple[int, ...]  # identity indices that disambiguate
    budget: float  # share of generated levels that disambiguate

    @staticmethod
    def of(spec, budget: float) -> "LevelSpace":
        d = spec.diversity
        if d.role is None or not d.pool:
            raise ValueError(f"scenario {spec.name!r} has no [diversity] role and pool: a curriculum needs the "
                             f"identities a level may dress the enemy in (e.g. diverse-training)")
        role = spec.alliance_index(d.role)
        own = spec.identity_index(spec.alliances[role].identity.name)
        others = tuple(spec.identity_index(n) for n in d.pool if spec.identity_index(n) != own)
        if not others:
            raise ValueError(f"scenario {spec.name!r}: the diversity pool has no identity besides the role's own")
        return LevelSpace(role, own, others, float(budget))

    def generate(self, n: int, rs: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
        """(seeds int64[n], worn int64[n]) of ``n`` new levels."""
        seeds = rs.randint(0, 2**62, size=n, dtype=np.int64)
        other = rs.random_sample(n) < self.budget
        pick = np.asarray(self.others)[rs.randint(0, len(self.others), size=n)]
        return seeds, np.where(other, pick, self.own).astype(np.int64)


class LevelSampler:
    """Domain randomization (``dr``): new levels only. The base of the buffered samplers."""

    name = "dr"

    def __init__(self, space: LevelSpace, seed: int):
        self.space = space
        self.rs = np.random.RandomState(seed)
        self.played = np.zeros(2)  # levels played, of which disambiguating

    def draw(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(seeds, worn, slot) of ``n`` levels to play; slot: the buffer slot replayed, -1 for a new level."""
        seeds, worn = self.space.generate(n, self.rs)
        return self._count(seeds, worn, np.full(n, -1))

    def _count(self, seeds, worn, slot):
        self.played += (len(worn), float((worn != self.space.own).sum()))
        return seeds, worn, slot

    def update(self, seeds, worn, slot, regret, success) -> None:
        """The scores of the levels just played (per world: positive value loss, success rate)."""

    def stats(self) -> dict:
        return {"levels/played_disambiguating": float(self.played[1] / max(self.played[0], 1))}

    def describe(self) -> dict:
        """The sampler as a JSON-able record (``levels.json`` in the run folder)."""
        return {"curriculum": self.name, "budget": self.space.budget, "own_identity": self.space.own,
                "levels_played": int(self.played[0]), "disambiguating_played": int(self.played[1])}

    def state_dict(self) -> dict:
        _, keys, pos, has_gauss, gauss = self.rs.get_state()
        return {"keys": keys.astype(np.int64), "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss),
                "played": self.played.copy()}

    def load_state_dict(self, state: dict) -> None:
        self.rs.set_state(("MT19937", np.asarray(state["keys"]).astype(np.uint32), int(state["pos"]),
                           int(state["has_gauss"]), float(state["gauss"])))
        self.played = np.asarray(state["played"], np.float64).copy()


class PrioritizedReplay(LevelSampler):
    """A buffer of ``capacity`` levels replayed by rank of their score (``plr``: regret; ``sfl``:
    learnability), mixed with staleness; a new level enters when it outscores the buffer's lowest."""

    def __init__(self, space: LevelSpace, seed: int, score: str, capacity: int = 256, replay_prob: float = 0.5,
                 temperature: float = 0.3, staleness: float = 0.3):
        super().__init__(space, seed)
        if score not in ("regret", "learnability"):
            raise ValueError(f"score must be regret or learnability, got {score!r}")
        self.name = "plr" if score == "regret" else "sfl"
        self.score_kind, self.capacity = score, int(capacity)
        self.replay_prob, self.temperature, self.staleness = float(replay_prob), float(temperature), float(staleness)
        K = self.capacity
        self.seeds, self.worn = np.zeros(K, np.int64), np.zeros(K, np.int64)
        self.score, self.last = np.zeros(K), np.zeros(K)  # score, episode (draw) count when last played
        self.success_sum, self.plays = np.zeros(K), np.zeros(K)
        self.filled = np.zeros(K, bool)
        self.draws = 0

    def probabilities(self) -> np.ndarray:
        """Replay distribution over the filled slots: rank prioritization (h(rank)^(1/T)) mixed with
        staleness, as in prioritized level replay."""
        idx = np.flatnonzero(self.filled)
        p = np.zeros(self.capacity)
        if not len(idx):
            return p
        order = np.argsort(-self.score[idx], kind="stable")
        rank = np.empty(len(idx))
        rank[order] = np.arange(1, len(idx) + 1)
        h = (1.0 / rank) ** (1.0 / self.temperature)
        stale = self.draws - self.last[idx]
        s = stale / stale.sum() if stale.sum() > 0 else np.full(len(idx), 1.0 / len(idx))
        p[idx] = (1 - self.staleness) * h / h.sum() + self.staleness * s
        return p

    def draw(self, n: int):
        self.draws += 1
        seeds, worn = self.space.generate(n, self.rs)
        slot = np.full(n, -1)
        if self.filled.sum() >= min(self.capacity, n):  # replay only from a buffer that can hold a batch
            replay = self.rs.random_sample(n) < self.replay_prob
            k = int(replay.sum())
            if k:
                pick = self.rs.choice(self.capacity, size=k, p=self.probabilities())
                slot[replay] = pick
                seeds[replay], worn[replay] = self.seeds[pick], self.worn[pick]
                self.last[pick] = self.draws
        return self._count(seeds, worn, slot)

    def _score(self, slot, regret, success) -> float:
        if self.score_kind == "regret":
            return float(regret)
        p = self.success_sum[slot] / self.plays[slot]
        return float(p * (1 - p))

    def update(self, seeds, worn, slot, regret, success) -> None:
        for i in range(len(seeds)):
            k = int(slot[i])
            if k < 0:  # a new level: into an empty slot, or in place of the lowest score if it beats it
                empty = np.flatnonzero(~self.filled)
                if len(empty):
                    k = int(empty[0])
                else:
                    k = int(np.argmin(self.score))
                    if self._candidate(regret[i], success[i]) <= self.score[k]:
                        continue
                self.filled[k], self.seeds[k], self.worn[k] = True, seeds[i], worn[i]
                self.success_sum[k] = self.plays[k] = 0.0
                self.last[k] = self.draws
            self.success_sum[k] += success[i]
            self.plays[k] += 1
            self.score[k] = self._score(k, regret[i], success[i])

    def _candidate(self, regret, success) -> float:
        return float(regret) if self.score_kind == "regret" else float(success * (1 - success))

    def stats(self) -> dict:
        out = super().stats()
        f = self.filled
        if f.any():
            out.update({"levels/buffer_size": int(f.sum()), "levels/buffer_score_mean": float(self.score[f].mean()),
                        "levels/buffer_score_max": float(self.score[f].max()),
                        "levels/buffer_disambiguating": float((self.worn[f] != self.space.own).mean())})
        return out

    def describe(self) -> dict:
        f = np.flatnonzero(self.filled)
        order = f[np.argsort(-self.score[f], kind="stable")]
        return {**super().describe(), "buffer": [
            {"seed": int(self.seeds[k]), "identity": int(self.worn[k]), "score": float(self.score[k]),
             "plays": int(self.plays[k]), "success": float(self.success_sum[k] / max(self.plays[k], 1))}
            for k in order]}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "seeds": self.seeds.copy(), "worn": self.worn.copy(),
                "score": self.score.copy(), "last": self.last.copy(), "success_sum": self.success_sum.copy(),
                "plays": self.plays.copy(), "filled": self.filled.copy(), "draws": int(self.draws)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        for k in ("seeds", "worn", "score", "last", "success_sum", "plays", "filled"):
            setattr(self, k, np.asarray(state[k]).astype(getattr(self, k).dtype).copy())
        self.draws = int(state["draws"])


def make_sampler(curriculum: str, space: LevelSpace, seed: int, capacity: int, replay_prob: float,
                 temperature: float, staleness: float) -> LevelSampler:
    if curriculum == "dr":
        return LevelSampler(space, seed)
    if curriculum in ("plr", "sfl"):
        return PrioritizedReplay(space, seed, "regret" if curriculum == "plr" else "learnability", capacity,
                                 replay_prob, temperature, staleness)
    raise ValueError(f"curriculum must be one of {', '.join(CURRICULA)}, got {curriculum!r}")
