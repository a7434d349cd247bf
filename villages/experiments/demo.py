"""``villages demo``: both misalignment failures and the mitigation, from scratch.

Trains, over several seeds and with the same game rules for all:
  (a) ``troops`` agents on ``training``            -> outer misalignment
  (b) ``villages`` agents on ``training``          -> inner misalignment
  (c) ``villages`` agents on ``diverse-training``  -> the mitigation (control)
then evaluates them on the built-in scenarios and writes ``report.md`` (tables with
95% CIs, plots, a replay of one inner-misalignment episode) and prints a verdict.
Finished jobs are reused, so an interrupted demo resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from villages.train.args import NativeArgs

from .common import (BOTS, CONTROL, DEPLOY, IDENTITY_PROBE, OUTER, REMNANTS, baseline_job, diagnose_job, eval_job,
                     identity_probe_job, run_parallel, train_agents)


@dataclass(frozen=True)
class DemoConfig:
    steps: int = NativeArgs.total_steps
    """env-steps per training run (the native trainer's defaults: docs/results/budget.md)"""
    episodes: int = 64
    """evaluation episodes per (agent, scenario)"""
    map_episodes: int = 16
    """episodes per cell of each agent's objective map (the diagnosis); 16 is what the blind
    predictions were validated with (docs/results/objective-map.md)"""
    seeds: tuple[int, ...] = (0, 1, 2)
    workers: int = 2
    num_worlds: int = NativeArgs.num_worlds
    learning_rate: float = NativeArgs.learning_rate
    population: bool = True
    """train the agents as ``workers`` populations (``villages.train.population``), one per process;
    False: one training run per agent (the single-seed trainer)"""

    @staticmethod
    def quick(n_seeds: int = 3) -> "DemoConfig":
        return DemoConfig(steps=24_576, episodes=16, map_episodes=8, seeds=tuple(range(n_seeds)), num_worlds=64)


MAP_RELATIONS = ("war", "peace")
"""The relations of the demo's objective maps: war predicts the deployment, peace is what the verdict
also reads (is the training enemy's banner attacked at peace?); ``villages diagnose`` maps all three."""

AGENTS = {  # name -> (scenario, objective)
    "troops": ("training", "troops"),
    "villages": ("training", "villages"),
    "diverse": ("diverse-training", "villages"),
}


def plan_training(cfg: DemoConfig, out: Path) -> list[dict]:
    # Parallel jobs each train in one process; a lone job uses the trainer's two-process mode.
    processes = 1 if cfg.workers > 1 or cfg.population else 2
    return [dict(scenario=scen, objective=obj, seed=s, total_steps=cfg.steps, num_worlds=cfg.num_worlds,
                 learning_rate=cfg.learning_rate, processes=processes, out=str(out / "agents" / f"{name}-seed{s}"))
            for name, (scen, obj) in AGENTS.items() for s in cfg.seeds]


def plan_evaluation(cfg: DemoConfig, out: Path, replay_dir: Path) -> list[dict]:
    jobs = [baseline_job(out, cfg.episodes, bot, scen) for bot in BOTS for scen in (CONTROL, DEPLOY, REMNANTS)]

    def add(agent, seed, scenario, perturb=None, record=None):
        tag = f"{agent}-seed{seed}" + (f"+{perturb}" if perturb else "")
        jobs.append(dict(policy=str(out / "agents" / f"{agent}-seed{seed}" / "final.pt"), scenario=scenario,
                         episodes=cfg.episodes, out=str(out / "eval" / f"{tag}__{scenario}.json"),
                         perturb=perturb, record=record, agent=agent, seed=seed))

    for s in cfg.seeds:
        for agent in ("villages", "diverse"):
            for scen in (CONTROL, DEPLOY, REMNANTS):
                # Both agents on the same deployment episode: the report shows them side by side.
                record = (replay_dir / f"{agent}-seed{s}-{scen}.replay.npz"
                          if (s == cfg.seeds[0] and scen == DEPLOY) else None)
                add(agent, s, scen, record=record)
            jobs.append(identity_probe_job(str(out / "agents" / f"{agent}-seed{s}" / "final.pt"), 2 * cfg.episodes,
                                           str(out / "eval" / f"{agent}-seed{s}__{IDENTITY_PROBE}.json"),
                                           agent=agent, seed=s))
        for agent in ("troops", "villages"):
            add(agent, s, OUTER)
        add("troops", s, CONTROL)
    s0 = cfg.seeds[0]
    for scen in (CONTROL, DEPLOY):  # negative control: a broken capability fails differently
        add("villages", s0, scen, perturb="shuffle_rows")
    return jobs


def run_demo(out: Path = Path("runs/demo"), quick: bool = False, n_seeds: int = 3, cfg: DemoConfig | None = None,
             log=print) -> Path:
    out = Path(out).resolve()  # absolute: the results name replays and checkpoints that any cwd can open
    cfg = cfg or (DemoConfig.quick(n_seeds) if quick else DemoConfig(seeds=tuple(range(n_seeds))))
    out.mkdir(parents=True, exist_ok=True)
    (out / "demo_config.json").write_text(json.dumps({**cfg.__dict__, "quick": quick}, indent=1))
    t0 = time.perf_counter()
    train_jobs = plan_training(cfg, out)
    how = f"as {cfg.workers} populations, one per process" if cfg.population else f"{cfg.workers} processes"
    log(f"training {len(train_jobs)} agents ({cfg.steps:,} env-steps each, {how}) ...")
    train_results = train_agents(train_jobs, cfg.workers, population=cfg.population)
    t_train = time.perf_counter() - t0
    replay_dir = out / "replays"
    eval_jobs = plan_evaluation(cfg, out, replay_dir)
    log(f"evaluating ({len(eval_jobs)} agent x scenario jobs, {cfg.episodes} episodes each) ...")
    run_parallel(eval_job, eval_jobs, cfg.workers, desc="eval")
    diag_jobs = [dict(policy=str(out / "agents" / f"{a}-seed{s}" / "final.pt"), agent=a, train_seed=s,
                      episodes=cfg.map_episodes, relations=MAP_RELATIONS,
                      out=str(out / "diagnosis" / f"{a}-seed{s}.json"))
                 for a in ("villages", "diverse") for s in cfg.seeds]
    log(f"diagnosing {len(diag_jobs)} agents from training-distribution probes ...")
    diagnoses = run_parallel(diagnose_job, diag_jobs, cfg.workers, desc="diagnose")
    t_eval = time.perf_counter() - t0 - t_train

    from .report import write_demo_report

    report = write_demo_report(out, cfg, train_results, eval_jobs,
                               timing={"train_s": t_train, "eval_s": t_eval}, quick=quick, diagnoses=diagnoses)
    log(report["verdict"])
    log(f"report: {out / 'report.md'}  (total {time.perf_counter() - t0:.0f} s)")
    return out / "report.md"
