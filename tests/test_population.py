"""The population trainer (``villages.train.population``): each member is the single-seed
trainer, whatever else is in the population; one batched pass of the network is each member's own
pass; compile changes only the rounding; a
killed population resumes exactly; bad populations are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from villages.cli import app
from villages.game import action_layout, observation_layout
from villages.policies.neural import ARCHITECTURES, build_net, read_checkpoint, stack_members
from villages.scenarios import game_config, load
from villages.train.population import STATE_FILE, train_population
from villages.train.ppo import Args, train

pytestmark = pytest.mark.timeout(300)


def tiny(**kw) -> Args:
    """16 worlds x 16 ticks per update, 12 updates: one 150-tick episode ends on the way."""
    return Args(**{"total_steps": 3072, "num_worlds": 16, "num_steps": 16, "progress": False,
                   "tensorboard": False, "processes": 1, **kw})


def weights(path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["model"]


def rows(path: Path) -> list[dict]:
    drop = ("charts/SPS", "charts/population_SPS")  # (wall-clock speed is not a result)
    return [{k: v for k, v in json.loads(x).items() if k not in drop}
            for x in path.read_text().splitlines() if x.strip()]


MEMBERS = [dict(seed=3), dict(seed=4), dict(seed=3, objective="troops"), dict(seed=5, scenario="diverse-training")]


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    root = tmp_path_factory.mktemp("population")
    runs = [dict(m, out=root / f"member{i}") for i, m in enumerate(MEMBERS)]
    finals = train_population(tiny(checkpoint_every=4), runs, root / "pop", log=lambda *_: None)
    return root, finals


@pytest.mark.parametrize("k", range(len(MEMBERS)))
def test_each_member_is_the_single_seed_trainer(population, tmp_path, k):
    """Same initial weights, worlds, noise, minibatch order and updates: a member ends with the
    single-seed trainer's weights and writes its metrics rows (speed aside), bit for bit, although
    it shares its engine batch and its process with members of other seeds and objectives."""
    root, finals = population
    single = train(tiny(**MEMBERS[k]), tmp_path / "single", log=lambda *_: None)
    a, b = weights(single), weights(finals[k])
    assert a.keys() == b.keys()
    assert all(torch.equal(a[n], b[n]) for n in a), f"member {k} differs from its single-seed run"
    got, want = rows(finals[k].parent / "metrics.jsonl"), rows(tmp_path / "single" / "metrics.jsonl")
    assert [r for r in got] == want
    assert any("charts/episodic_return" in r for r in got), "no episode ended: the episode report was not tested"
    assert read_checkpoint(finals[k])["meta"]["seed"] == MEMBERS[k]["seed"]


def test_members_differ(population):
    _, finals = population
    a, b = weights(finals[0]), weights(finals[1])
    assert not all(torch.equal(a[n], b[n]) for n in a)


def test_tensorboard_per_member(tmp_path):
    runs = [dict(seed=s, out=tmp_path / f"m{s}") for s in (0, 1)]
    train_population(tiny(total_steps=512, tensorboard=True), runs, tmp_path / "pop", log=lambda *_: None)
    assert all(list((tmp_path / f"m{s}" / "tb").glob("events.out.tfevents.*")) for s in (0, 1))


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_one_batched_pass_is_each_members_own(arch):
    """``members_forward`` over stacked parameters gives every member what its own network gives
    on its own observations (logits, values and their gradients), whichever architecture."""
    spec = load("training")
    cfg = game_config(spec)
    O, L = observation_layout(cfg), action_layout(cfg)
    nets = []
    for seed in range(3):
        torch.manual_seed(seed)
        nets.append(build_net(arch, O, L, 32))
    params = {k: v.requires_grad_() for k, v in stack_members(nets).items()}
    obs = torch.rand(3, 5, 2, O.size)  # [members, worlds, seats, obs]
    logits, value = nets[0].members_forward(params, obs)
    (logits.square().sum() + value.sum()).backward()
    for i, net in enumerate(nets):
        own_logits, own_value = net(obs[i])
        assert own_logits.shape == logits[i].shape and own_value.shape == value[i].shape
        torch.testing.assert_close(logits[i], own_logits, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(value[i], own_value, rtol=1e-5, atol=1e-6)
        (own_logits.square().sum() + own_value.sum()).backward()
        for k, p in net.named_parameters():
            torch.testing.assert_close(params[k].grad[i], p.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_compile_changes_only_the_rounding(tmp_path):
    """``compile=True`` (torch.compile of the loss) learns what the plain population learns, up to
    float rounding, over a few updates (actions are sampled, so a long run would diverge)."""
    args = tiny(total_steps=16 * 16 * 2)
    runs = lambda tag: [dict(m, out=tmp_path / tag / f"m{i}") for i, m in enumerate(MEMBERS[:2])]  # noqa: E731
    plain = train_population(args, runs("plain"), tmp_path / "plain", log=lambda *_: None)
    compiled = train_population(args, runs("compiled"), tmp_path / "compiled", compile=True, log=lambda *_: None)
    for f, g in zip(plain, compiled):
        a, b = weights(f), weights(g)
        assert max(float((a[n] - b[n]).abs().max()) for n in a) < 1e-4


def test_a_killed_population_resumes_exactly(population, tmp_path):
    """Stopped right after a checkpoint (update 4, mid-episode) and again after update 9 (after an
    episode end, between checkpoints), then resumed: every member's final weights and metrics rows
    are those of the uninterrupted population."""
    root, finals = population
    runs = [dict(m, out=tmp_path / f"member{i}") for i, m in enumerate(MEMBERS)]

    class Stop(Exception):
        pass

    def stop_at(n):
        def on_update(update, total):
            if update == n:
                raise Stop
        return on_update

    with pytest.raises(Stop):
        train_population(tiny(checkpoint_every=4), runs, tmp_path / "pop", log=lambda *_: None, on_update=stop_at(4))
    with pytest.raises(Stop):
        train_population(tiny(checkpoint_every=4), runs, tmp_path / "pop", resume=True, log=lambda *_: None,
                         on_update=stop_at(9))
    assert (tmp_path / "pop" / STATE_FILE).exists()
    log = []
    resumed = train_population(tiny(checkpoint_every=4), runs, tmp_path / "pop", resume=True, log=log.append)
    assert any("resumed" in x for x in log)
    for k, (f, g) in enumerate(zip(finals, resumed)):
        a, b = weights(f), weights(g)
        assert all(torch.equal(a[n], b[n]) for n in a), f"member {k} differs after the resume"
        assert rows(g.parent / "metrics.jsonl") == rows(f.parent / "metrics.jsonl")


def test_a_state_saved_with_the_old_vectorize_option_resumes(tmp_path):
    """States saved before the batched pass recorded the member loop's ``vectorize`` option in their
    plan; the same population still resumes from them (and a wrong plan is still refused)."""
    from villages.policies.checkpoint import content_hash

    runs = [dict(seed=s, out=tmp_path / f"m{s}") for s in (0, 1)]
    train_population(tiny(total_steps=512, checkpoint_every=1), runs, tmp_path / "pop", log=lambda *_: None)
    state = tmp_path / "pop" / STATE_FILE
    blob = read_checkpoint(state, resumable=True)
    plan = blob["meta"]["plan"]

    def save_with_plan(p):  # (as tests/test_bad_input.py edits a checkpoint: rehash, save)
        blob["meta"]["plan"] = p
        blob["sha256"] = content_hash(blob)
        torch.save(blob, state)

    save_with_plan({**plan, "vectorize": False})
    log = []
    train_population(tiny(total_steps=512, checkpoint_every=1), runs, tmp_path / "pop", resume=True, log=log.append)
    assert any("resumed" in x for x in log)
    save_with_plan(["not", "a", "plan"])
    with pytest.raises(Exception, match="another population"):
        train_population(tiny(total_steps=512, checkpoint_every=1), runs, tmp_path / "pop", resume=True,
                         log=lambda *_: None)


def test_resuming_another_population_is_refused(population, tmp_path):
    root, _ = population
    runs = [dict(m, out=tmp_path / f"member{i}") for i, m in enumerate(MEMBERS)]
    train_population(tiny(total_steps=256, checkpoint_every=1), runs, tmp_path / "pop", log=lambda *_: None)
    runs[1]["seed"] = 9
    with pytest.raises(Exception, match="another population"):
        train_population(tiny(total_steps=256, checkpoint_every=1), runs, tmp_path / "pop", resume=True,
                         log=lambda *_: None)


@pytest.mark.parametrize("runs, message", [
    ([dict(seed=1, out="a"), dict(seed=2, out="a")], "different folders"),
    ([dict(seed=1, out="a", hidden=32)], "may set only"),
    ([dict(seed=1, out="a"), dict(seed=2, out="b", scenario="{narrow}")], "one network shape"),
])
def test_bad_populations_are_refused(tmp_path, runs, message):
    narrow = tmp_path / "narrow.toml"  # the training scenario with fewer village rows: another network shape
    builtin = Path(__file__).resolve().parents[1] / "villages" / "scenarios" / "builtin" / "training.toml"
    narrow.write_text(f'extends = "{builtin}"\nname = "narrow"\n[map]\nn_rows = 12\n')
    runs = [dict(r, out=tmp_path / r["out"], **({"scenario": str(narrow)} if "scenario" in r else {})) for r in runs]
    with pytest.raises(ValueError, match=message):
        train_population(tiny(total_steps=256), runs, tmp_path / "pop", log=lambda *_: None)


def test_cli_train_seeds_trains_a_population(tmp_path):
    out = tmp_path / "pop"
    r = CliRunner().invoke(app, ["train", "--seeds", "0-1", "--total-steps", "512", "--num-worlds", "16",
                                 "--num-steps", "16", "--no-progress", "--no-tensorboard", "--out", str(out)])
    assert r.exit_code == 0, r.output
    for s in (0, 1):
        assert (out / f"seed{s}" / "final.pt").exists() and not (out / f"seed{s}" / "tb").exists()
        assert json.loads((out / f"seed{s}" / "args.json").read_text())["seed"] == s
    r = CliRunner().invoke(app, ["train", "--seeds", "0,1", "--seed", "2", "--out", str(out)])
    assert r.exit_code != 0 and "either --seed" in r.output
