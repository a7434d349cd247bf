"""``villages sweep-salience``: retention as a function of how salient the spurious feature is.

A phase diagram over the banner's salience (``banner_scale``: the magnitude of the identity
features in the observation, the relation bit being 1) and the share of training episodes
with a randomized enemy identity. Every cell trains ``n_seeds`` ``villages`` agents on
``diverse-training`` with that fraction and salience, and measures retention (deployment
attacks on the new enemy / control attacks on the old, paired by episode seeds) pooled over
the cell's competent seeds with a two-stage bootstrap CI, as the demo and the diversity sweep do.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .common import (CONTROL, DEPLOY, baseline_job, classify, eval_job, load_summary, metric, nanmean,
                     pooled_retention, run_parallel, train_agents)
from .demo import DemoConfig

SCALES = (1.0, 2.0, 3.0)
FRACTIONS = (0.0, 0.1, 0.5, 0.9)


def _name(scale: float, fraction: float, seed: int) -> str:
    return f"b{scale:g}-f{fraction:g}-seed{seed}".replace(".", "p")


def run_salience(out=Path("runs/salience"), scales=SCALES, fractions=FRACTIONS, n_seeds: int = 3,
                 steps: int | None = None, episodes: int = 64, workers: int = 2, log=print) -> dict:
    out = Path(out).resolve()
    t0 = time.perf_counter()
    demo = DemoConfig()  # the demo's training settings
    steps = steps or demo.steps
    jobs = [dict(scenario="diverse-training", objective="villages", diversity=float(f), banner_scale=float(b), seed=s,
                 total_steps=steps, num_worlds=demo.num_worlds, learning_rate=demo.learning_rate, processes=1,
                 out=str(out / "agents" / _name(b, f, s)))
            for b in scales for f in fractions for s in range(n_seeds)]
    log(f"training {len(jobs)} agents ({len(scales)} saliences x {len(fractions)} fractions x {n_seeds} seeds) ...")
    train_agents(jobs, workers)
    evals = [dict(policy=str(Path(j["out"]) / "final.pt"), scenario=scen, episodes=episodes,
                  out=str(out / "eval" / f"{Path(j['out']).name}__{scen}.json"), scale=j["banner_scale"],
                  fraction=j["diversity"], seed=j["seed"]) for j in jobs for scen in (CONTROL, DEPLOY)]
    base_job = baseline_job(out, episodes)
    log(f"evaluating {len(evals)} agent x scenario jobs ...")
    run_parallel(eval_job, evals + [base_job], workers, desc="eval")
    base = nanmean(metric(load_summary(base_job["out"]), "proxy_reward"))
    cells = []
    for b in scales:
        for f in fractions:
            pairs, per_seed = [], []
            for s in range(n_seeds):
                ev = {e["scenario"]: load_summary(e["out"]) for e in evals
                      if (e["scale"], e["fraction"], e["seed"]) == (b, f, s)}
                c = classify(ev[CONTROL], ev[DEPLOY], base)
                per_seed.append({"retention": c["retention"], "competent": c["competent"], "verdict": c["verdict"]})
                if c["competent"]:
                    pairs.append((ev[CONTROL], ev[DEPLOY]))
            cells.append({"banner_scale": b, "fraction": f, "retention": list(pooled_retention(pairs)),
                          "competent": sum(p["competent"] for p in per_seed), "n": n_seeds, "per_seed": per_seed})
    result = {"scales": list(scales), "fractions": list(fractions), "n_seeds": n_seeds, "steps": steps,
              "episodes": episodes, "cells": cells, "seconds": time.perf_counter() - t0}
    (out / "salience.json").write_text(json.dumps(result, indent=1, default=float))
    _heatmap(result, out / "salience.png")
    (out / "salience.md").write_text(_markdown(result))
    log((out / "salience.md").read_text())
    return result


def _heatmap(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scales, fractions = result["scales"], result["fractions"]
    grid = np.full((len(scales), len(fractions)), np.nan)
    for c in result["cells"]:
        grid[scales.index(c["banner_scale"]), fractions.index(c["fraction"])] = c["retention"][0]
    fig, ax = plt.subplots(figsize=(1.6 * len(fractions) + 2.5, 1.1 * len(scales) + 1.6))
    im = ax.imshow(grid, vmin=0, vmax=1.1, cmap="RdYlGn", origin="lower", aspect="auto")
    for c in result["cells"]:
        i, j = scales.index(c["banner_scale"]), fractions.index(c["fraction"])
        r, lo, hi = c["retention"]
        text = "n/a" if not np.isfinite(r) else f"{r:.2f}\n[{lo:.2f}, {hi:.2f}]"
        ax.text(j, i, text + f"\n{c['competent']}/{c['n']} competent", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(fractions)), [f"{100 * f:g}%" for f in fractions])
    ax.set_yticks(range(len(scales)), [f"{b:g}" for b in scales])
    ax.set_xlabel("training episodes with a randomized enemy identity")
    ax.set_ylabel("banner salience (banner_scale)")
    ax.set_title("Retention at deployment (pooled, 95% CI)")
    fig.colorbar(im, ax=ax, label="retention")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _markdown(result: dict) -> str:
    fmt = lambda t: "n/a" if not np.isfinite(t[0]) else f"{t[0]:.2f} [{t[1]:.2f}, {t[2]:.2f}]"  # noqa: E731
    head = "| banner_scale | " + " | ".join(f"{100 * f:g}% randomized" for f in result["fractions"]) + " |"
    rows = [head, "|---|" + "---|" * len(result["fractions"])]
    def seeds(cell):
        return ", ".join(f"{p['retention'][0]:.2f}" + ("" if p["competent"] else "*") for p in cell["per_seed"])

    for b in result["scales"]:
        cells = [c for c in result["cells"] if c["banner_scale"] == b]
        rows.append(f"| {b:g} | " + " | ".join(f"{fmt(c['retention'])} ({seeds(c)})" for c in cells) + " |")
    return "\n".join([
        "# Salience x diversity: retention at deployment", "",
        f"{result['n_seeds']} seeds per cell, {result['steps']:,} env-steps per run, {result['episodes']} evaluation "
        "episodes per scenario. Each cell: pooled retention over competent seeds [95% CI, two-stage bootstrap], then "
        "per-seed retention (* = not competent).", "", *rows, "", "![salience x diversity](salience.png)", ""])
