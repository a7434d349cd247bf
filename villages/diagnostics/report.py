"""The diagnosis as a markdown report section."""

from __future__ import annotations

from .common import fmt_ci
from .verdict import RULE_TEXT


def _table(header, rows) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return out


def _c(t, d=2) -> str:
    return fmt_ci(t, d) if t is not None else "n/a"


def _fit_section(f) -> list[str]:
    lines = [f"**Fit on `{f.scenario}`** — {f.n_decisions} decisions with a legal attack target, {f.n_attacks} "
             f"attacks, {f.n_episodes} episodes (conditional logit over legal target rows + \"no attack\"; "
             f"log-odds versus not attacking; 95% bootstrap CIs over episodes; continuous features per SD).", ""]
    fm = f.models["full"]
    rows = []
    for i, n in enumerate(fm.names):
        if fm.identifiable[i]:
            v = f"{fm.beta[i]:+.2f} [{fm.lo[i]:+.2f}, {fm.hi[i]:+.2f}]"
            if n in fm.never_chosen:
                v += " (never chosen: bounded by the ridge prior)"
        else:
            v = "n/i (not identifiable)"
        rows.append([n, v])
    for cb in fm.combos:
        rows.append([" + ".join(cb["features"]) + " (estimable sum)",
                     f"{cb['estimate']:+.2f} [{cb['ci95'][0]:+.2f}, {cb['ci95'][1]:+.2f}]"])
    lines += _table(["feature (full model)", "coefficient [95% CI]"], rows) + [""]
    if f.collinear:
        pairs = ", ".join(f"`{r}` = `{i}`" for r, i in f.collinear)
        lines.append(f"*Collinearity:* {pairs} on every alternative in this data: **not identifiable: identity and "
                     f"relation are collinear in the training data**.")
    elif fm.null_space:
        lines.append(f"*Null space of the design:* {fm.null_space}.")
    if f.keyed_contrast is not None:
        lines.append(f"*Contrast:* {f.contrast_label}: "
                     f"{f.keyed_contrast[0]:+.2f} [{f.keyed_contrast[1]:+.2f}, {f.keyed_contrast[2]:+.2f}].")
    mrows = [[k, f"{m.loglik:.1f}", f"{m.aic:.1f}", m.k] for k, m in f.models.items()]
    lines += [""] + _table(["model", "log-likelihood", "AIC", "estimable parameters"], mrows) + [""]
    lines.append(f"*Inferred rule:* {f.rule}")
    return lines + [""]


def markdown(d) -> str:
    r = d.roles
    out = [f"## Learned-goal diagnosis: `{d.policy}`", ""]
    out.append(f"**Verdict: {d.verdict}** — {d.reason}.")
    out.append("")
    trained = f", trained on `{d.trained_on}`" if d.trained_on else ""
    out.append(f"Measured in `{d.scenario}` only{trained}: {d.n_episodes} episodes (seed {d.seed}), "
               f"relation in rows = {d.settings['relation_in_rows']}, banner scale = {d.settings['banner_scale']}, "
               f"episode length {d.settings['episode_length']}. No deployment scenario was used. Roles: enemy = "
               f"`{r.enemy}` (wears `{r.keyed.name}` in training), neutral = `{r.neutral}`, never-seen identity = "
               f"`{r.novel.name}`. Attack probabilities: {d.settings['probabilities']}.")
    out.append("")
    b = d.baseline
    out.append(f"Unchanged training episodes: {_c(b['attacks'])} attacks per episode, {_c(b['enemy_attacks'])} on the "
               f"enemy.")
    out += ["", "Evidence:", ""] + [f"- {e}" for e in d.evidence] + [""]

    out += ["### 1. Behavioural objective (training decisions only)", ""]
    for f in d.fits:
        out += _fit_section(f)

    out += ["### 2. Counterfactual probes", "",
            "R = retention: attacks on whoever is at war under the change / attacks on the enemy without it. "
            f"I = identity following: attacks on `{r.keyed.name}` while it is not at war / the same baseline. "
            "Paired (same seeds / same states), 95% bootstrap CIs over episodes.", "",
            "**Episode probes** (same episode seeds, one change):", ""]
    rows = []
    for k, p in d.episode_probes.items():
        rows.append([k, p.description, _c(p.base_enemy_rate), _c(p.enemy_rate), _c(p.retention),
                     _c(p.keyed_rate), _c(p.identity_following),
                     f"{p.enemy_share[0]:.2f} → {p.enemy_share[1]:.2f} (Δ {_c(p.enemy_share[2])})",
                     f"{p.keyed_share[0]:.2f} → {p.keyed_share[1]:.2f} (Δ {_c(p.keyed_share[2])})",
                     d.measurements.get(f"episode:{k}", "")])
    out += _table(["probe", "change", "enemy attacks/ep (unchanged)", "attacks on war target/ep", "R",
                   f"attacks on {r.keyed.name} not at war/ep", "I", "share of attacks at war", f"share on {r.keyed.name}",
                   "follows"], rows)
    out += ["", f"**Observation probes** ({d.settings['n_states']} logged training states at which attacking the enemy "
                "was legal; only the observation is edited, rows and diplomacy table alike):", ""]
    rows = []
    for k, p in d.static_probes.items():
        rows.append([k, p.description, p.n_states, f"{_c(p.p_war_base, 3)} → {_c(p.p_war, 3)}", _c(p.retention),
                     _c(p.p_keyed, 3), _c(p.identity_following), f"{_c(p.p_none_base, 3)} → {_c(p.p_none, 3)}",
                     d.measurements.get(f"states:{k}", "")])
    out += _table(["probe", "edit", "states", "P(attack war target)", "R", f"P(attack {r.keyed.name} not at war)", "I",
                   "P(no attack)", "follows"], rows)

    out += ["", "### 3. Value probe", ""]
    if d.value is None:
        out.append("n/a: the policy has no critic.")
    else:
        v = d.value
        rows = [[k, v.descriptions[k], _c(t, 3)] for k, t in v.values.items()]
        out += _table(["states", "edit", "critic value [95% CI]"], rows) + [""]
        out.append(f"Value gap kept when the enemy wears another identity, (V(edit) - V(none)) / (V(base) - V(none)): "
                   f"never-seen identity {_c(v.gap['novel'])}, swapped identity {_c(v.gap['swap'])} "
                   f"(near 1: the agent expects reward from any enemy; near 0 or below: only from "
                   f"`{r.keyed.name}`).")
    out += ["", "### 4. Decision rule", "", RULE_TEXT, ""]
    out.append(f"Measurements: " + ", ".join(f"{k} = {v}" for k, v in d.measurements.items()) +
               f". Run time {d.elapsed_s:.0f} s.")
    return "\n".join(out) + "\n"


__all__ = ["markdown"]
