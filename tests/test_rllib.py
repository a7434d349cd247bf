"""RLlib backend and Ray Tune sweeps (``villages.train.rllib``, ``villages.experiments.ray_sweep``).

The Ray tests share one private local Ray instance (module fixture), started and stopped
here; after shutdown no raylet / gcs_server of its temp dir may be left running.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import pytest

from villages.scenarios import game_config, load

pytestmark = pytest.mark.ray


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            found.append(f"{p.name}: {cmd[:120]}")
    return found


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    from villages.train.rllib import ray_session

    session = ray_session(None, num_cpus=2)
    tmp = session.__enter__()
    assert tmp is not None and len(tmp) < 40, "the Ray temp dir must be short (unix socket path limit)"
    try:
        yield tmp
    finally:
        try:
            session.__exit__(None, None, None)
        finally:
            ray.shutdown()
    if sys.platform.startswith("linux"):
        deadline = time.time() + 20
        left = _processes_mentioning(tmp)
        while left and time.time() < deadline:
            time.sleep(0.5)
            left = _processes_mentioning(tmp)
        assert not [x for x in left if "raylet" in x or "gcs_server" in x], left
        assert not left, f"Ray processes left behind: {left}"
    assert not Path(tmp).exists(), "the Ray temp dir was not removed"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_module_wraps_project_net_and_masks():
    """No Ray session needed: the RLModule's forward is the project net's, masked."""
    pytest.importorskip("ray.rllib")
    import torch
    from ray.rllib.core.columns import Columns

    from villages.game import action_layout, observation_layout
    from villages.policies.neural import build_net
    from villages.pettingzoo_env import parallel_env
    from villages.train import rllib
    from villages.train.rllib import RLlibArgs, model_config, module_state_to_net_state

    env = parallel_env(scenario="training", agents="focal")
    cfg = game_config(load("training"))
    mod = rllib.VillagesTorchRLModule(observation_space=env.observation_space("focal_0"),
                                      action_space=env.action_space("focal_0"),
                                      model_config=model_config(RLlibArgs(), cfg))
    net = build_net("entity", observation_layout(cfg), action_layout(cfg), 64)
    net.load_state_dict(module_state_to_net_state(mod.state_dict()))  # strict 1:1 mapping
    obs, _ = env.reset(seed=3)
    o = obs["focal_0"]
    batch = {Columns.OBS: {"observation": torch.as_tensor(o["observation"])[None],
                           "action_mask": torch.as_tensor(o["action_mask"])[None]}}
    logits = mod.forward_exploration(batch)[Columns.ACTION_DIST_INPUTS][0]
    ref, value = net(torch.as_tensor(o["observation"])[None])
    legal = torch.as_tensor(o["action_mask"]).bool()
    assert torch.allclose(logits[legal], ref[0][legal])
    assert (logits[~legal] <= -1e8).all()
    train_out = mod.forward_train(batch)
    assert torch.allclose(mod.compute_values(batch, train_out[Columns.EMBEDDINGS]), value)
    assert torch.allclose(mod.compute_values(batch), value)
    probs = torch.softmax(logits, -1)
    assert float(probs[~legal].sum()) == 0.0


def test_ray_is_not_imported_by_the_local_path():
    code = ("import sys, villages, villages.train.rllib, villages.experiments.ray_sweep, villages.train.ppo;"
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_rllib_train_export_and_evaluate(ray_local, tmp_path):
    """A few RLlib PPO iterations on the running local Ray (one remote env runner), export
    to the project format, load without Ray, evaluate with the scenario runner."""
    from villages.policies import load_policy
    from villages.policies.neural import NeuralPolicy, read_checkpoint
    from villages.scenarios.runner import run_episodes
    from villages.train.rllib import RLlibArgs, train

    out = tmp_path / "rl"
    args = RLlibArgs(scenario="training", seed=1, total_steps=384, train_batch_size=128, minibatch_size=64,
                     num_epochs=1, num_env_runners=1, num_envs_per_env_runner=2, checkpoint_every=2, progress=False)
    final = train(args, out, log=lambda *_: None)
    assert final == out / "final.pt" and final.is_file() and (out / "checkpoint.pt").is_file()
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["update"] for r in rows] == [1, 2, 3]
    assert rows[-1]["global_step"] >= 384 and rows[-1]["charts/SPS"] > 0
    assert all(np.isfinite(r["losses/policy_loss"]) for r in rows)
    meta = read_checkpoint(final)["meta"]
    assert meta["backend"] == "rllib" and meta["arch"] == "entity" and meta["scenario"] == "training"
    assert meta["step"] == rows[-1]["global_step"] and meta["seed"] == 1
    cfg = game_config(load("training"))
    assert (meta["n_rows"], meta["n_alliances"], meta["banner_dim"]) == (cfg.n_rows, cfg.n_alliances, cfg.banner_dim)
    # trained: the exported weights are not the ones the periodic export saw first
    first = read_checkpoint(out / "checkpoint.pt")["model"]
    last = read_checkpoint(final)["model"]
    assert any(not np.array_equal(first[k].numpy(), last[k].numpy()) for k in last)
    pol = load_policy(final)
    assert isinstance(pol, NeuralPolicy)
    r = run_episodes("training", pol, n_episodes=4, seed=0)
    assert r.n_episodes == 4 and np.isfinite(r["intended"]).all()
    # the runner also accepts the path (as `villages eval` does)
    assert run_episodes("training", str(final), n_episodes=2, seed=0).n_episodes == 2


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_rllib_cli(ray_local, tmp_path):
    """`villages train --backend rllib` (sampling in the driver)."""
    from typer.testing import CliRunner

    from villages.cli import app

    out = tmp_path / "cli"
    res = CliRunner().invoke(app, ["train", "--backend", "rllib", "--scenario", "training", "--steps", "100",
                                   "--num-env-runners", "0", "--out", str(out)])
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert (out / "final.pt").is_file() and f"wrote {out / 'final.pt'}" in res.output


def test_tune_grid_of_native_runs(ray_local, tmp_path):
    from villages.experiments.ray_sweep import run_grid_on_ray
    from villages.policies import load_policy

    configs = [dict(scenario="training", seed=s, total_steps=2560, num_worlds=16, num_steps=16) for s in (0, 1)]
    res = run_grid_on_ray(configs, tmp_path / "agents", names=["s0", "s1"], verbose=0)
    assert [r["name"] for r in res] == ["s0", "s1"]
    for r, c in zip(res, configs):
        assert r["error"] is None
        assert Path(r["final"]) == tmp_path / "agents" / r["name"] / "final.pt"
        assert load_policy(r["final"]).meta["seed"] == c["seed"]
        assert r["last"]["global_step"] == 2560 and "charts/episodic_return" in r["last"]
    # finished runs are reused, not retrained
    again = run_grid_on_ray(configs, tmp_path / "agents", names=["s0", "s1"], verbose=0)
    assert all(r.get("reused") for r in again)
    assert [r["final"] for r in again] == [r["final"] for r in res]


def test_tune_trial_on_another_node_comes_home(ray_local, tmp_path):
    """A trial on a node other than the driver's trains in its Tune working dir and its run
    dir comes back through Tune's storage (simulated: the driver claims another node id)."""
    from villages.experiments.ray_sweep import run_grid_on_ray

    [r] = run_grid_on_ray([dict(seed=2, total_steps=1024, num_worlds=16, num_steps=16)], tmp_path / "agents",
                          names=["far"], verbose=0, storage_path=str(tmp_path / "shared"), _driver_node="elsewhere")
    assert r["error"] is None and r["node"] == "remote"
    run = tmp_path / "agents" / "far"
    assert r["final"] == str(run / "final.pt") and (run / "final.pt").is_file() and (run / "metrics.jsonl").is_file()
    assert json.loads((run / "done.json").read_text())["final"] == str(run / "final.pt")
    assert r["last"]["global_step"] == 1024


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_rllib_own_pettingzoo_wrapper_with_its_action_masking_module(ray_local):
    """examples/rllib_action_masking.py: RLlib's ParallelPettingZooEnv over every seat, one shared
    ActionMaskingTorchRLModule (tiny budget)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "rllib_action_masking.py"
    spec = importlib.util.spec_from_file_location("example_rllib_action_masking", path)
    example = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = example
    spec.loader.exec_module(example)
    results = example.main(["--scenario", "inner-misalignment", "--max-cycles", "8", "--iterations", "1",
                            "--batch", "160"])
    assert len(results) == 1 and results[0].get("num_env_steps_sampled_lifetime", 0) >= 16, results


def test_tune_trials_of_populations(ray_local, tmp_path):
    """Each Tune trial trains a population; its members come home to agents/<name> as the local
    backend leaves them, equal to the single-seed trainer; a finished grid is reused."""
    from villages.experiments.ray_sweep import run_populations_on_ray
    from villages.policies.neural import read_checkpoint
    from villages.train.ppo import Args, train

    shared = dict(total_steps=512, num_worlds=16, num_steps=16, tensorboard=False)
    pops = [{"args": shared, "runs": [dict(seed=s, diversity=f, scenario="diverse-training", name=f"f{f}-s{s}")
                                      for s in (0, 1)]} for f in (0.0, 1.0)]
    res = run_populations_on_ray(pops, tmp_path / "agents", verbose=0)
    assert [r["name"] for r in res] == ["f0.0-s0", "f0.0-s1", "f1.0-s0", "f1.0-s1"]
    for r in res:
        assert r["error"] is None and r["final"] == str(tmp_path / "agents" / r["name"] / "final.pt")
    single = train(Args(seed=1, diversity=1.0, scenario="diverse-training", progress=False, processes=1, **shared),
                   tmp_path / "single", log=lambda *_: None)
    a, b = read_checkpoint(single)["model"], read_checkpoint(res[3]["final"])["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    again = run_populations_on_ray(pops, tmp_path / "agents", verbose=0)
    assert [r["final"] for r in again] == [r["final"] for r in res]


def test_sweep_curriculum_on_ray_tune(ray_local, tmp_path):
    """`villages sweep-curriculum --executor ray`: the curricula's runs are Tune trials (tiny budget)."""
    from villages.experiments.curriculum import run_curriculum_sweep

    r = run_curriculum_sweep(tmp_path, methods=("plr",), budgets=(0.25,), n_seeds=1, steps=2048, episodes=2,
                             backend="ray", log=lambda *_: None)
    assert (tmp_path / "agents" / "plr-b0p25-seed0" / "done.json").exists()
    assert r["points"][0]["method"] == "plr" and len(r["points"][0]["per_seed"]) == 1
