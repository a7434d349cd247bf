"""Training throughput: RLlib PPO over the PettingZoo facade vs the native batched trainer.

Both train the same focal player in the same scenario with the same network and the
same PPO work per sample (batch 4096 env-steps, minibatches of 1024, 3 epochs), one
after the other in this process (RLlib on a private local Ray instance started here).
Reported: env-steps/s during training (sampling + updates, from each run's own
metrics, start-up excluded), start-up seconds, and the ratio native / RLlib.

    .venv/bin/python benchmarks/rllib_vs_native.py                 # ~3 minutes on 2 cores
    .venv/bin/python benchmarks/rllib_vs_native.py --quick         # ~1 minute
    .venv/bin/python benchmarks/rllib_vs_native.py --runners 0,1,2 --json out.json

``--runners``: RLlib env-runner counts to measure (0 = sampling in the driver process,
one core like the native trainer; N = N remote runner processes + the learner in the
driver). Every runner steps ``--envs-per-runner`` facade envs (one world each) and
batches their forward passes; the native trainer steps ``--num-worlds`` worlds in one
numpy batch.
"""

from __future__ import annotations

import argparse
import json
import shutil
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _last(path: Path) -> dict:
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return rows[-1]


def run_native(scenario: str, steps: int, num_worlds: int, tmp: Path, processes: int) -> dict:
    from villages.train.ppo import Args, train

    args = Args(scenario=scenario, total_steps=steps, num_worlds=num_worlds, num_steps=4096 // num_worlds,
                num_minibatches=4, update_epochs=3, progress=False, checkpoint_every=10**9, processes=processes)
    shutil.rmtree(tmp / "native", ignore_errors=True)
    t0 = time.perf_counter()
    train(args, tmp / "native", log=lambda *_: None)
    wall = time.perf_counter() - t0
    last = _last(tmp / "native" / "metrics.jsonl")
    sps = float(last["charts/SPS"])
    procs = "1 process" if processes == 1 else f"{processes} processes (the default)"
    return {"backend": "native", "workers": f"{num_worlds} worlds, {procs}", "env_steps": last["global_step"],
            "sps": sps, "startup_s": max(0.0, wall - last["global_step"] / sps), "wall_s": wall}


def run_rllib(scenario: str, steps: int, runners: int, envs_per_runner: int, tmp: Path) -> dict:
    from villages.train.rllib import RLlibArgs, train

    args = RLlibArgs(scenario=scenario, total_steps=steps, train_batch_size=4096, minibatch_size=1024, num_epochs=3,
                     num_env_runners=runners, num_envs_per_env_runner=envs_per_runner, progress=False,
                     checkpoint_every=10**9)
    out = tmp / f"rllib{runners}"
    t0 = time.perf_counter()
    train(args, out, log=lambda *_: None)
    wall = time.perf_counter() - t0
    last = _last(out / "metrics.jsonl")
    sps = float(last["charts/SPS"])
    procs = "driver" if runners == 0 else f"{runners} runner processes + driver"
    return {"backend": f"rllib ({runners} env runners)", "workers": f"{envs_per_runner} envs/runner, {procs}",
            "env_steps": last["global_step"], "sps": sps, "startup_s": max(0.0, wall - last["global_step"] / sps),
            "wall_s": wall}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="training")
    ap.add_argument("--native-steps", type=int, default=131_072)
    ap.add_argument("--rllib-steps", type=int, default=16_384, help="per runner setting (4 iterations of 4096)")
    ap.add_argument("--runners", default="0,2", help="comma-separated RLlib env-runner counts")
    ap.add_argument("--envs-per-runner", type=int, default=8)
    ap.add_argument("--num-worlds", type=int, default=128)
    ap.add_argument("--quick", action="store_true", help="fewer steps, runners=0 only")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    if a.quick:
        a.native_steps, a.rllib_steps, a.runners = 32_768, 8_192, "0"
    import ray

    from villages.train.rllib import ray_session

    rows = []
    with tempfile.TemporaryDirectory(prefix="rllib_vs_native_") as tmp:
        tmp = Path(tmp)
        print(f"scenario {a.scenario!r}, {os.cpu_count()} CPUs, ray {ray.__version__}", flush=True)
        # Both native settings: 1 process is the like-for-like row against RLlib's driver-only setting (one
        # core each); 2 processes is what `villages train` runs by default.
        for processes in (1, 2):
            rows.append(run_native(a.scenario, a.native_steps, a.num_worlds, tmp, processes))
            print(f"  native, {processes} process(es): {rows[-1]['sps']:,.0f} env-steps/s", flush=True)
        t0 = time.perf_counter()
        with ray_session(None, num_cpus=max(os.cpu_count() or 1, max(int(r) for r in a.runners.split(",")))):
            ray_startup = time.perf_counter() - t0
            print(f"  ray.init: {ray_startup:.1f} s", flush=True)
            for r in (int(x) for x in a.runners.split(",")):
                rows.append(run_rllib(a.scenario, a.rllib_steps, r, a.envs_per_runner, tmp))
                print(f"  {rows[-1]['backend']}: {rows[-1]['sps']:,.0f} env-steps/s", flush=True)
    native = rows[0]["sps"]  # (1 process)
    print()
    print(f"{'backend':26s} {'setup':40s} {'env-steps':>10s} {'env-steps/s':>12s} {'start-up s':>11s} "
          f"{'native 1-proc / this':>21s}")
    for r in rows:
        r["native_over_this"] = native / r["sps"]
        print(f"{r['backend']:26s} {r['workers']:40s} {r['env_steps']:>10,d} {r['sps']:>12,.0f} "
              f"{r['startup_s']:>11.1f} {r['native_over_this']:>13.1f}x")
    best = max(rows[2:], key=lambda r: r["sps"])
    print(f"(RLlib start-up = building the algorithm; starting Ray itself took another {ray_startup:.1f} s)")
    print(f"\nratio native (1 process) / RLlib (best RLlib setting, {best['backend']}, {best['workers']}): "
          f"{native / best['sps']:.1f}x; native with its default 2 processes: {rows[1]['sps'] / best['sps']:.1f}x")
    if a.json:
        a.json.write_text(json.dumps({"scenario": a.scenario, "cpus": os.cpu_count(), "ray_startup_s": ray_startup,
                                       "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
