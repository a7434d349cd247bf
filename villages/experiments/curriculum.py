"""``villages sweep-curriculum``: does a regret- or learnability-based curriculum beat domain
randomization when disambiguating levels are rare?

For each curriculum (``dr``, ``plr``, ``sfl``: ``villages.train.levels``), each disambiguating
budget (the share of newly generated training levels whose enemy wears another identity than
Aurora's) and each seed, train a ``villages`` agent on ``diverse-training`` levels with the same
env-steps, then measure as the diversity sweep does: retention at deployment (graded, paired,
pooled over competent seeds with CIs), in-distribution performance per identity on its own
training world, and the verdicts with their thresholds. The question is Abdel Sadek et al.'s
(RLC 2025) and Rutherford et al.'s (NeurIPS 2024) in a multi-agent strategy game; the page
reports what comes out, whichever method wins.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .common import (DEPLOY, RETENTION_THRESHOLD, agent_eval_jobs, baseline_job, deployment_enemies, enemy_role,
                     eval_job, load_summary, metric, nanmean, run_parallel, summarize_point, train_job)
from .demo import DemoConfig
from .report_plots import pooled_retention_errorbar

METHODS = ("dr", "plr", "sfl")
BUDGETS = (0.01, 0.05, 0.1, 0.25)
SCENARIO = "diverse-training"  # its [diversity] role and pool say which identities a level may dress the enemy in


def _tag(method: str, budget: float, seed: int) -> str:
    return f"{method}-b{budget:g}-seed{seed}".replace(".", "p")


def run_curriculum_sweep(out=Path("runs/curriculum"), methods=METHODS, budgets=BUDGETS, n_seeds: int = 5,
                         backend: str = "local", address=None, steps: int | None = None, episodes: int = 64,
                         workers: int = 2, log=print) -> dict:
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    demo = DemoConfig()  # the demo's training settings
    steps = steps or demo.steps
    t0 = time.perf_counter()
    jobs = [dict(scenario=SCENARIO, objective="villages", curriculum=m, level_budget=float(b), seed=s,
                 total_steps=steps, num_worlds=demo.num_worlds, learning_rate=demo.learning_rate, processes=1,
                 out=str(out / "agents" / _tag(m, b, s)))
            for m in methods for b in budgets for s in range(n_seeds)]
    log(f"training {len(jobs)} agents ({len(methods)} curricula x {len(budgets)} budgets x {n_seeds} seeds, "
        f"{steps:,} env-steps each) ...")
    if backend == "ray":
        from .ray_sweep import run_grid_on_ray

        results = run_grid_on_ray([{k: v for k, v in j.items() if k != "out"} for j in jobs], out / "agents",
                                  address=address, names=[Path(j["out"]).name for j in jobs])
        failed = [r for r in results if r.get("error")]
        if failed:
            raise RuntimeError(f"{len(failed)} of {len(results)} Ray trials failed; first: {failed[0]['name']}: "
                               f"{failed[0]['error']}")
    elif backend == "local":  # (the population trainer plays scenarios' own distributions: one run per agent)
        run_parallel(train_job, jobs, workers, desc="train")
    else:
        raise ValueError(f"backend must be 'local' or 'ray', got {backend!r}")

    evals = [e for j in jobs for e in agent_eval_jobs(j["out"], out, episodes, method=j["curriculum"],
                                                      budget=j["level_budget"], seed=j["seed"])]
    base_job = baseline_job(out, episodes)
    log(f"evaluating {len(evals)} agent x scenario jobs ...")
    run_parallel(eval_job, evals + [base_job], workers, desc="eval")
    base = nanmean(metric(load_summary(base_job["out"]), "proxy_reward"))
    from villages.scenarios import load

    spec = load(SCENARIO)
    role, enemies, support = enemy_role(spec), deployment_enemies(DEPLOY), set(spec.diversity.pool)
    points = []
    for m in methods:
        for b in budgets:
            per_seed = [{e.get("key_scenario", e["scenario"]): load_summary(e["out"]) for e in evals
                         if (e["method"], e["budget"], e["seed"]) == (m, b, s)} for s in range(n_seeds)]
            played = []
            for s in range(n_seeds):
                rows = (out / "agents" / _tag(m, b, s) / "metrics.jsonl").read_text().splitlines()
                played.append(json.loads(rows[-1]).get("levels/played_disambiguating"))
            points.append({"method": m, "budget": b, "played_disambiguating": played,
                           **summarize_point(per_seed, base, role, support, enemies)})
    result = {"methods": list(methods), "budgets": list(budgets), "n_seeds": n_seeds, "steps": steps,
              "episodes": episodes, "threshold": RETENTION_THRESHOLD, "points": points,
              "seconds": time.perf_counter() - t0}
    (out / "curriculum.json").write_text(json.dumps(result, indent=1, default=float))
    _plot(result, out / "curriculum.png")
    _markdown(result, out / "curriculum.md")
    log((out / "curriculum.md").read_text())
    return result


COLOURS = {"dr": "#2c3e50", "plr": "#c0392b", "sfl": "#27ae60"}


def _plot(result, path):
    """Retention at deployment vs the disambiguating budget, one line per curriculum (pooled, 95% CI)
    with its per-seed points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    budgets = result["budgets"]
    x = np.arange(len(budgets))
    fig, ax = plt.subplots(figsize=(7.5, 4))
    shift = {m: (k - (len(result["methods"]) - 1) / 2) * 0.12 for k, m in enumerate(result["methods"])}
    for m in result["methods"]:
        pts = [p for p in result["points"] if p["method"] == m]
        pooled_retention_errorbar(ax, x + shift[m], pts, color=COLOURS.get(m), label=f"{m} (pooled, competent seeds)")
        for i, p in enumerate(pts):
            r = [c["retention"][0] for c in p["per_seed"]]
            ax.scatter(np.full(len(r), i + shift[m]), r, s=10, color=COLOURS.get(m), alpha=0.45, zorder=3)
    ax.axhline(result["threshold"], color="grey", linestyle=":", label=f"verdict threshold {result['threshold']:g}")
    ax.set_xticks(x, [f"{100 * b:g}%" for b in budgets])
    ax.set_xlabel("disambiguating budget (share of generated levels whose enemy is not Aurora)")
    ax.set_ylabel("retention at deployment")
    ax.set_title("Curricula at the same env-steps and disambiguating budget")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _markdown(result, path):
    from villages.stats import fmt_ci

    rows = ["| curriculum | budget | retention, pooled [95% CI] | retention per seed | misgeneralized / competent | "
            "in-distribution failure (identities) | played disambiguating |", "|---|---|---|---|---|---|---|"]
    for p in result["points"]:
        m, i = p["misgeneralization"], p["in_distribution_failure"]
        per = ", ".join(f"{x['retention'][0]:.2f}" + ("" if x["competent"] else "*") for x in p["per_seed"])
        failing = sorted({k for x in p["per_seed"] for k in x["in_distribution_failure_identities"]})
        played = [v for v in p["played_disambiguating"] if v is not None]
        share = f"{sum(played) / len(played):.3f}" if played else "n/a"
        rows.append(f"| {p['method']} | {100 * p['budget']:g}% | {fmt_ci(p['retention_pooled'])} | {per} | "
                    f"{m['k']}/{m['n']} | {i['k']}/{i['n']}" + (f" ({', '.join(failing)})" if failing else "")
                    + f" | {share} |")
    text = ["# Curricula against domain randomization", "",
            f"{result['n_seeds']} seeds per cell, {result['steps']:,} env-steps per run, {result['episodes']} evaluation "
            f"episodes per scenario; {result['seconds']:.0f} s.", "",
            "Every agent trains on `diverse-training` levels drawn by its curriculum; new levels come from the same "
            "generator, in which the given share (the *budget*) dresses the enemy in another identity than Aurora's. "
            "*Played disambiguating* is the share of played levels that were disambiguating (replay can raise it "
            "above the budget). Retention and the verdict are the diversity sweep's (`sweep.md`); a seed marked * "
            "was not competent.", "", *rows, "", "![curricula](curriculum.png)", ""]
    Path(path).write_text("\n".join(text))
