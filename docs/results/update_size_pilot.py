"""The update-size pilot of docs/results/budget.md: which PPO settings learn this game in fewer env-steps?

    python docs/results/update_size_pilot.py run VARIANT STEPS [--out runs/update-size]   # one population
    python docs/results/update_size_pilot.py table [--out runs/update-size]               # the markdown table

Each run trains one population (``villages.train.population``, one process): 3 ``villages`` agents on
``training``, 3 on ``diverse-training`` and 2 ``troops`` agents, seeds 100-102 (not the demo's 0-9, which
the 10-seed confirmations use). A variant changes the native trainer's settings (``VARIANTS``); everything
else is the default of the commit it runs at. The table reads each member's training curve: the mean
intended score of its last four logged updates, in its own training scenario. It is a screen, not a
verdict: the 10-seed demos with the full evaluation decide (budget.md).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

VARIANTS = {  # name -> NativeArgs fields (the rest: 64 worlds x 32 ticks, lr 2e-3, 3 epochs, 4 minibatches)
    "base": dict(num_worlds=64),
    "ent003": dict(num_worlds=64, ent_coef=0.003),
    "ent03": dict(num_worlds=64, ent_coef=0.03),
    "ep6": dict(num_worlds=64, update_epochs=6),
    "mb8": dict(num_worlds=64, num_minibatches=8),
    "lr4": dict(num_worlds=64, learning_rate=4e-3),
    "noanneal": dict(num_worlds=64, anneal_lr=False),
    "s16": dict(num_worlds=64, num_steps=16),
    "w32": dict(num_worlds=32),
    "w32lr3": dict(num_worlds=32, learning_rate=3e-3),
    "w32s16": dict(num_worlds=32, num_steps=16),
    "w16": dict(num_worlds=16),
    "w16lr3": dict(num_worlds=16, learning_rate=3e-3),
    "w16s16": dict(num_worlds=16, num_steps=16),
    "w8": dict(num_worlds=8),
}
MEMBERS = ([("villages", "training", "villages", s) for s in (100, 101, 102)]
           + [("diverse", "diverse-training", "villages", s) for s in (100, 101, 102)]
           + [("troops", "training", "troops", s) for s in (100, 101)])


def run(variant: str, steps: int, root: Path) -> dict:
    from villages.train.population import train_population
    from villages.train.ppo import Args

    out = root / f"{variant}-{steps}"
    base = Args(total_steps=steps, processes=1, progress=False, tensorboard=False, checkpoint_every=10**9)
    args = replace(base, **{"learning_rate": 2e-3, "num_steps": 32, **VARIANTS[variant]})  # (a variant may set either)
    runs = [dict(seed=s, scenario=scen, objective=obj, out=str(out / f"{kind}-{s}")) for kind, scen, obj, s in MEMBERS]
    t0 = time.perf_counter()
    train_population(args, runs, out / "population", log=lambda *_: None)
    res = {"variant": variant, "steps": steps, "wall_s": time.perf_counter() - t0}
    for r in runs:
        rows = [json.loads(line) for line in open(Path(r["out"]) / "metrics.jsonl") if "episodic_return" in line]
        res[Path(r["out"]).name] = float(np.mean([x["charts/intended"] for x in rows[-4:]]))
    (out / "result.json").write_text(json.dumps(res, indent=1))
    return res


def table(root: Path) -> str:
    lines = ["| variant | settings | env-steps | wall s (8 members) | villages agents: intended (per seed) | "
             "diverse agents: intended (per seed) |", "|---|---|---|---|---|---|"]
    results = [json.loads(f.read_text()) for f in root.glob("*/result.json")]
    for r in sorted(results, key=lambda r: (r["steps"], list(VARIANTS).index(r["variant"]))):
        settings = ", ".join(f"{k} {v:g}" for k, v in VARIANTS[r["variant"]].items())
        cells = []
        for kind in ("villages", "diverse"):
            v = [r[f"{kind}-{s}"] for s in (100, 101, 102)]
            cells.append(f"{np.mean(v):.2f} ({', '.join(f'{x:.2f}' for x in v)})")
        lines.append(f"| {r['variant']} | {settings} | {r['steps']:,} | {r['wall_s']:.0f} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=("run", "table"))
    p.add_argument("variant", nargs="?", choices=sorted(VARIANTS))
    p.add_argument("steps", nargs="?", type=int)
    p.add_argument("--out", type=Path, default=Path("runs/update-size"))
    a = p.parse_args()
    print(json.dumps(run(a.variant, a.steps, a.out)) if a.what == "run" else table(a.out))
