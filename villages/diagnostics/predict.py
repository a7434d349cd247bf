"""Blind prediction of a deployment's retention from training-distribution probes only.

For every alliance at war with the focal player in a deployment scenario (at the start or
by a ``declare_war`` event), the prediction reads only the deployment's *spec* — which
identity that alliance wears (its own, or its diversity pool's), and how many villages it
starts with — and never runs the agent there. The predicted retention is the objective
map's war cell for that identity: training episodes (same seeds as the unchanged ones) in
which the training enemy's role wears it, attacks on it / attacks on the enemy unchanged,
with a 95% paired bootstrap CI; scaled by the deployment alliance's villages over the
training enemy's (retention counts attacks, and attacks scale with the targets there are).

Retention counts attacks on the alliances that declare war during the deployment (new
enemies): those are the ones predicted (with none, the alliances at war from the start).
An alliance whose role draws identities from a diversity pool is predicted as the mixture
(the fraction's share spread over the pool, the rest on its own identity). For an agent that
attacks its training enemy fewer than ``MIN_ENEMY_ATTACKS`` times per training episode the
predicted outcome is *inconclusive*: retention is then a ratio of near-zero counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from villages.scenarios.spec import Identity, ScenarioSpec, cosine

from .common import Roles
from .objective_map import ObjectiveMap, episode_cells
from .verdict import INCONCLUSIVE, MIN_ENEMY_ATTACKS, THRESHOLD


@dataclass
class Prediction:
    scenario: str
    alliance: str  # the deployment alliance at war with the focal player
    identities: list  # [(identity name, weight)] it wears
    cos_enemy: float  # cosine similarity of its banner to the training enemy's (weighted over identities)
    villages_ratio: float  # its starting villages / the training enemy's
    retention: tuple  # predicted (estimate, lo, hi)
    base_rate: float  # attacks per episode on the training enemy, unchanged training episodes

    @property
    def outcome(self) -> str:
        """The deployment verdict this predicts (the retention threshold of the experiments); it
        abstains for an agent that hardly attacks its training enemy (retention is then a ratio
        of near-zero counts)."""
        if not self.base_rate >= MIN_ENEMY_ATTACKS:
            return INCONCLUSIVE
        return "misgeneralized" if self.retention[0] < THRESHOLD else "robust"

    def to_dict(self) -> dict:
        return {"scenario": self.scenario, "alliance": self.alliance, "identities": [list(x) for x in self.identities],
                "cos_enemy": self.cos_enemy, "villages_ratio": self.villages_ratio, "base_rate": self.base_rate,
                "retention": list(self.retention), "outcome": self.outcome}


def _villages(spec: ScenarioSpec, alliance: str) -> int:
    return sum(p.villages for p in spec.players if p.alliance == alliance)


def wars(spec: ScenarioSpec) -> list[tuple[str, list[tuple[Identity, float]]]]:
    """[(alliance, [(identity, weight)])]: the alliances that declare war on the focal alliance
    during ``spec`` (the new enemies retention counts; if none, those at war from the start),
    with the identities they wear and how often."""
    focal = {spec.players[p].alliance for p in spec.focal_players}
    at_war = [next(x for x in e.alliances if x not in focal) for e in spec.events
              if e.action == "declare_war" and len(set(e.alliances) & focal) == 1]
    if not at_war:
        at_war = [b if a in focal else a for a, b, r in spec.relations if r == "war" and (a in focal) != (b in focal)]
    out = []
    for name in dict.fromkeys(at_war):
        own = spec.alliances[spec.alliance_index(name)].identity
        d = spec.diversity
        worn = [(own, 1.0)]
        if d.fraction > 0 and d.role == name:
            pool = [spec.identities[spec.identity_index(n)] for n in d.pool]
            worn = [(own, 1.0 - d.fraction)] + [(i, d.fraction / len(pool)) for i in pool]
        merged: dict[str, tuple[Identity, float]] = {}
        for i, w in worn:
            if w > 0:
                merged[i.name] = (i, merged.get(i.name, (i, 0.0))[1] + w)
        out.append((name, list(merged.values())))
    return out


def _as_probe_identity(ident: Identity, training: ScenarioSpec, dim: int) -> Identity:
    """The deployment's identity as the training probes show it: a name the training scenario
    uses for another banner is renamed, so the banner (what the agent sees) decides."""
    for t in training.identities:
        if t.name == ident.name and not np.allclose(t.banner_vector(dim), ident.banner_vector(dim)):
            return Identity(f"{ident.name} (deployment banner)", ident.tag, ident.colour,
                            tuple(float(x) for x in ident.banner_vector(dim)))
    return ident


def predict_scenario(deploy: ScenarioSpec, policy, training: ScenarioSpec, config, roles: Roles, base_res,
                     n_episodes: int, seed: int, batch_size: int = 512, omap: ObjectiveMap | None = None,
                     cache: dict | None = None) -> list[Prediction]:
    """Predicted retention for every alliance at war in ``deploy`` (a spec that is only read).
    ``omap``: a map of the same episodes whose war cells are reused; ``cache``: shared between
    calls ({banner bytes: (R, rate)})."""
    dim = config.banner_dim
    cache = {} if cache is None else cache
    base_enemy = base_res["enemy_attacks"]
    enemy_villages = _villages(training, roles.enemy)
    if omap is not None:
        for m in omap.identities:
            c = omap.cell(m.name, "war")
            if c is not None and c.episodes is not None:
                cache.setdefault(m.identity.banner_vector(dim).round(9).tobytes(), c.episodes)
    found = wars(deploy)
    probes = {}
    for _, worn in found:
        for ident, _ in worn:
            probe = _as_probe_identity(ident, training, dim)
            probes[probe.banner_vector(dim).round(9).tobytes()] = probe
    todo = {}
    for key, probe in probes.items():  # one batched run for the banners not measured yet (distinct names)
        if key not in cache:
            todo[key] = probe if probe.name not in {t.name for t in todo.values()} else \
                Identity(f"{probe.name} ({len(todo)})", banner=tuple(float(x) for x in probe.banner_vector(dim)))
    if todo:
        cells = episode_cells(training, roles, policy, config, list(todo.values()), "war", base_enemy, n_episodes,
                              seed, batch_size)
        cache.update({key: cells[i.name][0] for key, i in todo.items()})
    out = []
    for alliance, worn in found:
        est, cos = np.zeros(3), 0.0
        for ident, w in worn:
            probe = _as_probe_identity(ident, training, dim)
            est += w * np.asarray(cache[probe.banner_vector(dim).round(9).tobytes()], float)
            cos += w * cosine(probe.banner_vector(dim), roles.keyed.banner_vector(dim))
        ratio = _villages(deploy, alliance) / max(enemy_villages, 1)
        out.append(Prediction(deploy.name, alliance, [(i.name, w) for i, w in worn], cos, ratio,
                              tuple(float(x) * ratio for x in est), float(np.mean(base_enemy))))
    return out
