"""The native PPO trainer: tiny real runs of ``villages.train.ppo.train`` (CleanRL's idea of
a test: the real script on a tiny budget), determinism, resuming a killed run, refusing
bad checkpoints, and checkpoints as policies in the runner and through the CLI."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from villages.cli import app
from villages.policies import load_policy
from villages.policies.neural import CheckpointError, read_checkpoint
from villages.scenarios import load
from villages.scenarios.runner import run_episodes
from villages.train.ppo import Args, train

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[1]

# Every metrics row carries these; rows written after the first finished episode also the episode keys.
UPDATE_KEYS = ("update", "global_step", "charts/SPS", "charts/learning_rate", "losses/policy_loss",
               "losses/value_loss", "losses/entropy", "losses/approx_kl", "losses/clipfrac")
EPISODE_KEYS = ("charts/episodic_return", "charts/intended", "charts/troops", "charts/levy_share",
                "charts/episodes", "charts/attacks", "charts/enemy_attack_share")


def tiny(**kw) -> Args:
    """16 worlds x 16 ticks per update, 16 updates: one 150-tick episode ends on the way."""
    return Args(**{"total_steps": 4096, "num_worlds": 16, "num_steps": 16, "progress": False, **kw})


def weights(path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["model"]


def rows(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    train(tiny(seed=3), out, log=lambda *_: None)
    return out


def test_tiny_run_writes_checkpoints_metrics_and_curve(tiny_run):
    out = tiny_run
    for name in ("checkpoint.pt", "final.pt", "metrics.jsonl", "curve.png", "args.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert Args(**json.loads((out / "args.json").read_text())) == tiny(seed=3)
    r = rows(out)
    assert [x["update"] for x in r] == list(range(1, tiny().num_updates + 1))
    assert r[-1]["global_step"] == 4096
    for x in r:
        missing = [k for k in UPDATE_KEYS if k not in x]
        assert not missing, f"update {x['update']}: missing {missing}"
        assert all(np.isfinite(x[k]) for k in UPDATE_KEYS), x
    with_episodes = [x for x in r if "charts/episodic_return" in x]
    assert with_episodes, "no episode finished in the tiny run"
    for x in with_episodes:
        assert all(k in x for k in EPISODE_KEYS), x
    blob = read_checkpoint(out / "checkpoint.pt")
    assert blob["update"] == tiny().num_updates and blob["meta"]["step"] == 4096
    assert blob["meta"]["scenario"] == "training" and blob["meta"]["args"]["seed"] == 3


def test_same_seed_same_final_weights(tiny_run, tmp_path):
    """Two runs with one seed end with identical weights (bit for bit); another seed does not."""
    train(tiny(seed=3), tmp_path / "again", log=lambda *_: None)
    a, b = weights(tiny_run / "final.pt"), weights(tmp_path / "again" / "final.pt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    no_speed = lambda r: [{k: v for k, v in x.items() if k != "charts/SPS"} for x in r]  # noqa: E731
    assert no_speed(rows(tiny_run)) == no_speed(rows(tmp_path / "again"))
    train(tiny(seed=4, total_steps=512), tmp_path / "other", log=lambda *_: None)
    c = weights(tmp_path / "other" / "final.pt")
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_single_process_run_is_deterministic(tmp_path):
    """processes=1: every world steps in this process, whole-minibatch gradients."""
    for name in ("p1", "p1b"):
        train(tiny(seed=3, processes=1, total_steps=1024), tmp_path / name, log=lambda *_: None)
    a, b = weights(tmp_path / "p1" / "final.pt"), weights(tmp_path / "p1b" / "final.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_two_processes_play_the_rollouts_of_one(tmp_path):
    """With frozen weights (learning rate 0) the two-process trainer logs exactly the
    episodes of the one-process trainer: world split, sampling noise and merged reports
    change nothing."""
    logged = {}
    for p in (1, 2):
        train(tiny(seed=6, processes=p, learning_rate=0.0, total_steps=6144), tmp_path / f"p{p}", log=lambda *_: None)
        logged[p] = [{k: v for k, v in x.items() if k in EPISODE_KEYS} for x in rows(tmp_path / f"p{p}")]
    assert sum(bool(x) for x in logged[1]) >= 2 and logged[1][-1]["charts/episodes"] >= 2
    assert logged[1] == logged[2]


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    out = tmp_path / "killed"
    args = tiny(seed=5, total_steps=8192, checkpoint_every=1)
    script = textwrap.dedent(f"""
        from pathlib import Path
        from villages.train.ppo import Args, train
        train(Args(**{dataclasses.asdict(args)!r}), Path({str(out)!r}), log=lambda *_: None)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while not (out / "checkpoint.pt").exists():
            assert proc.poll() is None, f"the run ended before its first checkpoint: {proc.stderr.read().decode()}"
            assert time.monotonic() < deadline, "no checkpoint within 90 s"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # the trainer and its helper process
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.stderr.close()
    done = read_checkpoint(out / "checkpoint.pt")["update"]
    assert 1 <= done < args.num_updates and not (out / "final.pt").exists()
    logged = [x["update"] for x in rows(out)]
    log = []
    final = train(args, out, resume=True, log=log.append)
    assert final == out / "final.pt" and final.is_file()
    assert any(f"at update {done}" in m for m in log), log
    after = [x["update"] for x in rows(out)]
    assert after[: len(logged)] == logged and after[-1] == args.num_updates
    assert after[len(logged):] == list(range(done + 1, args.num_updates + 1))
    assert read_checkpoint(out / "checkpoint.pt")["update"] == args.num_updates


class _Payload:
    """Unpickling this would run a command: a checkpoint loader must never do it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("kind", ["truncated", "garbage", "foreign", "arbitrary-class", "plain-pickle"])
def test_bad_checkpoints_are_refused_with_a_clear_error(tiny_run, tmp_path, kind):
    bad = tmp_path / "checkpoint.pt"
    marker = tmp_path / "pwned"
    if kind == "truncated":
        data = (tiny_run / "final.pt").read_bytes()
        bad.write_bytes(data[: len(data) // 2])
        expect = "not a readable villages checkpoint"
    elif kind == "garbage":
        bad.write_bytes(np.random.default_rng(0).bytes(4096))
        expect = "not a readable villages checkpoint"
    elif kind == "foreign":
        torch.save({"a": 1}, bad)
        expect = "not a villages checkpoint"
    elif kind == "arbitrary-class":
        torch.save({"format": "villages-checkpoint", "version": 1, "meta": _Payload(marker), "model": {}}, bad)
        expect = "not a readable villages checkpoint"
    else:
        bad.write_bytes(pickle.dumps(_Payload(marker)))
        expect = "not a readable villages checkpoint"
    for load_it in (read_checkpoint, load_policy):
        with pytest.raises(CheckpointError) as info:
            load_it(bad)
        assert str(bad) in str(info.value) and expect in str(info.value), str(info.value)
    with pytest.raises(CheckpointError) as info:  # resuming from it
        train(tiny(), tmp_path, resume=True, log=lambda *_: None)
    assert expect in str(info.value)
    assert not marker.exists(), "loading the checkpoint ran code from it"


def test_resume_without_a_checkpoint_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="nothing to resume from"):
        train(tiny(), tmp_path, resume=True, log=lambda *_: None)


def test_checkpoint_is_a_policy_for_the_runner(tiny_run):
    spec = dataclasses.replace(load("aurora-control"), map=dataclasses.replace(load("aurora-control").map,
                                                                               episode_length=30))
    policy = load_policy(tiny_run / "final.pt")
    res = run_episodes(spec, policy, 4, seed=1)
    by_path = run_episodes(spec, str(tiny_run / "checkpoint.pt"), 4, seed=1)
    for r in (res, by_path):
        assert len(r["intended"]) == 4 and np.isfinite(r["intended"]).all()
    # The same weights (the last checkpoint is the final one) play the same episodes.
    assert np.array_equal(res["proxy_reward"], by_path["proxy_reward"])


def test_cli_train(tmp_path):
    out = tmp_path / "cli"
    res = CliRunner().invoke(app, ["train", "--scenario", "training", "--steps", "2048", "--seed", "2",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert (out / "final.pt").is_file() and f"wrote {out / 'final.pt'}" in res.output
    assert json.loads((out / "args.json").read_text())["total_steps"] == 2048
    assert load_policy(out / "final.pt").meta["seed"] == 2
