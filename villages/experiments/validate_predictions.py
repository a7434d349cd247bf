"""Validate the blind predictions of ``villages diagnose --predict`` on deployment variants.

For every trained agent (``AGENTS/<kind>-seed<k>/final.pt``) and every deployment variant
(``inner-misalignment`` and ``examples/deployments/*.toml``: each identity at war, novel
banners near and far from the training enemy's, with and without raids):

* **predicted** retention: ``villages.diagnostics.predict`` — training episodes only, the
  deployment scenario is read, never run;
* **observed** retention: the agent played in the variant and in ``aurora-control`` (same
  world seeds), ``experiments.common.retention``.

Summary: Spearman rank correlation of predicted vs observed (all pairs and per agent kind),
the classification agreement (retention < 0.5 vs >= 0.5, the experiments' threshold) with
a Clopper-Pearson CI, a calibration plot, and the objective map of one agent per kind.

    python -m villages.experiments.validate_predictions --agents /work/exp/runs/demo10/agents \\
        --seeds 0,1,2 --out docs/results/objective-map
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from villages.stats import rank_correlation

from .common import CONTROL, DEPLOY, RETENTION_THRESHOLD, eval_job, load_summary, rate, retention, run_parallel

VARIANTS_DIR = Path(__file__).resolve().parents[2] / "examples" / "deployments"
KINDS = ("villages", "diverse", "troops")


def variants(names: str | None = None) -> list[str]:
    """``inner-misalignment`` and the variants in ``examples/deployments`` (all, or the comma-separated stems)."""
    files = sorted(VARIANTS_DIR.glob("*.toml"))
    if names:
        want = [n.strip() for n in names.split(",") if n.strip()]
        unknown = sorted(set(want) - {p.stem for p in files})
        if unknown:
            raise SystemExit(f"--variants: unknown {', '.join(unknown)} (choose from {', '.join(p.stem for p in files)})")
        files = [p for p in files if p.stem in want]
    return [DEPLOY] + [str(p) for p in files]


def _short(scenario: str) -> str:
    return Path(scenario).stem


def agent_job(job: dict) -> dict:
    """Predict, then observe, every variant for one agent (one worker process)."""
    from villages.diagnostics import predict

    ckpt, cache = job["checkpoint"], Path(job["cache"])
    done = cache / f"{job['agent']}__{job['episodes']}ep__rows.json"
    if done.exists():  # finished earlier (the script resumes)
        return json.loads(done.read_text())
    t0 = time.perf_counter()
    preds = predict(ckpt, job["variants"], "training", n_episodes=job["episodes"], seed=0)
    t_pred = time.perf_counter() - t0
    control = cache / f"{job['agent']}__{job['episodes']}ep__{CONTROL}.json"
    eval_job(dict(policy=ckpt, scenario=CONTROL, episodes=job["episodes"], out=str(control)))
    rows = []
    for p in preds:
        out = cache / f"{job['agent']}__{job['episodes']}ep__{_short(p.scenario)}.json"
        scenario = next(v for v in job["variants"] if _short(v) == _short(p.scenario))
        eval_job(dict(policy=ckpt, scenario=scenario, episodes=job["episodes"], out=str(out)))
        obs = retention(load_summary(control), load_summary(out))
        rows.append({"agent": job["agent"], "kind": job["kind"], "seed": job["seed"], "variant": _short(p.scenario),
                     "alliance": p.alliance, "wears": p.identities[0][0], "cos_enemy": p.cos_enemy,
                     "raids": "no-raids" not in p.scenario, "predicted": list(p.retention),
                     "predicted_outcome": p.outcome, "training_enemy_attacks": p.base_rate,
                     "observed": [float(x) for x in obs]})
    result = {"agent": job["agent"], "rows": rows, "predict_s": t_pred, "total_s": time.perf_counter() - t0}
    done.write_text(json.dumps(result))
    return result


def map_job(job: dict) -> dict:
    """The full objective map (markdown section + plot) of one agent."""
    from villages.diagnostics import diagnose
    from villages.diagnostics.report import plot_map

    out = Path(job["out"])
    if out.exists() and Path(job["json"]).exists():
        return json.loads(Path(job["json"]).read_text())
    d = diagnose(job["checkpoint"], "training", n_episodes=job["episodes"], seed=0, fit=False)
    plot = plot_map(d, out.with_suffix(".png"))
    out.write_text(d.to_markdown(plot.name if plot else None))
    result = {"agent": job["agent"], "reading": d.reading, "verdict": d.verdict, "md": str(out),
              "png": str(plot) if plot else None}
    Path(job["json"]).write_text(json.dumps(result))
    return result


def summarise(rows: list[dict]) -> dict:
    """Agreement statistics over the pairs whose prediction does not abstain (an agent that hardly
    attacks its training enemy: retention is a ratio of near-zero counts, predicted and observed)."""

    def stats(sub):
        abstained = sum(r.get("predicted_outcome") == "inconclusive" for r in sub)
        sub = [r for r in sub if r.get("predicted_outcome") != "inconclusive"]
        pred = np.array([r["predicted"][0] for r in sub], float)
        obs = np.array([r["observed"][0] for r in sub], float)
        ok = np.isfinite(pred) & np.isfinite(obs)
        agree = [bool((p < RETENTION_THRESHOLD) == (o < RETENTION_THRESHOLD)) for p, o in zip(pred[ok], obs[ok])]
        return {"n": int(ok.sum()), "abstained": abstained, "spearman": list(rank_correlation(pred, obs)[:3]), "agreement": rate(agree),
                "false_robust": int(sum((p >= RETENTION_THRESHOLD) and (o < RETENTION_THRESHOLD)
                                        for p, o in zip(pred[ok], obs[ok]))),
                "false_misgeneralized": int(sum((p < RETENTION_THRESHOLD) and (o >= RETENTION_THRESHOLD)
                                                for p, o in zip(pred[ok], obs[ok])))}

    out = {"all": stats(rows)}
    for k in KINDS:
        sub = [r for r in rows if r["kind"] == k]
        if sub:
            out[k] = stats(sub)
    for raids in (True, False):
        sub = [r for r in rows if r["raids"] == raids]
        if sub:
            out["with raids" if raids else "without raids"] = stats(sub)
    return out


def calibration_plot(rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 5.2))
    colour = {"villages": "tab:red", "diverse": "tab:blue", "troops": "tab:green"}
    for kind in KINDS:
        for raids, marker in ((True, "o"), (False, "^")):
            sub = [r for r in rows if r["kind"] == kind and r["raids"] == raids
                   and r.get("predicted_outcome") != "inconclusive"]
            if not sub:
                continue
            x = np.array([r["predicted"] for r in sub], float)
            y = np.array([r["observed"] for r in sub], float)
            ax.errorbar(x[:, 0], y[:, 0], xerr=[np.maximum(0, x[:, 0] - x[:, 1]), np.maximum(0, x[:, 2] - x[:, 0])],
                        yerr=[np.maximum(0, y[:, 0] - y[:, 1]), np.maximum(0, y[:, 2] - y[:, 0])], fmt=marker,
                        color=colour[kind], alpha=0.7, ms=5, capsize=1.5, lw=0.6,
                        label=f"{kind}, {'raids' if raids else 'no raids'}")
    shown = [r for r in rows if r.get("predicted_outcome") != "inconclusive" and np.isfinite(r["observed"][0])]
    top = max([1.2] + [max(r["predicted"][0], r["observed"][0]) * 1.05 for r in shown])
    ax.plot([0, top], [0, top], color="k", lw=0.7)
    ax.axhline(RETENTION_THRESHOLD, color="k", ls=":", lw=0.6)
    ax.axvline(RETENTION_THRESHOLD, color="k", ls=":", lw=0.6)
    ax.set_xlim(-0.05, top)
    ax.set_ylim(-0.05, top)
    ax.set_xlabel("predicted retention (training probes only)")
    ax.set_ylabel("observed retention (deployment vs aurora-control)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _ci(t, d=2) -> str:
    return "n/a" if t is None or not np.isfinite(t[0]) else f"{t[0]:.{d}f} [{t[1]:.{d}f}, {t[2]:.{d}f}]"


def report(rows, summary, maps, out: Path, command: str, agents_note: str) -> str:
    lines = ["# Predicting deployments from the objective map", "",
             f"Command: `{command}`", "", agents_note, "",
             "Predicted retention comes from `villages.diagnostics.predict`: training-scenario episodes in which the "
             "training enemy's role wears the identity the deployment puts at war, relative to the unchanged training "
             "episodes (same world seeds), scaled by the deployment alliance's villages over the training enemy's. "
             "The deployment scenario is read, never run. Observed retention: attacks per episode on the alliance at "
             "war in the variant / attacks per episode on the training enemy in `aurora-control`, paired by world "
             "seeds. 95% percentile-bootstrap CIs; rank correlation CIs resample the (agent, variant) pairs.", "",
             "## Agreement", "",
             "| pairs | n | abstained | Spearman rho [95% CI] | agreement (< 0.5 vs >= 0.5) [95% CI] | "
             "predicted robust, observed < 0.5 | predicted < 0.5, observed robust |", "|---|---|---|---|---|---|---|"]
    for k, s in summary.items():
        a = s["agreement"]
        agree = "n/a" if not a["n"] else f"{a['k']}/{a['n']} = {a['rate']:.2f} [{a['ci95'][0]:.2f}, {a['ci95'][1]:.2f}]"
        lines.append(f"| {k} | {s['n']} | {s['abstained']} | {_ci(s['spearman'])} | {agree} | {s['false_robust']} | "
                     f"{s['false_misgeneralized']} |")
    lines += ["", f"*Abstained*: the prediction is *inconclusive* for an agent that attacks its training enemy fewer "
              f"than 0.5 times per training episode (retention is then a ratio of near-zero counts); those pairs are "
              f"listed below but left out of the statistics."]
    lines += ["", f"![calibration]({out.name}/calibration.png)", "",
              "## Per agent and variant", "",
              "| agent | variant | at war wears | cos to Aurora | raids | predicted | observed | agree |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p, o = r["predicted"][0], r["observed"][0]
        agree = ("abstains" if r.get("predicted_outcome") == "inconclusive" else "n/a" if not np.isfinite(o) else
                 "yes" if (p < RETENTION_THRESHOLD) == (o < RETENTION_THRESHOLD) else "**no**")
        lines.append(f"| {r['agent']} | `{r['variant']}` | {r['wears']} | {r['cos_enemy']:+.2f} | "
                     f"{'yes' if r['raids'] else 'no'} | {_ci(r['predicted'])} | {_ci(r['observed'])} | {agree} |")
    if maps:
        lines += ["", "## Objective maps (one agent per kind)", ""]
        for m in maps:
            lines += [f"**{m['agent']}** — {m['reading']} Verdict: {m['verdict']}. "
                      f"[table]({out.name}/{Path(m['md']).name})", ""]
            if m["png"]:
                lines += [f"![{m['agent']} objective map]({out.name}/{Path(m['png']).name})", ""]
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", type=Path, required=True, help="folder of <kind>-seed<k>/final.pt")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--episodes", type=int, default=32, help="episodes per evaluation and per probe cell")
    ap.add_argument("--map-episodes", type=int, default=16, help="episodes per objective-map cell (0: no maps)")
    ap.add_argument("--out", type=Path, default=Path("docs/results/objective-map"))
    ap.add_argument("--cache", type=Path, default=Path("runs/objective-map-validation"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--variants", default=None, help="comma-separated variant names (default: all)")
    ap.add_argument("--report-only", action="store_true", help="write the report from the agents finished so far")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    a.cache.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in a.seeds.split(",")]
    found, missing = [], []
    for s in seeds:  # seed-major: an interrupted run has every kind
        for kind in a.kinds.split(","):
            folder = a.agents / f"{kind}-seed{s}"
            (found if (folder / "done.json").exists() or (folder / "final.pt").exists() else missing).append(
                (kind, s, folder / "final.pt"))
    jobs = [dict(checkpoint=str(p), agent=f"{k}-seed{s}", kind=k, seed=s, episodes=a.episodes, cache=str(a.cache),
                 variants=variants(a.variants)) for k, s, p in found]
    first = {}
    for k, s, p in found:
        first.setdefault(k, (s, p))
    map_jobs = [dict(checkpoint=str(p), agent=f"{k}-seed{s}", episodes=a.map_episodes,
                     out=str(a.out / f"map-{k}-seed{s}.md"), json=str(a.cache / f"map-{k}-seed{s}__{a.map_episodes}ep.json"))
                for k, (s, p) in first.items()] if a.map_episodes > 0 else []
    if a.report_only:  # whatever has finished
        results = [json.loads(f.read_text()) for j in jobs
                   if (f := a.cache / f"{j['agent']}__{a.episodes}ep__rows.json").exists()]
        maps = [json.loads(Path(j["json"]).read_text()) for j in map_jobs if Path(j["json"]).exists()]
        found = [(k, s, p) for k, s, p in found if any(r["agent"] == f"{k}-seed{s}" for r in results)]
    else:
        results = run_parallel(agent_job, jobs, a.workers, desc="agents")
        maps = run_parallel(map_job, map_jobs, a.workers, desc="maps") if map_jobs else []
    rows = [r for res in results for r in res["rows"]]
    summary = summarise(rows)
    calibration_plot(rows, a.out / "calibration.png")
    note = (f"Agents: {len(found)} ({', '.join(f'{k}-seed{s}' for k, s, _ in found)}) from `{a.agents}`"
            + (f"; not found: {', '.join(f'{k}-seed{s}' for k, s, _ in missing)}" if missing else "") + ".")
    command = "python -m villages.experiments.validate_predictions " + " ".join(argv or [])
    (a.out / "results.json").write_text(json.dumps({"rows": rows, "summary": summary, "maps": maps,
                                                     "timing": {r["agent"]: r["total_s"] for r in results}}, indent=1))
    md = a.out.with_suffix(".md")
    md.write_text(report(rows, summary, maps, a.out, command, note))
    print(f"wrote {md}")
    return summary


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
