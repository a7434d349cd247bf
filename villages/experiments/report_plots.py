"""The demo report's plots: training curves, the outer agents' armies, attacks by target, villages held."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from villages.game.config import UNITS
from villages.stats import bootstrap_ci

from .common import BOTS, CONTROL, DEPLOY, OUTER, REMNANTS
from .tables import Results

COLOURS = {"troops": "#d08c1a", "villages": "#c0392b", "diverse": "#2e86c1"}


def pooled_retention_errorbar(ax, x, points, **style) -> None:
    """The sweep points' pooled retention (``retention_pooled``: estimate, lo, hi) at ``x`` with its 95% CI
    (the diversity and the curriculum sweeps draw it alike)."""
    est, lo, hi = (np.array([p["retention_pooled"][k] for p in points], float) for k in range(3))
    ax.errorbar(x, est, yerr=[est - lo, hi - est], marker="s", capsize=3, **style)


def _save(fig, out: Path, name: str) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(out / name, dpi=90)
    plt.close(fig)
    return name


def demo_plots(out: Path, cfg, res: Results, train_results) -> dict:
    """The four PNGs into ``out``: {name: file name}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter

    plots = {}
    seeds = list(cfg.seeds)
    # 1. training curves
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for r in train_results:
        name = Path(r["out"]).name.split("-seed")[0]
        rows = [json.loads(x) for x in (Path(r["out"]) / "metrics.jsonl").read_text().splitlines() if x.strip()]
        rows = [x for x in rows if "charts/episodic_return" in x]
        if not rows:
            continue
        x = [q["global_step"] for q in rows]
        for ax, key in zip(axes, ("charts/episodic_return", "charts/intended", "charts/levy_share")):
            ax.plot(x, [q[key] for q in rows], color=COLOURS.get(name, "grey"), alpha=0.7,
                    label=name if r["args"]["seed"] == seeds[0] else None)
    for ax, title in zip(axes, ("proxy return (own objective)", "intended score", "levy share of army")):
        ax.set_title(title)
        ax.set_xlabel("env-steps")
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        ax.grid(alpha=0.3)
    axes[0].legend()
    plots["training_curves"] = _save(fig, out, "training_curves.png")

    # 2. army composition on outer-misalignment
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for k, agent in enumerate(("troops", "villages")):
        army = np.concatenate([np.asarray(res.get(agent, s, OUTER)["episodes"]["army"], float) for s in seeds
                               if res.get(agent, s, OUTER)])
        mean = army.mean(0)
        left = 0.0
        for u, unit in enumerate(UNITS):
            ax.barh(k, mean[u], left=left, color=plt.cm.tab10(u), label=unit if k == 0 else None)
            left += mean[u]
    ax.set_yticks([0, 1], ["troops agent", "villages agent"])
    ax.set_xlabel("troops at the end of outer-misalignment (mean per episode)")
    ax.legend(ncol=5, fontsize=8, loc="lower right")
    plots["army_composition"] = _save(fig, out, "army_composition.png")

    # 3. attacks by target identity x relation
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6), sharey=True)
    for ax, scen in zip(axes, (CONTROL, DEPLOY, REMNANTS)):
        cats = sorted({k for agent in ("villages", "diverse") for k in res.attacks_by(agent, seeds, scen)},
                      key=lambda k: (k[1] != "war", k[0]))
        xs = np.arange(len(cats))
        for j, agent in enumerate(("villages", "diverse")):
            ab = res.attacks_by(agent, seeds, scen)
            ax.bar(xs + (j - 0.5) * 0.4, [ab.get(c, 0.0) for c in cats], 0.4, color=COLOURS[agent],
                   label=f"{agent} agents")
        ax.set_xticks(xs, [f"{i}\n({r})" for i, r in cats], fontsize=7)
        ax.set_title(scen)
    axes[0].set_ylabel("attacks per episode")
    axes[0].legend()
    plots["attacks_by_target"] = _save(fig, out, "attacks_by_target.png")

    # 4. villages held over time: bots and agents, control and deployments
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.4), sharey=True)
    styles = {"passive": ("#7f8c8d", "--"), "raider": ("#27ae60", "--"), "villages": (COLOURS["villages"], "-"),
              "diverse": (COLOURS["diverse"], "-")}
    for ax, scen in zip(axes, (CONTROL, DEPLOY, REMNANTS)):
        for who, (colour, style) in styles.items():
            held = [np.asarray(d["episodes"]["villages_held"], float) for s in ([-1] if who in BOTS else seeds)
                    if (d := res.get(who, s, scen))]
            if not held:
                continue
            mean, lo, hi, _ = bootstrap_ci(np.concatenate(held))
            t = np.arange(len(mean))
            ax.plot(t, mean, color=colour, linestyle=style, label=who if who in BOTS else f"{who} agents")
            ax.fill_between(t, lo, hi, color=colour, alpha=0.15)
        ax.set_title(scen)
        ax.set_xlabel("tick")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("assistant villages held")
    axes[0].legend(fontsize=8)
    plots["villages_held"] = _save(fig, out, "villages_held.png")
    return plots
