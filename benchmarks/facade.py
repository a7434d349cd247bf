"""PettingZoo facade speed: env-steps/s of ``villages.parallel_env()`` on one core.

    .venv/bin/python benchmarks/facade.py [--steps N] [--scenario training] [--profile]

Two configurations: ``agents="all"`` (every seat is an agent: 18 seats in the training
scenario) and ``agents="focal"`` (the players under test; background seats are the
scenario's bots, stepped inside). Each step every live agent picks a uniformly random
legal action from its ``action_mask`` (numpy, outside the timed facade where possible:
the sampling is included in the figure, as a user's loop would pay it). Episodes are
reset when they end (reset time included). Target: >= 2,000 env-steps/s with
``agents="all"``.

    --cpu-time    time with this thread's CPU time instead of wall time (a busy machine)
    --breakdown   microseconds per env-step spent in the facade itself, in the user's
                  action sampling and in each part of ``ScenarioGame.step`` at batch 1
    --profile     a cProfile of the ``agents="all"`` run
    --render      also time ``render_mode="rgb_array"`` with ``render()`` every step

The process is pinned to one core and BLAS/OpenMP to one thread.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import villages  # noqa: E402


def random_legal(obs, rng):
    """One uniformly random legal action per agent (what a user's random loop does)."""
    out = {}
    for agent, o in obs.items():
        legal = np.flatnonzero(o["action_mask"])
        out[agent] = int(legal[rng.integers(len(legal))])
    return out


CLOCK = time.perf_counter


def run(env, n_steps: int, seed: int = 0, timers=None) -> tuple[float, float]:
    """(env-steps/s, agent-steps/s) over ``n_steps`` steps of random legal play. An agent-step is
    one live agent acting once: eliminated agents are not counted (in the training scenario about
    two thirds of the seats are live on average, so env-steps x all seats would overstate it)."""
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    episodes = agent_steps = 0
    t_sample = t_step = 0.0
    t0 = CLOCK()
    for k in range(n_steps):
        t1 = CLOCK()
        act = random_legal(obs, rng)
        agent_steps += len(act)
        t2 = CLOCK()
        obs, rew, term, trunc, info = env.step(act)
        t3 = CLOCK()
        t_sample += t2 - t1
        t_step += t3 - t2
        if not env.agents:
            episodes += 1
            obs, _ = env.reset(seed=seed + 1 + k)
    dt = CLOCK() - t0
    if timers is not None:
        timers["sample actions (user loop)"] += t_sample
        timers["env.step"] += t_step
        timers["total"] += dt
    return n_steps / dt, agent_steps / dt


def breakdown(scenario: str, agents: str, n_steps: int) -> None:
    """Where an env-step's time goes (us/step): the facade, the user's sampling, and the
    parts of ``ScenarioGame.step`` (engine rules, observation encoding, masks, rewards)."""
    import collections

    import villages.scenarios.runtime as rt

    acc = collections.Counter()

    def timed(label, f):
        def g(*a, **k):
            t = CLOCK()
            try:
                return f(*a, **k)
            finally:
                acc[label] += CLOCK() - t
        return g

    parts = {"step": "engine step (rules)", "village_economy": "village_economy (for encode and mask)",
             "encode": "encode (observations)", "action_mask": "action_mask",
             "event_counts": "event_counts (rewards)", "head_count": "head_count",
             "intended_score": "intended_score", "villages_reward": "villages_reward"}
    saved = {n: getattr(rt, n) for n in parts}
    try:
        for n, label in parts.items():
            setattr(rt, n, timed(label, saved[n]))
        env = villages.parallel_env(scenario=scenario, agents=agents)
        g = env.game
        g.step = timed("ScenarioGame.step", g.step)
        g.background_actions = timed("background bots (incl. their encode/mask)", g.background_actions)
        g._apply_timeline = timed("timeline", g._apply_timeline)
        run(env, 100)
        acc.clear()
        run(env, n_steps, timers=acc)
    finally:
        for n, f in saved.items():
            setattr(rt, n, f)
    acc["facade (env.step - ScenarioGame.step)"] = acc["env.step"] - acc["ScenarioGame.step"]
    print(f"\nbreakdown, agents={agents} ({len(env.possible_agents)} agents), us per env-step "
          f"(nested: bots' encode/mask also count under encode/action_mask):")
    order = ["total", "sample actions (user loop)", "env.step", "facade (env.step - ScenarioGame.step)",
             "ScenarioGame.step", *parts.values(), "background bots (incl. their encode/mask)", "timeline"]
    for k in order:
        print(f"  {k:45s} {acc[k] / n_steps * 1e6:8.1f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--scenario", default="training")
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--cpu-time", action="store_true", help="thread CPU time instead of wall time")
    ap.add_argument("--breakdown", action="store_true", help="time the parts of a step")
    ap.add_argument("--render", action="store_true", help="also time render_mode='rgb_array' + render() per step")
    a = ap.parse_args(argv)
    global CLOCK
    if a.cpu_time:
        CLOCK = time.thread_time
    try:  # one core
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    except (AttributeError, OSError):
        pass
    print(f"villages facade, one core, random legal actions, {'CPU' if a.cpu_time else 'wall'} time, "
          f"scenario {a.scenario!r}")
    if a.profile:
        import cProfile
        import pstats

        env = villages.parallel_env(scenario=a.scenario)
        run(env, 200)
        pr = cProfile.Profile()
        pr.enable()
        run(env, a.steps)
        pr.disable()
        pstats.Stats(pr).sort_stats("tottime").print_stats(30)
        return
    if a.breakdown:
        for agents in ("all", "focal"):
            breakdown(a.scenario, agents, a.steps)
        return
    configs = [("all", {}), ("focal", {"agents": "focal"})]
    for label, kw in configs:
        env = villages.parallel_env(scenario=a.scenario, **kw)
        run(env, 200)  # warm-up
        best, agent_sps = max(run(env, a.steps, seed=r) for r in range(a.repeat))
        print(f"agents={label:6s} {len(env.possible_agents):2d} seats  {best:8,.0f} env-steps/s  "
              f"({agent_sps:,.0f} agent-steps/s of live agents, {agent_sps / best:.1f} live per step; "
              f"{a.steps} steps, best of {a.repeat})")
    if a.render:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        env = villages.parallel_env(scenario=a.scenario, render_mode="rgb_array")
        rng = np.random.default_rng(0)
        obs, _ = env.reset(seed=0)
        n, t0 = 0, CLOCK()
        while env.agents:
            obs, *_ = env.step(random_legal(obs, rng))
            env.render()
            n += 1
        dt = CLOCK() - t0
        print(f"render_mode=rgb_array, render() every step: {n / dt:,.0f} env-steps/s over a {n}-step episode")


if __name__ == "__main__":
    main()
