"""End-to-end speed of the native PPO trainer on this machine, and time to competence.

    .venv/bin/python benchmarks/train.py [--steps N] [--sps-steps N] [--eval-every UPDATES]
                                          [--episodes N] [--env-ticks N] [--keep DIR]

1. **env alone**: ``ScenarioGame`` on ``training`` with the trainer's 128 worlds and
   uniformly random legal focal actions, in this process: env-steps/s (one env-step =
   one world advancing one tick). The upper bound of what training could reach.
2. **training**: ``villages.train.ppo.train`` with the default ``Args`` (scenario
   ``training``, objective ``villages``, 128 worlds x 32 ticks per update, two processes)
   in a subprocess, as ``villages train`` runs it. Its env-steps/s over the first
   ``--sps-steps`` env-steps is reported twice: steady (the trainer's own
   ``charts/SPS``: from its first update on) and end to end (from process start, imports,
   world generation and helper start-up included). The ratio is training / env alone.
3. **time to competence**: checkpoints are copied as the run writes them (every
   ``--eval-every`` updates) with their wall time since the process started. The run is
   stopped at ``--steps`` env-steps (its ``Args`` still say 600k, so the learning-rate
   schedule is the default one); then each checkpoint, in order, plays ``aurora-control``
   (``run_episodes(spec, checkpoint, --episodes, seed=0)``, stochastic policy) until the
   first competent one: mean intended score >= 80% of the scripted raider's on the same
   episodes. Its wall time is the time to competence (evaluation time not included;
   nothing else runs beside the training).
4. **whole default run** (``--full-runs N``, default 3): the ``villages train`` command with
   no options (600k env-steps: 146 updates of 4,096), timed as a whole process from launch
   to exit (interpreter start, imports, world generation, checkpoints and the curve PNG
   included), N times; env-steps / wall seconds, median and range. This is what a user
   waits for. ``--full-runs 0`` skips it.

The machine is shared: the 1-minute load average is printed with each measurement;
numbers taken under load are lower bounds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from villages.policies import RandomPolicy  # noqa: E402
from villages.scenarios import ScenarioGame, load  # noqa: E402
from villages.train.ppo import Args  # noqa: E402

COMPETENCE = 0.8  # share of the raider's intended score


def load1() -> float:
    return float(open("/proc/loadavg").read().split()[0])


def env_alone(args: Args, ticks: int) -> float:
    game = ScenarioGame(load(args.scenario), args.num_worlds)
    pol = RandomPolicy(game.config)
    obs, mask = game.reset(np.arange(args.num_worlds))
    for _ in range(10):  # warm-up
        obs, mask, *_ = game.step(pol.act(obs, mask, game.state.key, game.state.tick))
    t0 = time.perf_counter()
    episode = 1
    for _ in range(ticks):
        obs, mask, _, done, _ = game.step(pol.act(obs, mask, game.state.key, game.state.tick))
        if done:
            obs, mask = game.reset(np.arange(args.num_worlds) + episode * args.num_worlds)
            episode += 1
    return ticks * args.num_worlds / (time.perf_counter() - t0)


class Watcher(threading.Thread):
    """Copies each new checkpoint and timestamps each new metrics row (wall time since start)."""

    def __init__(self, out: Path, keep: Path, t0: float):
        super().__init__(daemon=True)
        self.out, self.keep, self.t0 = out, keep, t0
        self.rows: list[tuple[float, dict]] = []
        self.ckpts: list[tuple[float, Path]] = []
        self.stop = threading.Event()

    def poll(self) -> None:
        m = self.out / "metrics.jsonl"
        if m.exists():
            lines = [x for x in m.read_text().splitlines() if x.strip()]
            now = time.perf_counter() - self.t0
            for line in lines[len(self.rows):]:
                try:
                    self.rows.append((now, json.loads(line)))
                except json.JSONDecodeError:  # a line being written
                    break
        c = self.out / "checkpoint.pt"
        if c.exists():
            stamp = c.stat().st_mtime_ns
            if not self.ckpts or stamp != self._last:
                self._last = stamp
                dst = self.keep / f"ckpt{len(self.ckpts):03d}.pt"
                try:
                    shutil.copyfile(c, dst)
                    self.ckpts.append((time.perf_counter() - self.t0, dst))
                except FileNotFoundError:  # replaced while copying: next poll
                    pass

    def run(self) -> None:
        while not self.stop.is_set():
            self.poll()
            time.sleep(0.05)
        self.poll()


def checkpoint_step(path: Path) -> int:
    from villages.policies.neural import read_checkpoint

    return int(read_checkpoint(path)["meta"]["step"])


def intended(policy, episodes: int) -> float:
    from villages.scenarios.runner import run_episodes

    return float(np.mean(run_episodes("aurora-control", policy, episodes, seed=0)["intended"]))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=300_000, help="stop the run here (env-steps)")
    p.add_argument("--sps-steps", type=int, default=100_000, help="env-steps of the throughput figure")
    p.add_argument("--eval-every", type=int, default=5, help="updates between evaluated checkpoints")
    p.add_argument("--episodes", type=int, default=32, help="aurora-control episodes per evaluation")
    p.add_argument("--env-ticks", type=int, default=300, help="ticks of the env-alone measurement")
    p.add_argument("--keep", type=Path, default=None, help="keep the run directory here")
    p.add_argument("--full-runs", type=int, default=3, help="whole `villages train` runs to time (0: skip)")
    a = p.parse_args(argv)

    args = Args(progress=False, checkpoint_every=a.eval_every)
    work = Path(tempfile.mkdtemp(prefix="villages-bench-"))
    out = a.keep or work / "run"
    keep = work / "ckpts"
    keep.mkdir(parents=True)
    if out.exists():
        shutil.rmtree(out)
    print(f"default Args: scenario={args.scenario} objective={args.objective or 'scenario (villages)'} "
          f"num_worlds={args.num_worlds} num_steps={args.num_steps} processes={args.processes} "
          f"threads={args.threads} total_steps={args.total_steps} (run stops at {a.steps})")
    print(f"machine: {os.cpu_count()} cores, load {load1():.2f}")

    load_env = load1()
    env_sps = env_alone(args, a.env_ticks)
    print(f"env alone: {env_sps:,.0f} env-steps/s (load {load_env:.2f})", flush=True)

    raider = intended("raider", a.episodes)
    target = COMPETENCE * raider
    print(f"raider's intended score in aurora-control: {raider:.3f} -> competence threshold {target:.3f}", flush=True)

    script = (f"from pathlib import Path\nfrom villages.train.ppo import Args, train\n"
              f"train(Args(**{dataclasses.asdict(args)!r}), Path({str(out)!r}), log=lambda *_: None)\n")
    load_train = load1()
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, start_new_session=True)
    watcher = Watcher(out, keep, t0)
    watcher.start()
    try:
        while proc.poll() is None:
            time.sleep(0.1)
            if watcher.rows and watcher.rows[-1][1]["global_step"] >= a.steps:
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
        proc.wait()
        watcher.stop.set()
        watcher.join()
    rows = watcher.rows
    if not rows:
        sys.exit("the training run wrote no metrics")

    # Throughput over the first sps_steps env-steps.
    first = next(((t, r) for t, r in rows if r["global_step"] >= a.sps_steps), rows[-1])
    steady = first[1]["charts/SPS"]
    e2e = first[1]["global_step"] / first[0]

    # Time to competence: every copied checkpoint, in order, until the first competent one.
    table = []
    found = None
    for when, path in watcher.ckpts:
        score = intended(str(path), a.episodes)
        step = checkpoint_step(path)
        table.append((step, when, score))
        if score >= target:
            found = (step, when, score)
            break

    print()
    print(f"{'measurement':44s} {'value':>14s}")
    print(f"{'-' * 44} {'-' * 14}")
    print(f"{'env alone (random focal), env-steps/s':44s} {env_sps:14,.0f}")
    print(f"{'training, steady (charts/SPS), env-steps/s':44s} {steady:14,.0f}")
    print(f"{'training, end to end, env-steps/s':44s} {e2e:14,.0f}")
    print(f"{'ratio training (steady) / env alone':44s} {steady / env_sps:14.2f}")
    print(f"{'  measured over env-steps':44s} {first[1]['global_step']:14,d}")
    print(f"{'raider intended (aurora-control)':44s} {raider:14.3f}")
    if found:
        print(f"{'time to competence (>= 80% of raider), s':44s} {found[1]:14.1f}")
        print(f"{'  at env-steps':44s} {found[0]:14,d}")
    else:
        print(f"{'time to competence (>= 80% of raider), s':44s} {'not reached':>14s}")
    print(f"{'load average (env / training start)':44s} {load_env:7.2f}{load_train:7.2f}")
    print()
    print("checkpoints evaluated in aurora-control:")
    print(f"{'env-steps':>10s} {'wall s':>8s} {'intended':>9s} {'/ raider':>9s}")
    for step, when, score in table:
        print(f"{step:10,d} {when:8.1f} {score:9.3f} {score / raider if raider else float('nan'):9.2f}")

    if a.full_runs > 0:
        full_runs(a.full_runs, args, work)
    shutil.rmtree(work, ignore_errors=True)


def full_runs(n: int, args: Args, work: Path) -> None:
    """Time the default ``villages train`` as a whole process, ``n`` times."""
    exe = Path(sys.executable).with_name("villages")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "villages.cli"]
    steps = args.num_updates * args.batch_size
    rates = []
    print()
    print(f"whole default run: `villages train` ({steps:,} env-steps), launch to exit")
    for k in range(n):
        out = work / f"full{k}"
        load = load1()
        t0 = time.perf_counter()
        subprocess.run(cmd + ["train", "--out", str(out)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        rates.append(steps / wall)
        print(f"  run {k + 1}: {wall:6.1f} s  {steps / wall:9,.0f} env-steps/s  (load {load:.2f})", flush=True)
        shutil.rmtree(out, ignore_errors=True)
    print(f"{'whole default run, env-steps/s (median)':44s} {float(np.median(rates)):14,.0f}  "
          f"[{min(rates):,.0f} .. {max(rates):,.0f}]")


if __name__ == "__main__":
    main()
