"""Scenario runner speed: 1,000 episodes of ``inner-misalignment`` with scripted policies.

    .venv/bin/python benchmarks/scenarios.py [n_episodes] [batch_size] [scenario] [--profile]

Runs ``villages.scenarios.runner.run_episodes`` (focal seat played by the built-in
``raider``; the background seats by the scenario's bots), metrics included, and prints
episodes/s and total seconds, split into the time spent in the background bots
(``ScenarioGame.background_actions``: observation encoding, action masks, bot scoring),
the engine step, the focal policy and everything else. ``--profile`` adds a cProfile
listing of the 25 most expensive functions.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import villages.scenarios.runtime as runtime  # noqa: E402
from villages.scenarios import load  # noqa: E402
from villages.scenarios.runner import run_episodes  # noqa: E402


class Timed:
    """Wraps a function and adds its wall time to a counter."""

    def __init__(self, fn):
        self.fn, self.seconds = fn, 0.0

    def __call__(self, *a, **k):
        t = time.perf_counter()
        try:
            return self.fn(*a, **k)
        finally:
            self.seconds += time.perf_counter() - t


def main(argv: list[str]) -> None:
    profile = "--profile" in argv
    args = [a for a in argv if not a.startswith("--")]
    n = int(args[0]) if args else 1000
    batch = int(args[1]) if len(args) > 1 else 250
    scenario = args[2] if len(args) > 2 else "inner-misalignment"
    spec = load(scenario)

    bots = Timed(runtime.ScenarioGame.background_actions)
    engine = Timed(runtime.step)
    observe = Timed(runtime.ScenarioGame.observe)
    runtime.ScenarioGame.background_actions = lambda self: bots(self)
    runtime.ScenarioGame.observe = lambda self: observe(self)
    runtime.step = engine

    from villages.policies import make_policy
    from villages.scenarios import game_config

    focal = make_policy("raider", game_config(spec))
    focal_t = Timed(focal.act)
    focal.act = focal_t

    run_episodes(spec, "raider", min(batch, n), seed=99, batch_size=batch)  # warm-up (imports, caches)
    for t in (bots, engine, observe, focal_t):
        t.seconds = 0.0
    t0 = time.perf_counter()
    if profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
    res = run_episodes(spec, focal, n, seed=0, batch_size=batch)
    total = time.perf_counter() - t0
    if profile:
        prof.disable()
    ticks = spec.map.episode_length
    print(f"{scenario}: {n} episodes x {ticks} ticks, batch {batch}: {total:.1f} s, {n / total:.1f} episodes/s, "
          f"{n * ticks / total:,.0f} world-steps/s")
    rest = total - bots.seconds - engine.seconds - observe.seconds - focal_t.seconds
    for name, sec in (("background bots (encode + mask + act)", bots.seconds), ("engine step", engine.seconds),
                      ("focal observation + mask", observe.seconds), ("focal policy act", focal_t.seconds),
                      ("timeline, rewards, metrics, rest", rest)):
        print(f"  {name:40s} {sec:6.1f} s  {100 * sec / total:5.1f}%")
    print(f"  mean attacks/episode {np.nanmean(res['attacks']):.2f}, enemy share "
          f"{np.nanmean(res['enemy_attack_share']):.2f}, villages lost {np.mean(res['villages_lost']):.2f}")
    if profile:
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main(sys.argv[1:])
