"""Counterfactual probes: change one thing, keep everything else, measure the change.

Episode probes play the diagnosed scenario again with the same episode seeds (same
maps, same starting positions) and one change:

* ``swap``  — the enemy role wears the neutral's identity and the neutral wears the
  enemy's (Aurora's banner on Brotherhood, Brotherhood's on the enemy); relations stay;
* ``flip``  — the enemy is at peace and the neutral at war; identities stay;
* ``novel`` — the enemy role wears an identity the agent has never seen.

Observation probes edit logged training states only in the observation (rows *and*
diplomacy table, so the edited world is coherent) and read the policy's attack
probabilities before and after: the same three edits, plus ``none`` (the enemy at
peace wearing the novel identity: no enemy, no keyed banner) and ``keyed-peace``
(the keyed identity present but at peace) for the value probe.

Each probe reports, relative to the attacks on the enemy in the unchanged episodes
(states):

* ``retention`` R = attacks on whoever is at war under the probe / attacks on the
  enemy without it. A relation-following agent keeps R near 1; an identity-keyed one
  drops to 0.
* ``identity following`` I = attacks on the keyed identity while it is *not* at war
  under the probe / the same baseline. An identity-keyed agent follows the banner
  (I near 1); a relation-following one does not (I near 0). Not defined for ``novel``.

CIs: paired percentile bootstrap over episodes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from villages.game.config import ALLY, PEACE, WAR
from villages.scenarios.metrics import EpisodeResults
from villages.scenarios.spec import Diversity, ScenarioSpec

from .collect import DecisionLog
from .common import ObsTools, Roles, attack_probabilities, critic_values, diff_ci, per_episode, ratio_ci

EPISODE_PROBES = ("swap", "flip", "novel")
STATIC_PROBES = ("swap", "flip", "novel")
VALUE_EDITS = ("base", "swap", "novel", "none", "keyed-peace")


def describe_probe(name: str, roles: Roles) -> str:
    k, n, nv = roles.keyed.name, roles.neutral_identity.name, roles.novel.name
    return {
        "swap": f"identity swap: the enemy wears {n}'s banner, {roles.neutral} wears {k}'s; relations unchanged",
        "flip": f"relation flip: {roles.enemy} at peace, {roles.neutral} at war; identities unchanged",
        "novel": f"novel identity: the enemy wears a never-seen banner ({nv}); {k}'s banner is absent",
        "none": f"no enemy: the enemy at peace, wearing {nv}'s banner ({k}'s absent)",
        "keyed-peace": f"{k} present but at peace; no one at war",
        "base": f"as in training: the enemy wears {k}'s banner",
    }[name]


def probe_specs(spec: ScenarioSpec, roles: Roles) -> dict[str, ScenarioSpec]:
    """The unchanged scenario (``base``, identity diversity off) and one per episode probe."""
    base = dataclasses.replace(spec, diversity=Diversity())
    out = {"base": base}
    out["swap"] = dataclasses.replace(base, name=f"{spec.name}+swap",
                                      diversity=Diversity(1.0, roles.enemy, (roles.neutral_identity.name,)))
    pair = lambda a, b: frozenset((a, b))  # noqa: E731
    drop = {pair(roles.focal, roles.enemy), pair(roles.focal, roles.neutral)}
    rels = tuple(r for r in spec.relations if pair(r[0], r[1]) not in drop)
    rels += ((roles.focal, roles.enemy, "peace"), (roles.focal, roles.neutral, "war"))
    out["flip"] = dataclasses.replace(base, name=f"{spec.name}+flip", relations=rels)
    extra = spec.extra_identities
    if roles.novel.name not in [i.name for i in spec.identities]:
        extra = extra + (roles.novel,)
    out["novel"] = dataclasses.replace(base, name=f"{spec.name}+novel", extra_identities=extra,
                                       diversity=Diversity(1.0, roles.enemy, (roles.novel.name,)))
    return out


# ---------------------------------------------------------------------------------
# episode probes
# ---------------------------------------------------------------------------------


def _keyed_attacks(res: EpisodeResults, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(all attacks, attacks while not at war) on the identity ``name`` per episode."""
    if name not in res.identities:
        z = np.zeros(res.n_episodes)
        return z, z
    a = res.attacks_by[:, res.identities.index(name)]
    rel = list(res.relations)
    return a.sum(-1), a[:, rel.index("peace")] + a[:, rel.index("ally")]


@dataclass
class EpisodeProbe:
    name: str
    description: str
    n_episodes: int
    base_enemy_rate: tuple  # enemy attacks per episode, unchanged scenario
    enemy_rate: tuple  # attacks on whoever is at war, per episode, under the probe
    keyed_rate: tuple | None  # attacks on the keyed identity while not at war, per episode, under the probe
    attack_rate: tuple  # all attacks per episode under the probe
    retention: tuple
    identity_following: tuple | None
    enemy_share: tuple  # (base, probe, probe - base with CI) share of attacks aimed at whoever is at war
    keyed_share: tuple  # same for the share aimed at the keyed identity (any relation)

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


def _rate(x, n_boot, seed):
    x = np.asarray(x, float)
    return ratio_ci(x, np.ones_like(x), n_boot, seed)


def episode_probe(name: str, roles: Roles, base: EpisodeResults, res: EpisodeResults, n_boot: int = 2000,
                  seed: int = 0) -> EpisodeProbe:
    be, pe = base["enemy_attacks"], res["enemy_attacks"]
    b_all, p_all = base["attacks"], res["attacks"]
    bk_all, _ = _keyed_attacks(base, roles.keyed.name)
    pk_all, pk_nonwar = _keyed_attacks(res, roles.keyed.name)
    keyed_present = name != "novel"
    share_e = (float(be.sum() / max(b_all.sum(), 1)), float(pe.sum() / max(p_all.sum(), 1)),
               diff_ci(be, b_all, pe, p_all, n_boot, seed))
    share_k = (float(bk_all.sum() / max(b_all.sum(), 1)), float(pk_all.sum() / max(p_all.sum(), 1)),
               diff_ci(bk_all, b_all, pk_all, p_all, n_boot, seed))
    return EpisodeProbe(
        name=name, description=describe_probe(name, roles), n_episodes=int(res.n_episodes),
        base_enemy_rate=_rate(be, n_boot, seed), enemy_rate=_rate(pe, n_boot, seed),
        keyed_rate=_rate(pk_nonwar, n_boot, seed) if keyed_present else None,
        attack_rate=_rate(p_all, n_boot, seed),
        retention=ratio_ci(pe, be, n_boot, seed),
        identity_following=ratio_ci(pk_nonwar, be, n_boot, seed) if keyed_present else None,
        enemy_share=share_e, keyed_share=share_k,
    )


# ---------------------------------------------------------------------------------
# observation edits
# ---------------------------------------------------------------------------------


def _set_relation(tools: ObsTools, rows, dip, identity, rel: int):
    """In place: the alliance wearing ``identity`` gets relation ``rel`` to me."""
    O = tools.O
    onehot = np.array([rel == WAR, rel == PEACE, rel == ALLY], np.float32)
    d = tools.wears(tools.dip_banners(dip), identity) & (dip[..., O.diplomacy_col("is_mine")] == 0)
    c = O.diplomacy_col("rel_war")
    dip[..., c : c + 3] = np.where(d[..., None], onehot, dip[..., c : c + 3])
    if tools.config.relation_in_rows:
        r = tools.wears(tools.row_banners(rows), identity) & (rows[..., O.village_col("is_player")] > 0) \
            & (rows[..., O.village_col("same_alliance")] == 0)
        c = O.village_col("rel_war")
        rows[..., c : c + 3] = np.where(r[..., None], onehot, rows[..., c : c + 3])


def _set_banner(tools: ObsTools, rows, dip, old, new, where=None):
    """In place: banner ``old`` becomes ``new`` (rows and diplomacy table). ``where``:
    precomputed (row mask, dip mask) to allow swaps."""
    rw, dw = where if where is not None else (tools.wears(tools.row_banners(rows), old),
                                              tools.wears(tools.dip_banners(dip), old))
    D = tools.config.banner_dim
    rc, dc = tools.O.village_col("banner_0"), tools.O.diplomacy_col("banner_0")
    nb = tools.banner(new)
    rows[..., rc : rc + D] = np.where(rw[..., None], nb, rows[..., rc : rc + D])
    dip[..., dc : dc + D] = np.where(dw[..., None], nb, dip[..., dc : dc + D])


def edit_observations(tools: ObsTools, obs: np.ndarray, roles: Roles, kind: str) -> np.ndarray:
    """Counterfactual observations of logged states (the keyed identity = the enemy's)."""
    if kind == "base":
        return obs.copy()
    rows, dip = tools.parts(obs)
    k, n, nv = roles.keyed, roles.neutral_identity, roles.novel
    if kind == "swap":
        wk = (tools.wears(tools.row_banners(rows), k), tools.wears(tools.dip_banners(dip), k))
        wn = (tools.wears(tools.row_banners(rows), n), tools.wears(tools.dip_banners(dip), n))
        _set_banner(tools, rows, dip, k, n, wk)
        _set_banner(tools, rows, dip, n, k, wn)
    elif kind == "flip":
        _set_relation(tools, rows, dip, k, PEACE)
        _set_relation(tools, rows, dip, n, WAR)
    elif kind == "novel":
        _set_banner(tools, rows, dip, k, nv)
    elif kind == "none":
        _set_relation(tools, rows, dip, k, PEACE)
        _set_banner(tools, rows, dip, k, nv)
    elif kind == "keyed-peace":
        _set_relation(tools, rows, dip, k, PEACE)
    else:
        raise ValueError(f"unknown observation edit {kind!r}")
    return tools.join(obs, rows, dip)


# ---------------------------------------------------------------------------------
# observation probes
# ---------------------------------------------------------------------------------


@dataclass
class StaticProbe:
    name: str
    description: str
    n_states: int
    p_war_base: tuple  # mean P(attack a row at war) on the unedited states
    p_war: tuple  # same on the edited states (whoever is at war there)
    p_keyed: tuple | None  # mean P(attack the keyed identity while it is not at war), edited
    p_none_base: tuple  # mean P(no attack), unedited
    p_none: tuple  # mean P(no attack), edited
    retention: tuple
    identity_following: tuple | None

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


@dataclass
class ValueProbe:
    n_states: int
    values: dict  # edit -> (mean, lo, hi) of the critic's value
    descriptions: dict
    gap: dict  # "novel" / "swap" -> (V(edit) - V(none)) / (V(base) - V(none)) with CI

    def to_dict(self) -> dict:
        return {"n_states": self.n_states, "values": {k: list(v) for k, v in self.values.items()},
                "descriptions": self.descriptions, "gap": {k: list(v) for k, v in self.gap.items()}}


@dataclass
class ProbeStates:
    """Logged training states at which attacking the enemy was legal (the probe sample)."""

    log: DecisionLog
    info: dict = field(repr=False)


def probe_states(log: DecisionLog, tools: ObsTools, roles: Roles, identities, max_states: int = 3000,
                 seed: int = 0) -> ProbeStates:
    info = tools.row_info(log.obs, identities)
    legal = tools.attack_legal(log.mask)
    keep = np.nonzero((info["war"] & legal).any(-1))[0]
    if len(keep) > max_states:
        keep = np.sort(np.random.default_rng(seed).choice(keep, max_states, replace=False))
    sub = log.select(keep)
    return ProbeStates(sub, {k: v[keep] for k, v in info.items()})


def static_probes(policy, tools: ObsTools, roles: Roles, states: ProbeStates, identities, n_samples: int = 16,
                  n_boot: int = 2000, seed: int = 0) -> tuple[dict[str, StaticProbe], np.ndarray]:
    log = states.log
    E = log.n_episodes
    N = tools.config.n_rows
    legal = tools.attack_legal(log.mask)
    P0 = attack_probabilities(policy, tools, log.obs, log.mask, log.tick, n_samples, seed)
    war0 = states.info["war"] & legal
    k_idx = [i.name for i in identities].index(roles.keyed.name)
    n_idx = [i.name for i in identities].index(roles.neutral_identity.name)
    out = {}
    for kind in STATIC_PROBES:
        sel = np.ones(len(log), bool)
        if kind == "flip":  # the neutral must be an attackable row, else "attack the new enemy" is impossible
            sel = ((states.info["identity"] == n_idx) & legal).any(-1)
        if not sel.any():
            continue
        obs = edit_observations(tools, log.obs[sel], roles, kind)
        P1 = attack_probabilities(policy, tools, obs, log.mask[sel], log.tick[sel], n_samples, seed + 1)
        info1 = tools.row_info(obs, identities)
        war1 = info1["war"] & legal[sel]
        keyed1 = (info1["identity"] == k_idx) & ~info1["war"] & legal[sel]
        ep = log.episode[sel]
        pw0 = per_episode((P0[sel, :N] * war0[sel]).sum(-1), ep, E)
        pw1 = per_episode((P1[:, :N] * war1).sum(-1), ep, E)
        pk1 = per_episode((P1[:, :N] * keyed1).sum(-1), ep, E)
        cnt = per_episode(np.ones(sel.sum()), ep, E)
        has_keyed = kind != "novel"
        out[kind] = StaticProbe(
            name=kind, description=describe_probe(kind, roles), n_states=int(sel.sum()),
            p_war_base=ratio_ci(pw0, cnt, n_boot, seed), p_war=ratio_ci(pw1, cnt, n_boot, seed),
            p_keyed=ratio_ci(pk1, cnt, n_boot, seed) if has_keyed else None,
            p_none_base=ratio_ci(per_episode(P0[sel, N], ep, E), cnt, n_boot, seed),
            p_none=ratio_ci(per_episode(P1[:, N], ep, E), cnt, n_boot, seed),
            retention=ratio_ci(pw1, pw0, n_boot, seed),
            identity_following=ratio_ci(pk1, pw0, n_boot, seed) if has_keyed else None,
        )
    return out, P0


def value_probe(policy, tools: ObsTools, roles: Roles, states: ProbeStates, n_boot: int = 2000,
                seed: int = 0) -> ValueProbe | None:
    """The critic's value of the same states with the enemy wearing the keyed identity,
    another identity, or with no enemy at all. None for policies without a critic."""
    log = states.log
    if critic_values(policy, log.obs[:1], log.mask[:1]) is None or len(log) == 0:
        return None
    E = log.n_episodes
    ep = log.episode
    cnt = per_episode(np.ones(len(log)), ep, E)
    V = {k: critic_values(policy, edit_observations(tools, log.obs, roles, k), log.mask) for k in VALUE_EDITS}
    values = {k: ratio_ci(per_episode(v, ep, E), cnt, n_boot, seed) for k, v in V.items()}
    den = per_episode(V["base"] - V["none"], ep, E)
    gap = {k: ratio_ci(per_episode(V[k] - V["none"], ep, E), den, n_boot, seed) for k in ("novel", "swap")}
    return ValueProbe(len(log), values, {k: describe_probe(k, roles) for k in VALUE_EDITS}, gap)
