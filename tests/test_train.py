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
from villages.validation import InputError

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


def _start_run(args: Args, out: Path) -> subprocess.Popen:
    script = textwrap.dedent(f"""
        from pathlib import Path
        from villages.train.ppo import Args, train
        train(Args(**{dataclasses.asdict(args)!r}), Path({str(out)!r}), log=lambda *_: None)
    """)
    return subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_when(proc: subprocess.Popen, ready) -> None:
    """SIGKILL the run (and its helper process) as soon as ``ready()``."""
    try:
        deadline = time.monotonic() + 300  # a guard against a hung run, generous for a loaded machine
        while not ready():
            assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()}"
            assert time.monotonic() < deadline, "the run made no progress within 300 s"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.stderr.close()


def _n_rows(out: Path) -> int:
    path = out / "metrics.jsonl"
    return path.read_text().count("\n") if path.exists() else 0


def no_speed(r: list[dict]) -> list[dict]:
    return [{k: v for k, v in x.items() if k != "charts/SPS"} for x in r]  # (wall-clock speed is not a result)


@pytest.fixture(scope="module")
def resumable_reference(tmp_path_factory):
    """The uninterrupted run the killed ones must reproduce: checkpoints every 3 updates of 16 ticks
    (so most are mid-episode: episodes are 150 ticks) and one episode end on the way."""
    args = tiny(seed=5, checkpoint_every=3)
    out = tmp_path_factory.mktemp("reference")
    train(args, out, log=lambda *_: None)
    return args, out


@pytest.mark.timeout(600)  # two trainings (killed, resumed) in subprocesses: slow on a loaded machine
@pytest.mark.parametrize("kill_after_rows", [1, 5, 11])
def test_killed_run_resumes_exactly(resumable_reference, tmp_path, kill_after_rows):
    """SIGKILL at some moment (before the first checkpoint; between checkpoints mid-episode; after an
    episode ended), then --resume: the same final weights and the same metrics.jsonl, each update once."""
    args, reference = resumable_reference
    out = tmp_path / "killed"
    _kill_when(_start_run(args, out), lambda: _n_rows(out) >= kill_after_rows)
    assert not (out / "final.pt").exists(), "the run finished before the kill: nothing was tested"
    killed_at = _n_rows(out)
    log = []
    final = train(args, out, resume=True, log=log.append)
    a, b = weights(reference / "final.pt"), weights(final)
    assert all(torch.equal(a[k], b[k]) for k in a), f"weights differ after a kill at row {killed_at} ({log})"
    assert no_speed(rows(out)) == no_speed(rows(reference)), log
    assert not list(out.glob(".*.tmp")), "a temporary file was left behind"


def test_resume_refuses_different_arguments(resumable_reference, tmp_path):
    args, reference = resumable_reference
    out = tmp_path / "run"
    out.mkdir()
    for name in ("args.json", "checkpoint.pt"):
        (out / name).write_bytes((reference / name).read_bytes())
    with pytest.raises(InputError) as info:
        train(dataclasses.replace(args, seed=6, learning_rate=3e-3), out, resume=True, log=lambda *_: None)
    msg = str(info.value)
    assert "seed 6 (given) vs 5 (the run's)" in msg and "learning_rate 0.003 (given) vs 0.002" in msg, msg
    res = CliRunner().invoke(app, ["train", "--resume", "--out", str(out), "--seed", "9"])
    assert res.exit_code == 2 and "seed 9 (given) vs 5 (the run's)" in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1, res.output
    res = CliRunner().invoke(app, ["train", "--resume", "--out", str(out), "--seed", "5"])  # the run's own: fine
    assert res.exit_code == 0 and f"wrote {out / 'final.pt'}" in res.output, res.output
    a, b = weights(reference / "final.pt"), weights(out / "final.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_second_run_into_a_live_runs_folder_is_refused(tmp_path):
    out = tmp_path / "busy"
    proc = _start_run(tiny(seed=1, total_steps=1 << 20), out)
    try:
        deadline = time.monotonic() + 60
        while not (out / "args.json").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the first run did not start"
            time.sleep(0.05)
        with pytest.raises(InputError, match=f"pid {proc.pid}.*another --out"):
            train(tiny(seed=2), out, log=lambda *_: None)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()


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


def test_a_final_model_is_not_a_resume_checkpoint(tiny_run, tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes((tiny_run / "final.pt").read_bytes())
    with pytest.raises(CheckpointError, match="not a resumable training checkpoint.*final.pt holds the model only"):
        train(tiny(), tmp_path, resume=True, log=lambda *_: None)


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
