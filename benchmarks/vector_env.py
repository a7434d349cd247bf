"""Gymnasium vector env speed: ``make_vec("villages/Focal-v0")`` over the batched engine
against Gymnasium's ``SyncVectorEnv`` of single ``FocalEnv`` worlds, env-steps per second of
this process's CPU time (random legal actions, sampling included).

    .venv/bin/python benchmarks/vector_env.py [--num-envs 64] [--steps 150]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import gymnasium  # noqa: E402
import numpy as np  # noqa: E402

import villages  # noqa: E402,F401  (registers the ids)


def env_steps_per_second(envs, steps: int) -> float:
    _, info = envs.reset(seed=0)
    rng = np.random.default_rng(0)
    start = time.process_time()
    for _ in range(steps):
        legal = info["action_mask"].astype(bool)
        _, _, _, _, info = envs.step((rng.random(legal.shape) * legal).argmax(1))
    return envs.num_envs * steps / (time.process_time() - start)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-envs", type=int, default=64)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--scenario", default="training")
    a = ap.parse_args()
    warnings.filterwarnings("ignore")
    for mode in ("vector_entry_point", "sync"):
        envs = gymnasium.make_vec("villages/Focal-v0", num_envs=a.num_envs, vectorization_mode=mode,
                                  scenario=a.scenario)
        steps = a.steps if mode == "vector_entry_point" else max(1, a.steps // 5)
        print(f"{type(envs).__name__:16s} {a.num_envs} worlds: {env_steps_per_second(envs, steps):9,.0f} env-steps/s")


if __name__ == "__main__":
    main()
