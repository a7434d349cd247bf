"""``villages sweep-diversity``: misgeneralization rate vs training diversity.

For each fraction f of training episodes in which the enemy role wears a random
identity (``diverse-training`` with ``diversity.fraction = f``; f = 0 is the plain
``training`` distribution) and each seed, train a ``villages`` agent, evaluate it in
``aurora-control`` (in distribution) and ``inner-misalignment`` (deployment), and plot
both failure rates against f with Clopper-Pearson CIs — the analogue of Langosco et
al. (2022)'s CoinRun curve (they swept 0/1/2/5/10% random coin positions).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .common import CONTROL, DEPLOY, baseline_job, classify, eval_job, load_summary, metric, nanmean, rate, run_parallel, train_job


def _tag(f: float) -> str:
    return f"f{f:g}".replace(".", "p")


FRACTIONS = (0, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)  # the transition is between 0.75 and 0.9


def run_sweep(out=Path("runs/sweep"), fractions=FRACTIONS, n_seeds: int = 3,
              backend: str = "local", address=None, steps=None, episodes: int = 64, workers: int = 2,
              num_worlds: int = 128, log=print) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    steps = steps or 300_000
    t0 = time.perf_counter()
    jobs = [dict(scenario="diverse-training", objective="villages", diversity=float(f), seed=s, total_steps=steps,
                 num_worlds=num_worlds, processes=1 if workers > 1 or backend == "ray" else 2,
                 out=str(out / "agents" / f"{_tag(f)}-seed{s}"))
            for f in fractions for s in range(n_seeds)]
    log(f"training {len(jobs)} agents ({len(fractions)} fractions x {n_seeds} seeds, {steps:,} env-steps each) ...")
    if backend == "ray":
        from .ray_sweep import run_grid_on_ray

        results = run_grid_on_ray([{k: v for k, v in j.items() if k != "out"} for j in jobs], out / "agents",
                                  address=address, names=[Path(j["out"]).name for j in jobs])
        failed = [r for r in results if r.get("error")]
        if failed:
            raise RuntimeError(f"{len(failed)} of {len(results)} Ray trials failed; first: {failed[0]['name']}: "
                               f"{failed[0]['error']}")
    elif backend == "local":
        run_parallel(train_job, jobs, workers, desc="train")
    else:
        raise ValueError(f"backend must be 'local' or 'ray', got {backend!r}")
    base_job = baseline_job(out, episodes)
    eval_jobs = []
    for j in jobs:
        for scen in (CONTROL, DEPLOY):
            name = Path(j["out"]).name
            eval_jobs.append(dict(policy=str(Path(j["out"]) / "final.pt"), scenario=scen, episodes=episodes,
                                  out=str(out / "eval" / f"{name}__{scen}.json"), fraction=j["diversity"],
                                  seed=j["seed"]))
    log(f"evaluating {len(eval_jobs)} agent x scenario jobs ...")
    run_parallel(eval_job, eval_jobs + [base_job], workers, desc="eval")
    base = nanmean(metric(load_summary(base_job["out"]), "proxy_reward"))

    points = []
    for f in fractions:
        cls = []
        for s in range(n_seeds):
            ev = {e["scenario"]: load_summary(e["out"]) for e in eval_jobs if e["fraction"] == f and e["seed"] == s}
            cls.append(classify(ev[CONTROL], ev[DEPLOY], base))
        competent = [c for c in cls if c["competent"]]
        points.append({"fraction": f, "misgeneralization": rate([c["misgeneralized"] for c in competent]),
                       "in_distribution_failure": rate([c["in_distribution_failure"] for c in cls]),
                       "competent": rate([c["competent"] for c in cls]), "per_seed": cls})
    result = {"fractions": list(fractions), "n_seeds": n_seeds, "steps": steps, "episodes": episodes,
              "points": points, "seconds": time.perf_counter() - t0}
    (out / "sweep.json").write_text(json.dumps(result, indent=1, default=float))
    _plot(points, out / "sweep.png")
    _markdown(result, out / "sweep.md")
    log((out / "sweep.md").read_text())
    return result


def _plot(points, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    x = np.arange(len(points))
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for key, label, colour, dx in (("misgeneralization", "deployment: misgeneralization rate", "#c0392b", -0.06),
                                   ("in_distribution_failure", "training distribution: failure rate", "#2e86c1", 0.06)):
        y = [p[key]["rate"] for p in points]
        lo = [p[key]["rate"] - p[key]["ci95"][0] for p in points]
        hi = [p[key]["ci95"][1] - p[key]["rate"] for p in points]
        ax.errorbar(x + dx, y, yerr=[lo, hi], marker="o", capsize=3, color=colour, label=label)
    ax.set_xticks(x, [f"{100 * p['fraction']:g}%" for p in points])
    ax.set_xlabel("training episodes with a randomized enemy identity")
    ax.set_ylabel("share of training seeds")
    ax.set_ylim(-0.05, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Goal misgeneralization vs training diversity (95% Clopper-Pearson)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _markdown(result, path):
    rows = ["| randomized enemy | misgeneralized / competent seeds | rate [95% CI] | in-distribution failure | competent |",
            "|---|---|---|---|---|"]
    for p in result["points"]:
        m, i, c = p["misgeneralization"], p["in_distribution_failure"], p["competent"]
        ci = "n/a" if m["n"] == 0 else f"{m['rate']:.2f} [{m['ci95'][0]:.2f}, {m['ci95'][1]:.2f}]"
        rows.append(f"| {100 * p['fraction']:g}% | {m['k']}/{m['n']} | {ci} | {i['k']}/{i['n']} | {c['k']}/{c['n']} |")
    text = ["# Diversity sweep", "",
            f"{result['n_seeds']} seeds per point, {result['steps']:,} env-steps per run, {result['episodes']} "
            f"evaluation episodes per scenario; {result['seconds']:.0f} s.", "", *rows, "", "![sweep](sweep.png)", ""]
    Path(path).write_text("\n".join(text))
