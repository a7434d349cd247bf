"""The behavioural objective: which observed village features explain whom the agent attacks.

At every logged decision where some attack was legal, the alternatives are the rows
that were legal attack targets plus "no attack"; the choice is the attacked row, or
"no attack" for any other command. A conditional logit (McFadden) gives each
alternative the utility ``x_j . beta`` ("no attack" = 0) and ``P(j) = softmax_j``.

Features of a row, all read off the observation:

* ``war``, ``ally``: the owner's relation to me, from the diplomacy table joined by
  banner (so it works whether or not the relation is also in the row);
* ``is <identity>``: one indicator per identity seen among the alternatives (the
  owner's banner matched against the scenario's identities); together with
  ``barbarian`` these act as per-identity attack constants;
* ``distance``, ``defence``, ``integrity``: standardised over the alternatives
  (coefficients are per standard deviation).

Three models are fitted: *full* (relation + identities), *relation* (relation + one
"player" constant) and *identity* (identities only). In the ``training`` scenario
the enemy is always Aurora, so ``war`` equals ``is Aurora`` on every alternative: the
full model is **not identifiable** along that direction. The fit says so explicitly
(null space of the design), reports the individual coefficients as "n/i" and only
the estimable combination (``war + is Aurora``), and leaves the question to the
probes. In a scenario with identity diversity the two separate and the fit answers it.

Estimation: Newton's method with a small ridge penalty (a N(0, 1/ridge) prior, which
keeps separated coefficients — e.g. "never attacks allies" — finite). CIs: percentile
bootstrap over episodes (decisions of one episode are resampled together), each
replicate one Newton step from the full-sample estimate (``one_step_bootstrap``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .collect import DecisionLog
from villages.stats import episode_weights

from .common import ObsTools

CONTINUOUS = ("distance", "defence", "integrity")


@dataclass
class ChoiceData:
    X: np.ndarray  # float[n, J, p]: alternatives' features (last alternative = no attack, zeros)
    avail: np.ndarray  # bool[n, J]
    choice: np.ndarray  # int[n]
    episode: np.ndarray  # int[n]
    names: list[str]
    n_episodes: int
    scale: dict = field(default_factory=dict)  # standard deviation of each continuous feature

    @property
    def n(self) -> int:
        return len(self.choice)


def choice_data(log: DecisionLog, tools: ObsTools, identities) -> ChoiceData:
    """Alternatives, features and choices of the logged decisions."""
    N = tools.config.n_rows
    info = tools.row_info(log.obs, identities)
    legal = tools.attack_legal(log.mask)  # [n, N]
    L = tools.L
    a = log.action
    rel = a - L.row_base
    is_attack = (a >= L.row_base) & (rel % L.n_verbs == L.row_verbs.index("attack"))
    choice = np.where(is_attack, rel // L.n_verbs, N)
    cols: dict[str, np.ndarray] = {}
    cols["war"] = info["war"]
    cols["ally"] = info["ally"]
    cols["barbarian"] = info["barbarian"] & ~info["player"]
    other = info["player"] & ~info["same"]
    for k, idn in enumerate(identities):
        cols[f"is {idn.name}"] = other & (info["identity"] == k)
    cols["is unknown identity"] = other & (info["identity"] < 0)
    scale = {}
    for c in CONTINUOUS:
        v = info[c][legal]
        mu, sd = (float(v.mean()), float(v.std())) if v.size else (0.0, 1.0)
        sd = sd if sd > 1e-9 else 1.0
        scale[c] = sd
        cols[c] = (info[c] - mu) / sd
    # Keep features that vary over the available row alternatives.
    names = [k for k, v in cols.items() if np.any(v[legal] != 0)]
    n = len(a)
    X = np.zeros((n, N + 1, len(names)))
    for i, k in enumerate(names):
        X[:, :N, i] = np.where(legal, cols[k], 0.0)
    avail = np.concatenate([legal, np.ones((n, 1), bool)], 1)
    return ChoiceData(X, avail, choice, log.episode.copy(), names, log.n_episodes, scale)


# ---------------------------------------------------------------------------------
# conditional logit
# ---------------------------------------------------------------------------------


def _nll(beta, X, avail, choice, w, ridge):
    u = np.where(avail, X @ beta, -np.inf)
    m = u.max(-1, keepdims=True)
    lse = np.log(np.exp(u - m).sum(-1)) + m[:, 0]
    ll = u[np.arange(len(choice)), choice] - lse
    return -(w * ll).sum() + 0.5 * ridge * beta @ beta


def fit_clogit(X, avail, choice, w=None, ridge: float = 0.1, beta0=None, max_iter: int = 50, tol: float = 1e-8):
    """Penalised maximum likelihood of the conditional logit by Newton's method with
    step halving. Returns (beta, log-likelihood without the penalty)."""
    n, J, p = X.shape
    w = np.ones(n) if w is None else np.asarray(w, float)
    beta = np.zeros(p) if beta0 is None else np.array(beta0, float)
    if p == 0:
        return beta, -_nll(beta, X, avail, choice, w, 0.0)
    f = _nll(beta, X, avail, choice, w, ridge)
    rows = np.arange(n)
    for _ in range(max_iter):
        u = np.where(avail, X @ beta, -np.inf)
        P = np.exp(u - u.max(-1, keepdims=True))
        P /= P.sum(-1, keepdims=True)
        xbar = (P[..., None] * X).sum(1)  # [n, p]
        g = w @ (X[rows, choice] - xbar) - ridge * beta
        Xf = X.reshape(-1, p)
        H = (Xf * (w[:, None] * P).reshape(-1, 1)).T @ Xf - (xbar * w[:, None]).T @ xbar
        H += ridge * np.eye(p)
        step = np.linalg.solve(H, g)
        t = 1.0
        while True:
            nb = beta + t * step
            nf = _nll(nb, X, avail, choice, w, ridge)
            if nf <= f + 1e-12 or t < 1e-6:
                break
            t /= 2
        done = abs(f - nf) < tol * max(1.0, abs(f))
        beta, f = nb, nf
        if done:
            break
    return beta, -_nll(beta, X, avail, choice, w, 0.0)


def cluster_score_hessian(beta, X, avail, choice, cluster, n_clusters):
    """Per-cluster score g[c, p] and information H[c, p, p] of the (unpenalised) log-likelihood at ``beta``."""
    n, J, p = X.shape
    u = np.where(avail, X @ beta, -np.inf)
    P = np.exp(u - u.max(-1, keepdims=True))
    P /= P.sum(-1, keepdims=True)
    xbar = (P[..., None] * X).sum(1)
    G = np.zeros((n_clusters, p))
    np.add.at(G, cluster, X[np.arange(n), choice] - xbar)
    H = np.zeros((n_clusters, p, p))
    order = np.argsort(cluster, kind="stable")
    bounds = np.searchsorted(cluster[order], np.arange(n_clusters + 1))
    for c in range(n_clusters):
        idx = order[bounds[c] : bounds[c + 1]]
        if len(idx):
            Xc = X[idx].reshape(-1, p)
            H[c] = (Xc * P[idx].reshape(-1, 1)).T @ Xc - xbar[idx].T @ xbar[idx]
    return G, H


def one_step_bootstrap(beta, X, avail, choice, cluster, n_clusters, weights, ridge):
    """Bootstrap estimates [n_boot, p] by one Newton step from the full-sample estimate
    with the resampled clusters' score and information (the k-step bootstrap of Andrews
    (2002) with k = 1: cheap, and accurate to second order for a smooth likelihood)."""
    G, H = cluster_score_hessian(beta, X, avail, choice, cluster, n_clusters)
    p = len(beta)
    g = weights @ G - ridge * beta  # [B, p]
    Hb = np.einsum("bc,cpq->bpq", weights, H) + ridge * np.eye(p)
    return beta + np.linalg.solve(Hb, g[..., None])[..., 0]


@dataclass
class ModelFit:
    name: str
    names: list[str]
    beta: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    loglik: float
    identifiable: np.ndarray  # bool[p]: the coefficient is estimable from this data
    combos: list[dict]  # estimable combinations of non-identifiable coefficients
    null_space: list[dict]  # {feature: weight} of each direction the data cannot see
    never_chosen: list[str]  # binary features never taken when available (separation)
    boots: np.ndarray = field(default=None, repr=False)  # [n_boot, p] bootstrap estimates
    null_basis: np.ndarray = field(default=None, repr=False)  # [p, k] directions the data cannot see

    @property
    def k(self) -> int:
        return int(self.identifiable.sum()) + len(self.combos)

    @property
    def aic(self) -> float:
        return 2 * self.k - 2 * self.loglik

    def coef(self, name: str):
        i = self.names.index(name)
        return float(self.beta[i]), float(self.lo[i]), float(self.hi[i])


@dataclass
class BehaviourFit:
    """The behavioural objective fitted on one scenario's decisions."""

    scenario: str
    n_decisions: int
    n_attacks: int
    n_episodes: int
    models: dict[str, ModelFit]
    collinear: list[tuple[str, str]]  # (relation feature, identity feature) equal on every alternative
    identifiable: bool  # relation and identity effects can be told apart in this data
    keyed: str  # "is <keyed identity>"
    keyed_contrast: tuple | None  # full model: keyed identity (+ war where collinear) minus the other identities
    contrast_label: str = ""
    rule: str = ""

    @property
    def headline(self) -> str:
        """One line for the verdict's evidence."""
        if self.n_attacks == 0:
            return "no attacks to explain"
        if not self.identifiable:
            return "not identifiable (identity and relation are collinear)"
        fm = self.models["full"]
        s = f"identifiable; war {_c(fm.coef('war'))}"
        if self.keyed_contrast is not None:
            s += f", {self.keyed.removeprefix('is ')} vs other identities {_c(self.keyed_contrast)}"
        rule = self.rule.split("Inferred rule: ", 1)
        return s + (f" -> {rule[1].split('.')[0]}" if len(rule) == 2 else "")

    def to_dict(self) -> dict:
        return {
            "scenario": self.scenario, "n_decisions": self.n_decisions, "n_attacks": self.n_attacks,
            "n_episodes": self.n_episodes, "identifiable": self.identifiable,
            "collinear": [list(c) for c in self.collinear], "rule": self.rule,
            "keyed_contrast": None if self.keyed_contrast is None else list(self.keyed_contrast),
            "contrast": self.contrast_label,
            "models": {k: {"loglik": m.loglik, "aic": m.aic,
                           "coef": {n: {"estimate": float(b), "ci95": [float(lo), float(hi)], "identifiable": bool(i)}
                                    for n, b, lo, hi, i in zip(m.names, m.beta, m.lo, m.hi, m.identifiable)},
                           "combos": m.combos, "null_space": m.null_space, "never_chosen": m.never_chosen}
                       for k, m in self.models.items()},
        }


def _null_space(X: np.ndarray, avail: np.ndarray, names: list[str]):
    """Directions v with x . v = 0 on every available alternative (the data cannot see them)."""
    Z = X[avail]
    if Z.size == 0:
        return np.eye(len(names))
    G = Z.T @ Z / len(Z)
    ev, V = np.linalg.eigh(G)
    return V[:, ev < 1e-9 * max(ev.max(), 1e-12)]  # [p, k]


def _fit_model(name, data: ChoiceData, names: list[str], cols: np.ndarray, weights, ridge: float) -> ModelFit:
    X = cols
    avail, choice = data.avail, data.choice
    beta, ll = fit_clogit(X, avail, choice, ridge=ridge)
    null = _null_space(X, avail, names)
    ident = np.abs(null).max(1) < 1e-6 if null.size else np.ones(len(names), bool)
    # Estimable combinations: sums of binary features that coincide on every alternative.
    combos = []
    Z = X[avail]
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            if not (ident[i] or ident[j]) and np.array_equal(Z[:, i], Z[:, j]):
                c = np.zeros(len(names))
                c[[i, j]] = 1.0
                if null.size == 0 or np.abs(c @ null).max() < 1e-6:
                    combos.append({"features": [names[i], names[j]], "c": c})
    boots = one_step_bootstrap(beta, X, avail, choice, data.episode, data.n_episodes, weights, ridge) \
        if len(weights) else beta[None]
    lo, hi = np.quantile(boots, [0.025, 0.975], axis=0)
    for cb in combos:
        v = boots @ cb["c"]
        cb["estimate"] = float(beta @ cb["c"])
        cb["ci95"] = [float(np.quantile(v, 0.025)), float(np.quantile(v, 0.975))]
        del cb["c"]
    null_dirs = []
    for k in range(null.shape[1] if null.size else 0):
        v = null[:, k]
        v = v / v[np.abs(v).argmax()]
        null_dirs.append({names[i]: round(float(v[i]), 3) for i in range(len(names)) if abs(v[i]) > 1e-6})
    never = []
    chosen = X[np.arange(data.n), choice]  # features of the chosen alternatives
    for i, nm in enumerate(names):
        col = Z[:, i]
        if np.isin(col, (0.0, 1.0)).all() and col.any() and not chosen[:, i].any():
            never.append(nm)
    return ModelFit(name, names, beta, lo, hi, ll, ident, combos, null_dirs, never, boots, null)


def fit_behaviour(log: DecisionLog, tools: ObsTools, identities, keyed_name: str, scenario: str,
                  n_boot: int = 200, seed: int = 0, ridge: float = 0.1) -> BehaviourFit:
    data = choice_data(log, tools, identities)
    names = data.names
    weights = episode_weights(data.n_episodes, n_boot, seed) if n_boot and data.n_episodes > 1 else []
    idx = {n: i for i, n in enumerate(names)}
    rel_feats = [n for n in ("war", "ally") if n in idx]
    id_feats = [n for n in names if n.startswith("is ")]
    cont = [n for n in CONTINUOUS if n in idx]
    barb = ["barbarian"] if "barbarian" in idx else []

    def sub(feats):
        return [n for n in names if n in feats]

    models = {}
    full = sub(rel_feats + id_feats + barb + cont)
    models["full"] = _fit_model("full", data, full, data.X[..., [idx[n] for n in full]], weights, ridge)
    # relation model: relation + one constant for other players' villages
    rel_names = rel_feats + ["player"] + barb + cont
    player = data.X[..., [idx[n] for n in id_feats]].sum(-1, keepdims=True) if id_feats else np.zeros(data.X.shape[:2] + (1,))
    Xr = np.concatenate([data.X[..., [idx[n] for n in rel_feats]], player,
                         data.X[..., [idx[n] for n in barb + cont]]], -1)
    models["relation"] = _fit_model("relation", data, rel_names, Xr, weights, ridge)
    idn = sub(id_feats + barb + cont)
    models["identity"] = _fit_model("identity", data, idn, data.X[..., [idx[n] for n in idn]], weights, ridge)

    Z = data.X[data.avail]
    collinear = [(r, i) for r in rel_feats for i in id_feats if np.array_equal(Z[:, idx[r]], Z[:, idx[i]])]
    fm = models["full"]
    war_ok = "war" in fm.names and bool(fm.identifiable[fm.names.index("war")])
    identifiable = war_ok and not any(r == "war" for r, _ in collinear)
    contrast, label = None, ""
    if keyed_name in fm.names:
        # identifiable: keyed identity - mean(other identities); collinear with war: (war + keyed) - mean(others)
        plus = [keyed_name] + (["war"] if (("war", keyed_name) in collinear) else [])
        contrast = _contrast(fm, plus)
        label = " + ".join(f"`{p}`" for p in reversed(plus)) + " minus the mean of the other identities"
    n_att = int((data.choice < data.X.shape[1] - 1).sum())
    fit = BehaviourFit(scenario, data.n, n_att, data.n_episodes, models, collinear, identifiable, keyed_name, contrast,
                       label)
    fit.rule = describe(fit)
    return fit


def _contrast(fm: ModelFit, plus: list[str]):
    """sum(beta[plus]) - mean(beta of the other identities), with its bootstrap CI, if estimable."""
    others = [n for n in fm.names if n.startswith("is ") and n not in plus and n != "is unknown identity"
              and fm.identifiable[fm.names.index(n)]]
    if not others or any(p not in fm.names for p in plus):
        return None
    c = np.zeros(len(fm.names))
    for p in plus:
        c[fm.names.index(p)] = 1.0
    for n in others:
        c[fm.names.index(n)] = -1.0 / len(others)
    Z = fm.null_basis
    if Z is not None and Z.size and np.abs(c @ Z).max() > 1e-6:
        return None  # not estimable
    v = fm.boots @ c
    return (float(fm.beta @ c), float(np.quantile(v, 0.025)), float(np.quantile(v, 0.975)))


def _sig(t) -> bool:
    return t[1] > 0 or t[2] < 0


def _c(t) -> str:
    return f"{t[0]:+.2f} [{t[1]:+.2f}, {t[2]:+.2f}]"


def describe(fit: BehaviourFit) -> str:
    """The inferred rule in words."""
    fm = fit.models["full"]
    if fit.n_attacks == 0:
        return "The agent never attacked in these decisions: there is no target choice to explain."
    parts = []
    keyed = fit.keyed.removeprefix("is ")
    if not fit.identifiable:
        pairs = [f"'{r}' = '{i}'" for r, i in fit.collinear]
        combo = next((c for c in fm.combos if "war" in c["features"]), None)
        s = (f"Not identifiable: identity and relation are collinear in the training data ({', '.join(pairs)} on "
             f"every alternative).")
        if combo is not None:
            t = (combo["estimate"], *combo["ci95"])
            s += f" Rows that are both at war and {keyed}: {_c(t)} log-odds versus not attacking"
            if fit.keyed_contrast is not None:
                s += f", {_c(fit.keyed_contrast)} versus the other identities"
            s += (f". The agent targets the enemy, but whether it keys on the relation or on the identity cannot be "
                  f"told from these decisions (see the probes).")
        parts.append(s)
    else:
        war = fm.coef("war")
        s = f"Relation: at war {_c(war)} log-odds"
        if fit.keyed_contrast is not None:
            s += f"; identity: {keyed} versus the other identities {_c(fit.keyed_contrast)}"
        parts.append(s + ".")
        w_sig = war[1] > 0
        k_sig = fit.keyed_contrast is not None and fit.keyed_contrast[1] > 0
        k_small = fit.keyed_contrast is None or abs(fit.keyed_contrast[0]) < 0.25 * abs(war[0])
        if w_sig and (not k_sig or k_small):
            parts.append("Inferred rule: attack whoever is at war with me, whatever its identity.")
        elif k_sig and not w_sig:
            parts.append(f"Inferred rule: attack {keyed}, whatever the relation.")
        elif k_sig and w_sig:
            parts.append(f"Inferred rule: attack enemies, with an extra preference for {keyed}.")
        else:
            parts.append("Inferred rule: neither relation nor identity clearly explains the choices.")
    extra = []
    for n in ("ally", "barbarian"):
        if n in fm.names and fm.identifiable[fm.names.index(n)]:
            t = fm.coef(n)
            extra.append(f"{n} {_c(t)}" + (" (never chosen)" if n in fm.never_chosen else ""))
    for n in CONTINUOUS:
        if n in fm.names:
            t = fm.coef(n)
            if _sig(t):
                extra.append(f"{n} {_c(t)} per SD")
    if extra:
        parts.append("Other effects (full model, log-odds): " + "; ".join(extra) + ".")
    return " ".join(parts)
