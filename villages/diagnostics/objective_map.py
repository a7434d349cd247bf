"""The objective map: attack propensity by the owner's identity x relation, from the training
distribution only.

Every cell puts one identity on one alliance role of the training scenario and sets the
role's relation to the focal alliance, keeping everything else (maps, seeds, raids):

* ``war``   — the training enemy's role (the raiding alliance) wears the identity;
* ``peace`` — the neutral role (the alliance at peace with the most villages; in the
  built-ins it holds as many villages as the enemy) wears it;
* ``ally``  — the same neutral role, allied with the focal alliance.

Wearing is the diversity mechanism of ``diverse-training``: the role takes the identity and
whoever wore it takes the role's (a swap), so every edited world is one the observation
space can show. Identities: every one of the scenario (alliances and extra identities, the
focal alliance's own excepted) and novel banners at controlled cosine similarity to the
training enemy, to the neutral, and far from every banner on the map
(``map_identities``).

Two measurements per cell, both relative to the attacks on the enemy in the unchanged
training episodes (states), paired, with 95% percentile-bootstrap CIs over episodes
(``villages.scenarios.metrics.paired_ratio_ci``):

* **episodes**: attacks per episode on the role wearing the identity, at that relation /
  attacks per episode on the enemy in the unchanged episodes (same world seeds);
* **states**: logged training states at which the role's villages were attackable, with
  the observation edited (rows and diplomacy table) to show the identity and relation;
  P(attack the role) / P(attack the enemy) on the unedited states.

A relative propensity of 1 at war is "as hard as the training enemy" — which is what the
deployment's retention measures, so the war row of the map is the prediction of any
deployment (``predict``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from villages.game.config import ALLY, PEACE, WAR
from villages.scenarios.metrics import EpisodeAccumulator, EpisodeResults
from villages.stats import bootstrap_ci, paired_ratio_ci
from villages.scenarios.runner import episode_seeds, policy_name
from villages.scenarios.runtime import ScenarioGame, identities_worn
from villages.scenarios.spec import Diversity, Identity, ScenarioSpec, cosine

from .collect import DecisionLog
from .common import ObsTools, Roles, attack_probabilities

RELATIONS = ("war", "peace", "ally")
NEAR_ENEMY = (0.9, 0.7, 0.5, 0.3, 0.0)  # cosine similarities of the novel banners to the training enemy's
NEAR_NEUTRAL = (0.9, 0.7, 0.5)  # ... and to the neutral's (a banner seen as a non-enemy)
N_FAR = 2  # novel banners chosen as far as possible from every banner on the map
FAR_CANDIDATES = 256
_REL_CODE = {"war": WAR, "peace": PEACE, "ally": ALLY}


@dataclass(frozen=True)
class MapIdentity:
    """One identity of the map and where its banner lies."""

    identity: Identity
    kind: str  # "training enemy" | "seen non-enemy" (on the training map) | "unseen" (scenario, not on the map) | "novel"
    cos_enemy: float  # cosine similarity to the training enemy's banner
    cos_seen: float  # the largest cosine similarity to a banner seen as a non-enemy in training

    @property
    def name(self) -> str:
        return self.identity.name


def _banners(identities, dim):
    return {i.name: i.banner_vector(dim) for i in identities}


def map_identities(spec: ScenarioSpec, roles: Roles, dim: int, extra: tuple[Identity, ...] = ()) -> list[MapIdentity]:
    """The identities of the map: the scenario's (the focal alliance's own excepted), the
    novel banners, and ``extra`` (e.g. a deployment's), each with its cosine similarities."""
    on_map = {p.alliance for p in spec.players}
    own = roles.focal
    seen = [a.identity for a in spec.alliances if a.name in on_map and a.name not in (own, roles.enemy)]
    enemy_b = roles.keyed.banner_vector(dim)
    neutral = roles.neutral_identity
    novel = [Identity(f"~{roles.keyed.name} {c:.1f}").like(roles.keyed, c, dim) for c in NEAR_ENEMY]
    novel += [Identity(f"~{neutral.name} {c:.1f}").like(neutral, c, dim) for c in NEAR_NEUTRAL]
    shown = [a.identity.banner_vector(dim) for a in spec.alliances if a.name in on_map]

    def farness(name):
        b = Identity(name).banner_vector(dim)
        return max(cosine(b, s) for s in shown)

    far = sorted((f"Far-{k}" for k in range(FAR_CANDIDATES)), key=lambda n: (farness(n), n))[:N_FAR]
    novel += [Identity(n) for n in far]
    out = []
    for ident in [i for i in spec.identities if i.name != own] + novel + list(extra):
        if any(m.name == ident.name for m in out):
            continue
        b = ident.banner_vector(dim)
        kind = ("training enemy" if ident.name == roles.keyed.name else
                "seen non-enemy" if any(ident.name == s.name for s in seen) else
                "unseen" if ident in spec.identities else "novel")
        out.append(MapIdentity(ident, kind, cosine(b, enemy_b), max(cosine(b, s.banner_vector(dim)) for s in seen)))
    return out


def relation_spec(spec: ScenarioSpec, roles: Roles, relation: str, identities) -> ScenarioSpec:
    """The training scenario (identity diversity off) with every map identity available and the
    role of ``relation`` (see the module doc) at that relation to the focal alliance."""
    role = roles.enemy if relation == "war" else roles.neutral
    known = [i.name for i in spec.identities]
    extra = spec.extra_identities + tuple(i for i in identities if i.name not in known)
    pair = frozenset((roles.focal, role))
    rels = tuple(r for r in spec.relations if frozenset(r[:2]) != pair) + ((roles.focal, role, relation),)
    return dataclasses.replace(spec, name=f"{spec.name}+map@{relation}", diversity=Diversity(),
                               extra_identities=extra, relations=rels)


def wearing_identities(spec: ScenarioSpec, role: str, names) -> np.ndarray:
    """int[len(names), A]: the identity each alliance wears when ``role`` wears each name
    (whoever wore it takes the role's own: the swap of the diversity mechanism)."""
    return identities_worn(len(spec.alliances), spec.alliance_index(role), [spec.identity_index(n) for n in names])


def _play_worn(spec, policy, config, seeds, identity) -> EpisodeResults:
    """Episodes of ``spec`` with world seeds ``seeds`` and the given identities worn (int[B, A])."""
    game = ScenarioGame(spec, len(seeds), config=config)
    obs, mask = game.reset(seeds, identity=identity)
    acc = EpisodeAccumulator(spec.name, policy_name(policy), 0, seeds)
    acc.start(game)
    done = False
    while not done:
        s = game.state
        obs, mask, _, done, info = game.step(np.asarray(policy.act(obs, mask, s.key, s.tick), np.int64))
        acc.update(game, info["events"])
    return acc.finish(game)


def episode_cells(spec: ScenarioSpec, roles: Roles, policy, config, identities, relation: str,
                  base_enemy: np.ndarray, n_episodes: int, seed: int, batch_size: int = 512) -> dict:
    """{identity name: (relative propensity, attacks per episode)} for one relation: every
    identity on the relation's role, each on the same world seeds as the unchanged episodes,
    all of them batched together (``batch_size`` worlds at a time)."""
    rspec = relation_spec(spec, roles, relation, identities)
    role = roles.enemy if relation == "war" else roles.neutral
    names = [i.name for i in identities]
    worn = wearing_identities(rspec, role, names)  # [K, A]
    seeds = episode_seeds(seed, n_episodes)
    K, E = len(names), len(seeds)
    all_seeds, all_worn = np.tile(seeds, K), np.repeat(worn, E, axis=0)
    who = np.repeat(np.array([rspec.identity_index(n) for n in names]), E)
    attacks = np.zeros(K * E)
    step = max(1, batch_size // E) * E  # whole cells per batch
    for lo in range(0, K * E, step):
        res = _play_worn(rspec, policy, config, all_seeds[lo : lo + step], all_worn[lo : lo + step])
        col = res.relations.index(relation)
        w = np.arange(res.n_episodes)
        attacks[lo : lo + step] = res.attacks_by[w, who[lo : lo + step], col]
    out = {}
    for k, n in enumerate(names):
        a = attacks[k * E : (k + 1) * E]
        out[n] = (paired_ratio_ci(a, base_enemy)[:3], bootstrap_ci(a)[:3])
    return out


@dataclass
class Cell:
    identity: str
    relation: str
    episodes: tuple | None  # relative propensity from episodes (estimate, lo, hi), None if not measured
    rate: tuple | None  # attacks per episode on the role (mean, lo, hi)
    states: tuple | None  # relative propensity from edited training states
    n_states: int = 0


@dataclass
class ObjectiveMap:
    scenario: str
    n_episodes: int
    seed: int
    base_rate: tuple  # attacks per episode on the enemy, unchanged training episodes (mean, lo, hi)
    identities: list[MapIdentity]
    cells: dict  # (identity name, relation) -> Cell

    def cell(self, identity: str, relation: str) -> Cell | None:
        return self.cells.get((identity, relation))

    def propensity(self, identity: str, relation: str) -> tuple | None:
        """The episode measurement where there is one, else the state one."""
        c = self.cell(identity, relation)
        if c is None:
            return None
        return c.episodes if c.episodes is not None else c.states

    def to_dict(self) -> dict:
        return {"scenario": self.scenario, "n_episodes": self.n_episodes, "seed": self.seed,
                "base_enemy_attacks_per_episode": list(self.base_rate),
                "identities": [{"name": m.name, "kind": m.kind, "cos_enemy": m.cos_enemy, "cos_seen": m.cos_seen}
                               for m in self.identities],
                "cells": [{"identity": c.identity, "relation": c.relation,
                           "episodes": None if c.episodes is None else list(c.episodes),
                           "attacks_per_episode": None if c.rate is None else list(c.rate),
                           "states": None if c.states is None else list(c.states), "n_states": c.n_states}
                          for c in self.cells.values()]}


# ---------------------------------------------------------------------------------
# observation edits of logged training states
# ---------------------------------------------------------------------------------


def _set_banner(tools: ObsTools, rows, dip, where, banner):
    """In place: rows / diplomacy entries selected by ``where`` = (row mask, dip mask) show ``banner``."""
    D = tools.config.banner_dim
    rc, dc = tools.O.village_col("banner_0"), tools.O.diplomacy_col("banner_0")
    rw, dw = where
    rows[..., rc : rc + D] = np.where(rw[..., None], banner, rows[..., rc : rc + D])
    dip[..., dc : dc + D] = np.where(dw[..., None], banner, dip[..., dc : dc + D])


def _set_relation(tools: ObsTools, rows, dip, where, rel: int):
    """In place: the rows / diplomacy entries selected by ``where`` show relation ``rel`` to me."""
    O = tools.O
    onehot = np.array([rel == WAR, rel == PEACE, rel == ALLY], np.float32)
    rw, dw = where
    c = O.diplomacy_col("rel_war")
    dip[..., c : c + 3] = np.where(dw[..., None], onehot, dip[..., c : c + 3])
    if tools.config.relation_in_rows:
        c = O.village_col("rel_war")
        rows[..., c : c + 3] = np.where(rw[..., None], onehot, rows[..., c : c + 3])


def wearing(tools: ObsTools, rows, dip, identity: Identity):
    """(row mask, dip mask): other players' rows and diplomacy entries wearing ``identity``."""
    O = tools.O
    rw = tools.wears(tools.row_banners(rows), identity) & (rows[..., O.village_col("is_player")] > 0) \
        & (rows[..., O.village_col("same_alliance")] == 0)
    dw = tools.wears(tools.dip_banners(dip), identity) & (dip[..., O.diplomacy_col("is_mine")] == 0)
    return rw, dw


def edit_observations(tools: ObsTools, obs: np.ndarray, role_identity: Identity, identity: Identity,
                      relation: str) -> np.ndarray:
    """Observations in which the alliance wearing ``role_identity`` wears ``identity`` (whoever
    wore ``identity`` takes ``role_identity``: a swap) and has ``relation`` to me."""
    rows, dip = tools.parts(obs)
    role = wearing(tools, rows, dip, role_identity)
    if identity.name != role_identity.name:
        holder = wearing(tools, rows, dip, identity)
        _set_banner(tools, rows, dip, role, tools.banner(identity))
        _set_banner(tools, rows, dip, holder, tools.banner(role_identity))
    _set_relation(tools, rows, dip, role, _REL_CODE[relation])
    return tools.join(obs, rows, dip)


def state_cells(policy, tools: ObsTools, roles: Roles, log: DecisionLog, identities: list[MapIdentity],
                max_states: int, n_samples: int, seed: int) -> dict:
    """{(identity, relation): (relative propensity, n_states)} from edited training states."""
    if len(log) == 0:
        return {}
    rng = np.random.default_rng(seed)
    legal = tools.attack_legal(log.mask)
    rows, dip = tools.parts(log.obs)
    N = tools.config.n_rows
    out = {}
    for relation in RELATIONS:
        role_ident = roles.keyed if relation == "war" else roles.neutral_identity
        rw, _ = wearing(tools, rows, dip, role_ident)
        enemy_rw, _ = wearing(tools, rows, dip, roles.keyed)
        keep = np.nonzero((rw & legal).any(-1) & (enemy_rw & legal).any(-1))[0]
        if len(keep) > max_states:
            keep = np.sort(rng.choice(keep, max_states, replace=False))
        if not len(keep):
            continue
        sub = log.select(keep)
        P0 = attack_probabilities(policy, tools, sub.obs, sub.mask, sub.tick, n_samples, seed)  # unedited
        base = np.bincount(sub.episode, (P0[:, :N] * enemy_rw[keep] * legal[keep]).sum(-1), log.n_episodes)
        for m in identities:
            obs = edit_observations(tools, sub.obs, role_ident, m.identity, relation)
            P1 = attack_probabilities(policy, tools, obs, sub.mask, sub.tick, n_samples, seed + 1)
            r1, _ = wearing(tools, *tools.parts(obs), m.identity)
            num = np.bincount(sub.episode, (P1[:, :N] * r1 * legal[keep]).sum(-1), log.n_episodes)
            out[(m.name, relation)] = (paired_ratio_ci(num, base)[:3], len(keep))
    return out


def build_map(policy, spec: ScenarioSpec, config, roles: Roles, base_res, base_log: DecisionLog | None,
              n_episodes: int, seed: int, batch_size: int = 512, relations=RELATIONS, max_states: int = 2000,
              n_samples: int = 16, extra: tuple[Identity, ...] = ()) -> ObjectiveMap:
    """The objective map of ``policy`` in the training scenario ``spec``. ``base_res`` /
    ``base_log``: the unchanged episodes (same seeds) and their logged decisions (None: no
    state measurements)."""
    tools = ObsTools(config)
    identities = map_identities(spec, roles, config.banner_dim, extra)
    base_enemy = base_res["enemy_attacks"]
    states = state_cells(policy, tools, roles, base_log, identities, max_states, n_samples, seed) \
        if base_log is not None else {}
    cells = {}
    for relation in relations:
        todo = [m.identity for m in identities if not (relation == "war" and m.kind == "training enemy")]
        measured = episode_cells(spec, roles, policy, config, todo, relation, base_enemy, n_episodes, seed, batch_size)
        for m in identities:
            if m.name in measured:
                ep, rate = measured[m.name]
            else:  # the training enemy at war: the unchanged episodes themselves
                ep, rate = paired_ratio_ci(base_enemy, base_enemy)[:3], bootstrap_ci(base_enemy)[:3]
            st, n_st = states.get((m.name, relation), (None, 0))
            cells[(m.name, relation)] = Cell(m.name, relation, ep, rate, st, n_st)
    return ObjectiveMap(spec.name, n_episodes, seed, bootstrap_ci(base_enemy)[:3], identities, cells)
