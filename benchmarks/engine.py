"""Throughput of the batched engine on one CPU core.

Agent-steps per second (worlds x seats x ticks / second) with uniformly random legal
actions, at several batch sizes:

* ``mask+sample+step``: ``action_mask`` + ``sample_legal`` + ``step`` for all seats,
  what a trainer pays per tick besides its network and observation encoding;
* ``step only``: the same trajectory, timing ``step`` alone.

The world is the tests' small layout (``tests/conftest.py::make_small_world``): 10 seats,
6 alliances, 24 sites. Episodes are run from tick 0 and restarted with new seeds so the
timing covers the whole mix of early and late game.

    .venv/bin/python benchmarks/engine.py            # full table
    .venv/bin/python benchmarks/engine.py --quick    # a few seconds
    .venv/bin/python benchmarks/engine.py --profile 1024   # cProfile of the hot loop
"""

from __future__ import annotations

import os

# One core: set before numpy is imported.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"
if hasattr(os, "sched_setaffinity"):
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    except OSError:
        pass

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import make_small_world  # noqa: E402

from villages.game import action_mask, init_state, sample_legal, step  # noqa: E402


def bench_engine(B: int, min_seconds: float = 2.0, max_ticks: int | None = None, clock=time.perf_counter) -> dict:
    """Run whole episodes (restarting with fresh seeds) until ``min_seconds`` of total time."""
    cfg, layout = make_small_world()
    P, T = cfg.n_players, cfg.episode_length
    seats = np.arange(P)
    t_all = t_step = 0.0
    ticks = 0
    episode = 0
    # Warm-up (allocator, caches): a few ticks, untimed.
    s = init_state(cfg, layout, np.arange(B))
    for _ in range(3):
        s, _ = step(cfg, s, sample_legal(action_mask(cfg, s, seats), s.key, s.tick))
    while t_all < min_seconds and (max_ticks is None or ticks < max_ticks):
        s = init_state(cfg, layout, np.arange(B) + episode * B)
        episode += 1
        for _ in range(T):
            t0 = clock()
            a = sample_legal(action_mask(cfg, s, seats), s.key, s.tick)
            t1 = clock()
            s, _ = step(cfg, s, a)
            t2 = clock()
            t_all += t2 - t0
            t_step += t2 - t1
            ticks += 1
            if max_ticks is not None and ticks >= max_ticks:
                break
    n = B * P * ticks
    return {"B": B, "ticks": ticks, "all": n / t_all, "step": n / t_step, "tick_ms": 1e3 * t_all / ticks}


def bench_facade() -> None:
    """PettingZoo facade throughput: see ``benchmarks/facade.py`` (run here with its defaults)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("facade_bench", Path(__file__).with_name("facade.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(["--cpu-time", "--steps", "1500"])


def profile(B: int, ticks: int = 60) -> None:
    import cProfile
    import pstats

    cfg, layout = make_small_world()
    seats = np.arange(cfg.n_players)
    s = init_state(cfg, layout, np.arange(B))
    for _ in range(20):
        s, _ = step(cfg, s, sample_legal(action_mask(cfg, s, seats), s.key, s.tick))

    def run(s):
        for _ in range(ticks):
            s, _ = step(cfg, s, sample_legal(action_mask(cfg, s, seats), s.key, s.tick))

    prof = cProfile.Profile()
    prof.runcall(run, s)
    pstats.Stats(prof).sort_stats("tottime").print_stats(25)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 64, 1024])
    ap.add_argument("--seconds", type=float, default=3.0, help="minimum timed seconds per batch size")
    ap.add_argument("--quick", action="store_true", help="0.5 s per batch size")
    ap.add_argument("--profile", type=int, metavar="B", help="cProfile the hot loop at batch size B instead")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time with this thread's CPU clock (steadier on a busy machine) instead of the wall clock")
    args = ap.parse_args(argv)
    if args.profile:
        profile(args.profile)
        return
    seconds = 0.5 if args.quick else args.seconds
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    clock = time.thread_time if args.cpu_time else time.perf_counter
    print(f"engine throughput, one core (cpus {cpus}, numpy {np.__version__}), random legal actions, "
          f"{'CPU' if args.cpu_time else 'wall'} time")
    print(f"{'batch':>6} {'ticks':>6} {'ms/tick':>9} {'mask+sample+step':>18} {'step only':>12}   (agent-steps/s)")
    rows = []
    for B in args.batch:
        r = bench_engine(B, seconds, clock=clock)
        rows.append(r)
        print(f"{r['B']:>6} {r['ticks']:>6} {r['tick_ms']:>9.3f} {r['all']:>18,.0f} {r['step']:>12,.0f}", flush=True)
    by_b = {r["B"]: r for r in rows}
    if 1 in by_b and max(by_b) > 1:
        big = by_b[max(by_b)]
        print(f"ratio batch-{big['B']} / batch-1: mask+sample+step {big['all'] / by_b[1]['all']:.1f}x, "
              f"step only {big['step'] / by_b[1]['step']:.1f}x")
    bench_facade()


if __name__ == "__main__":
    main()
