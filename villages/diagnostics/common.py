"""Shared pieces of the diagnostics: the scenario's roles, reading village rows off an
observation, and a policy's attack probabilities (``config_for``, the evaluation config of a
checkpoint, lives in ``villages.scenarios`` and is re-exported here).

Everything here reads *observations* (by column name), never the game state, so the
same code serves logged states, edited (counterfactual) observations, scripted bots
and networks alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from villages.game import GameConfig, ObservationLayout, rng
from villages.game.layouts import ActionLayout, action_layout, observation_layout
from villages.scenarios import Identity, ScenarioSpec, config_for  # noqa: F401  (re-exported)

BANNER_TOL = 1e-3


# ---------------------------------------------------------------------------------
# roles
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Roles:
    """Who is who in the diagnosed scenario (derived from its relations, no names hard-wired).

    ``enemy``: the alliance role at war with the focal alliance; ``keyed``: the identity
    it wears in training (the one a pseudo-aligned agent may have learned); ``neutral``:
    the role at peace with the focal alliance (with the most villages) that the objective
    map's peace and ally cells dress up."""

    focal: str
    enemy: str
    keyed: Identity
    neutral: str
    neutral_identity: Identity


def find_roles(spec: ScenarioSpec, neutral: str | None = None) -> Roles:
    if not spec.focal_players:
        raise ValueError(f"scenario {spec.name!r} has no focal player to diagnose")
    focal = spec.players[spec.focal_players[0]].alliance
    rel = {}
    for a, b, r in spec.relations:
        if focal in (a, b) and a != b:
            rel[b if a == focal else a] = r
    enemies = [n for n in spec.alliance_names if rel.get(n) == "war"]
    if not enemies:
        raise ValueError(f"scenario {spec.name!r}: no alliance is at war with the focal alliance {focal!r} at the "
                         f"start, so there is no learned target to diagnose")
    enemy = enemies[0]
    at_peace = [n for n in spec.alliance_names if n not in (focal, enemy) and rel.get(n, "peace") == "peace"
                and any(p.alliance == n for p in spec.players)]
    if neutral is None:
        if not at_peace:
            raise ValueError(f"scenario {spec.name!r}: no alliance at peace with {focal!r} to use in the probes")
        # the neutral with the most villages (the likeliest alternative target)
        neutral = max(at_peace, key=lambda n: (sum(p.villages for p in spec.players if p.alliance == n),
                                              -spec.alliance_names.index(n)))
    elif neutral not in at_peace:
        raise ValueError(f"neutral {neutral!r} is not an alliance at peace with {focal!r} (choose from {at_peace})")
    return Roles(focal, enemy, spec.alliances[spec.alliance_index(enemy)].identity, neutral,
                 spec.alliances[spec.alliance_index(neutral)].identity)


# ---------------------------------------------------------------------------------
# reading rows off observations
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObsTools:
    """Column bookkeeping for one game config."""

    config: GameConfig

    @property
    def O(self) -> ObservationLayout:  # noqa: N802
        return observation_layout(self.config)

    @property
    def L(self) -> ActionLayout:  # noqa: N802
        return action_layout(self.config)

    def banner(self, identity: Identity) -> np.ndarray:
        """The banner features an observation shows for ``identity`` (float32, scaled)."""
        b = identity.banner_vector(self.config.banner_dim).astype(np.float32)
        return (b * np.float32(self.config.banner_scale)).astype(np.float32)

    def parts(self, obs: np.ndarray):
        """(rows [n, N, F], dip [n, A, G]) copies of flat observations [n, size]."""
        O = self.O
        n = obs.shape[0]
        rows = obs[:, O.rows_start : O.diplomacy_start].reshape(n, O.n_rows, len(O.village)).copy()
        dip = obs[:, O.diplomacy_start :].reshape(n, O.n_alliances, len(O.diplomacy)).copy()
        return rows, dip

    def join(self, obs: np.ndarray, rows: np.ndarray, dip: np.ndarray) -> np.ndarray:
        """Flat observations with the rows and the diplomacy table replaced."""
        O = self.O
        out = obs.copy()
        out[:, O.rows_start : O.diplomacy_start] = rows.reshape(len(obs), -1)
        out[:, O.diplomacy_start :] = dip.reshape(len(obs), -1)
        return out

    def row_banners(self, rows):
        c = self.O.village_col("banner_0")
        return rows[..., c : c + self.config.banner_dim]

    def dip_banners(self, dip):
        c = self.O.diplomacy_col("banner_0")
        return dip[..., c : c + self.config.banner_dim]

    def wears(self, banners: np.ndarray, identity: Identity) -> np.ndarray:
        """bool[...]: which banner vectors [..., D] are ``identity``'s."""
        return np.abs(banners - self.banner(identity)).max(-1) < BANNER_TOL * max(self.config.banner_scale, 1.0)

    def row_info(self, obs: np.ndarray, identities) -> dict[str, np.ndarray]:
        """Per village row [n, N], read off the observation only:

        ``player`` (another player's village, own alliance included), ``barbarian``,
        ``war`` / ``peace`` / ``ally``: the owner's relation to me, looked up in the
        diplomacy table by banner (so it does not depend on ``relation_in_rows``),
        ``identity``: index into ``identities`` of the owner's banner (-1: none/unknown),
        ``same``: own alliance, and the raw ``distance``, ``defence``, ``integrity``."""
        O = self.O
        rows, dip = self.parts(obs)
        rb, db = self.row_banners(rows), self.dip_banners(dip)
        d = np.abs(rb[:, :, None, :] - db[:, None, :, :]).max(-1)  # [n, N, A]
        match = d.argmin(-1)
        matched = np.take_along_axis(d, match[..., None], -1)[..., 0] < BANNER_TOL * max(self.config.banner_scale, 1.0)
        player = rows[..., O.village_col("is_player")] > 0
        same = rows[..., O.village_col("same_alliance")] > 0
        ok = player & matched & ~same
        rel = {}
        for r in ("war", "peace", "ally"):
            col = dip[..., O.diplomacy_col(f"rel_{r}")]  # [n, A]
            rel[r] = ok & (np.take_along_axis(col, match, 1) > 0)
        ident = np.full(player.shape, -1, np.int64)
        for k, idn in enumerate(identities):
            ident[player & self.wears(rb, idn)] = k
        return {
            "player": player, "same": same, "barbarian": rows[..., O.village_col("is_barbarian")] > 0,
            **rel, "identity": ident,
            "distance": rows[..., O.village_col("distance")], "defence": rows[..., O.village_col("defence")],
            "integrity": rows[..., O.village_col("integrity")],
        }

    def attack_legal(self, mask: np.ndarray) -> np.ndarray:
        """bool[n, N]: attacking row j is legal."""
        return np.asarray(mask, bool)[:, self.L.row_action(np.arange(self.config.n_rows), "attack")]


# ---------------------------------------------------------------------------------
# what a policy would do: attack probabilities and values
# ---------------------------------------------------------------------------------


def has_critic(policy) -> bool:
    return callable(getattr(policy, "logits_value", None))


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def attack_probabilities(policy, tools: ObsTools, obs: np.ndarray, mask: np.ndarray, tick: np.ndarray,
                         n_samples: int = 16, seed: int = 0, chunk: int = 4096) -> np.ndarray:
    """float[n, N + 1]: the policy's probability of attacking each row, and (last) of not attacking.

    Policies with ``logits_value`` (networks): the softmax of the masked logits (one-hot
    of the argmax for a deterministic policy). Any other policy (scripted bots): the
    empirical frequency over ``n_samples`` calls of ``act`` with fresh per-world keys."""
    obs = np.asarray(obs, np.float32)
    mask = np.asarray(mask, bool)
    tick = np.asarray(tick, np.int64)
    n, N = len(obs), tools.config.n_rows
    cols = tools.L.row_action(np.arange(N), "attack")
    out = np.zeros((n, N + 1))
    for s in range(0, n, chunk):
        o, m, t = obs[s : s + chunk, None], mask[s : s + chunk, None], tick[s : s + chunk]
        if has_critic(policy):
            logits, _ = policy.logits_value(o, m)
            logits = np.asarray(logits, np.float64)[:, 0]
            if getattr(policy, "deterministic", False):
                p = np.zeros_like(logits)
                p[np.arange(len(p)), logits.argmax(-1)] = 1.0
            else:
                p = _softmax(logits)
            pa = p[:, cols]
        else:
            pa = np.zeros((len(o), N))
            base = rng.derive(np.uint64(seed), 7919, np.arange(s, s + len(o)))
            for k in range(n_samples):
                key = rng.derive(base, k)
                a = np.asarray(policy.act(o, m, key, t))[:, 0]
                j = (a - tools.L.row_base) // tools.L.n_verbs
                is_attack = (a >= tools.L.row_base) & ((a - tools.L.row_base) % tools.L.n_verbs
                                                       == tools.L.row_verbs.index("attack"))
                np.add.at(pa, (np.nonzero(is_attack)[0], j[is_attack]), 1.0)
            pa /= n_samples
        out[s : s + chunk, :N] = pa
        out[s : s + chunk, N] = np.clip(1.0 - pa.sum(-1), 0.0, 1.0)
    return out
