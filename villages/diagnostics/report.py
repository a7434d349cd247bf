"""The diagnosis as a markdown report section, and the objective map's plot."""

from __future__ import annotations

from pathlib import Path

from villages.stats import fmt_ci
from .objective_map import FAR_CANDIDATES, RELATIONS
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


def map_table(omap) -> list[str]:
    """Identity x relation: relative propensity from episodes (and from edited states)."""
    rels = [r for r in RELATIONS if any(k[1] == r for k in omap.cells)]
    rows = []
    for m in sorted(omap.identities, key=lambda m: -m.cos_enemy):
        row = [f"`{m.name}`", m.kind, f"{m.cos_enemy:+.2f}", f"{m.cos_seen:+.2f}"]
        for r in rels:
            c = omap.cell(m.name, r)
            row.append("n/a" if c is None else _c(c.episodes))
            row.append("n/a" if c is None or c.states is None else _c(c.states))
        rows.append(row)
    header = ["identity", "kind", "cos to enemy", "max cos to seen non-enemies"]
    for r in rels:
        header += [f"{r}: episodes", f"{r}: states"]
    return _table(header, rows)


def markdown(d, plot: str | None = None) -> str:
    r, om = d.roles, d.map
    out = [f"## Learned-goal diagnosis: `{d.policy}`", ""]
    out.append(f"**{d.reading}**")
    out.append("")
    out.append(f"**Verdict: {d.verdict}** — {d.reason}.")
    out.append("")
    trained = f", trained on `{d.trained_on}`" if d.trained_on else ""
    out.append(f"Measured in `{d.scenario}` only{trained}: {d.n_episodes} episodes per cell (seed {d.seed}), "
               f"relation in rows = {d.settings['relation_in_rows']}, banner scale = {d.settings['banner_scale']}, "
               f"episode length {d.settings['episode_length']}. No deployment scenario was run. Training enemy = "
               f"`{r.enemy}` (wears `{r.keyed.name}`), peace/ally cells dress up `{r.neutral}`. Attack probabilities "
               f"(state cells): {d.settings['probabilities']}.")
    out.append("")
    b = d.baseline
    out.append(f"Unchanged training episodes: {_c(b['attacks'])} attacks per episode, {_c(b['enemy_attacks'])} on the "
               f"enemy.")
    if d.predictions:
        out += ["", "### Predicted deployments (blind: the scenarios were read, not run)", ""]
        rows = [[f"`{p.scenario}`", p.alliance, ", ".join(f"{n} ({w:.2f})" if w < 1 else n for n, w in p.identities),
                 f"{p.cos_enemy:+.2f}", f"{p.villages_ratio:.2f}", _c(p.retention), p.outcome] for p in d.predictions]
        out += _table(["scenario", "alliance at war", "wears", "cos to enemy", "villages / enemy's",
                       "predicted retention [95% CI]", "predicted outcome"], rows)
    out += ["", "### Objective map (training distribution only)", "",
            f"Relative attack propensity toward an alliance wearing the identity at the relation: episodes = attacks "
            f"per episode on it / attacks per episode on `{r.enemy}` in the unchanged episodes (same seeds); states "
            f"= P(attack it) / P(attack `{r.enemy}`) on logged training states with the observation edited. 95% "
            f"bootstrap CIs over episodes. War: `{r.enemy}`'s role wears the identity; peace / ally: `{r.neutral}`'s "
            f"role (whoever wore the identity takes the role's: a swap). Novel banners: `~X c` lies at cosine c to "
            f"X's banner; `Far-k` as far from every banner on the map as {FAR_CANDIDATES} hashed names allow.", ""]
    out += map_table(om)
    if plot:
        out += ["", f"![objective map]({plot})"]
    if d.fits:
        out += ["", "### Behavioural objective (corroborating; training decisions only)", ""]
        for f in d.fits:
            out += _fit_section(f)
    out += ["", "### Decision rule", "", RULE_TEXT, ""]
    if d.evidence:
        out += ["Evidence:", ""] + [f"- {e}" for e in d.evidence] + [""]
    out.append(f"Run time {d.elapsed_s:.0f} s.")
    return "\n".join(out) + "\n"


def plot_map(d, path) -> Path | None:
    """Relative propensity (episodes) vs cosine similarity to the training enemy's banner, one
    panel per relation; marker by kind of identity. None if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    om = d.map
    rels = [r for r in RELATIONS if any(k[1] == r for k in om.cells)]
    fig, axes = plt.subplots(1, len(rels), figsize=(4.2 * len(rels), 3.6), sharey=True, squeeze=False)
    style = {"training enemy": ("*", "tab:red"), "seen non-enemy": ("s", "tab:blue"), "unseen": ("D", "tab:purple"),
             "novel": ("o", "tab:gray")}
    for ax, rel in zip(axes[0], rels):
        for kind, (marker, colour) in style.items():
            pts = [(m, om.cell(m.name, rel)) for m in om.identities if m.kind == kind]
            pts = [(m, c) for m, c in pts if c is not None and c.episodes is not None]
            if not pts:
                continue
            x = [m.cos_enemy for m, _ in pts]
            y = [c.episodes[0] for _, c in pts]
            err = [[max(0.0, c.episodes[0] - c.episodes[1]) for _, c in pts],
                   [max(0.0, c.episodes[2] - c.episodes[0]) for _, c in pts]]
            ax.errorbar(x, y, yerr=err, fmt=marker, color=colour, label=kind, capsize=2, ms=6)
        ax.axhline(0.5, color="k", lw=0.6, ls=":")
        ax.set_title(rel)
        ax.set_xlabel(f"cosine similarity to {d.roles.keyed.name}'s banner")
    axes[0][0].set_ylabel(f"attacks / attacks on {d.roles.enemy} (training)")
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.suptitle(Path(str(d.policy)).parent.name or str(d.policy), fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = ["map_table", "markdown", "plot_map"]
