"""Paired comparison of a group of policies against a baseline on the same episodes.

    villages compare runs/a-seed0/final.pt runs/a-seed1/final.pt runs/a-seed2/final.pt \\
        --baseline raider --scenario aurora-control --episodes 64

Every policy and the baseline play the same episodes (same scenario, evaluation seeds and
world seeds), so each episode gives a difference ``policy - baseline`` in which the
world's own luck cancels. The group's policies (e.g. one checkpoint per training seed)
are pooled: the CI is a percentile bootstrap over all their per-episode differences.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .loader import load
from villages.stats import bootstrap_ci, paired_diff_ci

from .metrics import SCALAR_METRICS
from .runner import evaluate, game_config, resolve_policy

DEFAULT_METRICS = ("proxy_reward", "enemy_villages_destroyed", "intended", "attacks", "peaceful_attacks")


def compare(scenario, policies, baseline="raider", episodes: int = 64, seeds=(0,),
            metrics=DEFAULT_METRICS) -> dict:
    """{"rows": [{metric, group, baseline, difference}], ...}: means with 95% CIs, the group
    pooled over its policies, and ``per_policy`` means of each."""
    unknown = [m for m in metrics if m not in SCALAR_METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {sorted(SCALAR_METRICS)}")
    if not policies:
        raise ValueError("compare needs at least one policy")
    spec = load(scenario)
    config = game_config(spec)
    # Resolved (checkpoints loaded) once, up front: a bad name fails before any episode is played.
    base_policy = resolve_policy(baseline, config)
    group_policies = [resolve_policy(p, config) for p in policies]
    base = evaluate(spec, base_policy, episodes, list(seeds))
    group = [evaluate(spec, p, episodes, list(seeds)) for p in group_policies]
    rows = []
    for m in metrics:
        parts = [np.asarray(g.values[m], float) for g in group]
        b = np.asarray(base.values[m], float)
        rows.append({"metric": m, "group": bootstrap_ci(np.concatenate(parts))[:3], "baseline": bootstrap_ci(b)[:3],
                     "difference": paired_diff_ci(parts, b)[:3],
                     "per_policy": [float(np.nanmean(x)) if np.isfinite(x).any() else float("nan") for x in parts]})
    return {"scenario": spec.name, "policies": [str(p) for p in policies], "baseline": str(baseline),
            "episodes": episodes, "seeds": list(seeds), "rows": rows}


def format_comparison(res: dict) -> str:
    f = lambda t: f"{t[0]:.3g} [{t[1]:.3g}, {t[2]:.3g}]"  # noqa: E731
    lines = [f"scenario {res['scenario']}  episodes {res['episodes']} x seeds {res['seeds']}  "
             f"group: {len(res['policies'])} policies (pooled)  baseline: {res['baseline']}",
             "paired per episode; 95% bootstrap CIs", "",
             f"{'metric':26s} {'group':>24s} {'baseline':>24s} {'group - baseline':>24s}  per policy"]
    for r in res["rows"]:
        lines.append(f"{r['metric']:26s} {f(r['group']):>24s} {f(r['baseline']):>24s} {f(r['difference']):>24s}  "
                     + " ".join(f"{x:.3g}" for x in r["per_policy"]))
    return "\n".join(lines)


def cli_compare(policies, baseline: str, scenario: str, episodes: int, seeds, metrics, json_out=None) -> dict:
    import json

    import typer

    from .loader import ScenarioError
    from .runner import PolicyError

    from villages.validation import check_output_path

    check_output_path(json_out, "--json")
    try:
        res = compare(scenario, policies, baseline, episodes, seeds, metrics)
    except (ScenarioError, PolicyError, ValueError) as e:
        typer.echo(f"Error: {e}", err=True)
        raise typer.Exit(code=2)
    typer.echo(format_comparison(res))
    if json_out is not None:
        Path(json_out).write_text(json.dumps(res, indent=1, default=float))
        typer.echo(f"wrote {json_out}")
    return res
