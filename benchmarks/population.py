"""Seeds trained per hour: the single-seed trainer against the population trainer, in one job.

    .venv/bin/python benchmarks/population.py [--members 5] [--updates 30] [--budget 92160]
                                              [--num-worlds 16] [--demo-seeds 10]

What a researcher waits for is wall time to N trained seeds, so every row is a whole
process (interpreter start, imports, world generation, compile, checkpoints and curve
PNGs included), timed by this script, one after the other on an otherwise idle machine:

1. **single**: ``villages.train.ppo.train`` with ``processes=1`` (what ``villages demo``
   runs in each of its worker processes when it does not use populations), one seed.
2. **population**: ``train_population`` with ``--members`` seeds in one process
   (one batched pass of the network for all members), also with ``compile`` (torch.compile
   of the loss).

A ``compile`` row runs once first to fill torch's compile cache (its extra time is printed: a
user's first run pays it once per machine); the timed runs then reuse the cache.

Each process trains ``--updates`` updates of ``num_worlds x 32`` env-steps (the demo's
settings) and is run twice with different lengths, so that its fixed cost (start-up,
compile) and its cost per update come apart: seconds = fixed + updates x per_update. From
those, the time to train one seed at ``--budget`` env-steps and the seeds per hour *per
process* (per core) are printed, with the ratio against the single-seed trainer.

``--base-commit REV`` also times the rows ``--base-kinds`` with the code of commit REV (a
``git archive`` export, run by the same interpreter) in the same job: a change's speed-up
measured against its own baseline, under the same load.

``--demo-seeds N`` also times ``villages demo --n-seeds N`` as a whole process (into a
temporary folder): the figure the issue's 5-minute target is about.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed_process(code: str, root: Path = ROOT) -> float:
    """Seconds to run ``code`` in a fresh interpreter that imports ``villages`` from ``root``."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True, env={**os.environ, "PYTHONPATH": str(root)})
    return time.perf_counter() - t0


def export_commit(rev: str, dest: Path) -> Path:
    """The tree of commit ``rev`` of this repository, written to ``dest`` (a baseline to time in the same job)."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


V1 = {"budget": 300_000, "num_worlds": 128, "learning_rate": 1e-3, "hidden": 64, "update_epochs": 3}
"""The single-seed trainer's settings before the population trainer and the 150k budget (row ``single@v1``)."""


def run_code(kind: str, members: int, updates: int, num_worlds: int, out: Path) -> str:
    lr = (f", learning_rate={V1['learning_rate']}, hidden={V1['hidden']}, update_epochs={V1['update_epochs']}"
          if "@v1" in kind else "")
    args = (f"Args(total_steps={updates * num_worlds * 32}, num_worlds={num_worlds}, processes=1, progress=False, "
            f"tensorboard=False, checkpoint_every=10**9{lr})")
    if kind.startswith("single"):
        return (f"from pathlib import Path\nfrom villages.train.ppo import Args, train\n"
                f"train({args}, Path({str(out)!r}), log=lambda *_: None)\n")
    compile = "+compile" in kind
    runs = [{"seed": s, "out": str(out / f"seed{s}")} for s in range(members)]
    return (f"from pathlib import Path\nfrom villages.train.ppo import Args\n"
            f"from villages.train.population import train_population\n"
            f"train_population({args}, {runs!r}, Path({str(out)!r}), compile={compile}, "
            f"log=lambda *_: None)\n")


def load1() -> float:
    return float(open("/proc/loadavg").read().split()[0])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--members", type=int, default=5, help="seeds per population")
    p.add_argument("--updates", type=int, default=30,
                   help="updates of the longer of the two runs per row (the shorter: a third)")
    p.add_argument("--budget", type=int, default=None, help="env-steps per seed (default: the demo's)")
    p.add_argument("--num-worlds", type=int, default=None, help="worlds per seed (default: the demo's)")
    p.add_argument("--kinds", default="single@v1,single,population,population+compile",
                   help="rows: single (the single-seed trainer), single@v1 (it with the old 300k / 128 worlds / "
                        "lr 1e-3 / hidden 64 / 3 epochs), population, population+compile")
    p.add_argument("--base-commit", default=None,
                   help="also time --base-kinds with the code of this commit (git archive), as rows KIND@COMMIT")
    p.add_argument("--base-kinds", default="population", help="the rows to time at --base-commit")
    p.add_argument("--demo-seeds", type=int, default=0, help="also time `villages demo --n-seeds N` (0: skip)")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from villages.experiments.demo import DemoConfig

    demo = DemoConfig()
    budget = a.budget or demo.steps
    worlds = a.num_worlds or demo.num_worlds
    short = max(1, a.updates // 3)
    print(f"{os.cpu_count()} cores, load {load1():.2f}; budget {budget:,} env-steps per seed, {worlds} worlds x 32 "
          f"steps per update; each row: {short} and {a.updates} updates", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="villages-pop-bench-") as tmp:
        kinds = [(k, ROOT) for k in a.kinds.split(",")]
        if a.base_commit:
            base_root = export_commit(a.base_commit, Path(tmp) / "base")
            kinds += [(f"{k}@{a.base_commit}", base_root) for k in a.base_kinds.split(",")]
        for kind, root in kinds:
            m = 1 if kind.startswith("single") else a.members
            w, b = (V1["num_worlds"], V1["budget"]) if "@v1" in kind else (worlds, budget)
            cold = None
            if "+compile" in kind:  # the first compile fills torch's on-disk cache; later processes reuse it
                cold = timed_process(run_code(kind, m, short, w, Path(tmp) / f"{kind}-warmup"), root)
            t = [timed_process(run_code(kind, m, u, w, Path(tmp) / f"{kind}-{u}"), root) for u in (short, a.updates)]
            if cold is not None:
                print(f"  {kind}: the first process (cold compile cache) took {cold - t[0]:.1f} s more", flush=True)
            per_update = (t[1] - t[0]) / (a.updates - short)
            fixed = max(0.0, t[0] - short * per_update)
            updates = max(1, b // (w * 32))
            per_seed = (fixed + updates * per_update) / m
            rows.append({"kind": kind, "members": m, "budget": b, "num_worlds": w, "fixed_s": fixed,
                         "per_update_s": per_update, "env_steps_per_s": m * w * 32 / per_update,
                         "seconds_per_seed": per_seed,
                         "seeds_per_hour": 3600 / per_seed, "load": load1()})
            print(f"  {kind}: fixed {fixed:.1f} s, {per_update:.2f} s/update", flush=True)
        demo_s = None
        if a.demo_seeds:
            demo_s = timed_process(f"from pathlib import Path\nfrom villages.experiments.demo import run_demo\n"
                                   f"run_demo(out=Path({str(Path(tmp) / 'demo')!r}), n_seeds={a.demo_seeds})\n")
    base = rows[0]["seeds_per_hour"] if rows else None
    print()
    print(f"{'trainer':22s} {'members':>7s} {'budget':>8s} {'worlds':>6s} {'fixed s':>8s} {'s/update':>9s} "
          f"{'env-steps/s':>12s} {'s per seed':>11s} {'seeds/h/core':>13s} {'vs ' + rows[0]['kind']:>14s}")
    for r in rows:
        print(f"{r['kind']:22s} {r['members']:>7d} {r['budget']:>8,d} {r['num_worlds']:>6d} {r['fixed_s']:>8.1f} "
              f"{r['per_update_s']:>9.2f} {r['env_steps_per_s']:>12,.0f} {r['seconds_per_seed']:>11.1f} "
              f"{r['seeds_per_hour']:>13.1f} {r['seeds_per_hour'] / base:>13.2f}x")
    print("(per core: the demo runs one such process per core; seeds/h of the machine = that x cores)")
    if demo_s is not None:
        print(f"\nvillages demo --n-seeds {a.demo_seeds}: {demo_s:.0f} s ({demo_s / 60:.1f} min) as a whole process")
    if a.json:
        a.json.write_text(json.dumps({"rows": rows, "demo_seconds": demo_s, "budget": budget, "num_worlds": worlds},
                                     indent=1))


if __name__ == "__main__":
    main()
