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
   ``--eval-every`` updates) with their wall time, and afterwards each is played in
   ``aurora-control`` (``run_episodes(spec, checkpoint, --episodes, seed=0)``, stochastic
   policy). Competent = mean intended score >= 80% of the scripted raider's on the same
   episodes. The run stops at ``--steps`` env-steps (the default run is 600k) or once a
   competent checkpoint has been seen *and* ``--sps-steps`` have passed (the evaluation
   then runs beside the training, niced, only for the stop decision; the reported times
   are training wall times).

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
    p.add_argument("--steps", type=int, default=Args().total_steps, help="stop the run here at the latest")
    p.add_argument("--sps-steps", type=int, default=100_000, help="env-steps of the throughput figure")
    p.add_argument("--eval-every", type=int, default=5, help="updates between evaluated checkpoints")
    p.add_argument("--episodes", type=int, default=32, help="aurora-control episodes per evaluation")
    p.add_argument("--env-ticks", type=int, default=300, help="ticks of the env-alone measurement")
    p.add_argument("--keep", type=Path, default=None, help="keep the run directory here")
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
    evaluated: dict[Path, float] = {}
    competent_at = None
    try:
        while proc.poll() is None:
            time.sleep(0.2)
            step = watcher.rows[-1][1]["global_step"] if watcher.rows else 0
            if step >= a.steps:
                break
            if competent_at is None:  # evaluate new checkpoints beside the run, niced
                for when, path in list(watcher.ckpts):
                    if path not in evaluated:
                        evaluated[path] = _niced_eval(path, a.episodes)
                        if evaluated[path] >= target:
                            competent_at = (when, path)
                        break
            if competent_at is not None and step >= a.sps_steps:
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
        score = evaluated.get(path)
        if score is None:
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
    print(f"{'  (over the first env-steps)':44s} {first[1]['global_step']:14,d}")
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
    shutil.rmtree(work, ignore_errors=True)


def _niced_eval(path: Path, episodes: int) -> float:
    """Evaluate a checkpoint in a niced subprocess (beside the training run)."""
    code = ("import sys, numpy as np\nfrom villages.scenarios.runner import run_episodes\n"
            f"print(float(np.mean(run_episodes('aurora-control', {str(path)!r}, {episodes}, seed=0)['intended'])))\n")
    res = subprocess.run(["nice", "-n", "19", sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"evaluating {path} failed:\n{res.stderr}")
    return float(res.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
