"""One consistent CLI: every trainer setting is a `villages train` option (help = the field's
docstring), --seeds is a list everywhere, --steps rounds visibly; TensorBoard and --device."""

from __future__ import annotations

import dataclasses
import json
import struct

import click
import pytest
import typer
from typer.testing import CliRunner

from villages.cli import app, parse_seeds
from villages.train.args import NativeArgs, field_docs
from villages.train.rllib import RLlibArgs


def _train_params() -> dict:
    cmd = typer.main.get_command(app).commands["train"]
    return {p.name: p for p in cmd.params}


@pytest.mark.parametrize("cls", [NativeArgs, RLlibArgs])
def test_every_trainer_field_is_an_option_with_its_docstring(cls):
    params, docs = _train_params(), field_docs(cls)
    for f in dataclasses.fields(cls):
        assert f.name in params, f"villages train has no --{f.name.replace('_', '-')}"
        assert docs[f.name] and docs[f.name] in params[f.name].help


def test_field_docs_reads_the_docstring_after_each_field():
    docs = field_docs(NativeArgs)
    assert docs["num_steps"] == "rollout length per update"
    assert docs["arch"].startswith("entity (shared per-village encoder)")  # from the base class


@pytest.mark.parametrize("text, seeds", [("0", [0]), ("0,1,5", [0, 1, 5]), ("0-3", [0, 1, 2, 3]), ("2-3,7", [2, 3, 7])])
def test_seeds_are_a_list(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["x", "1,,2", "3-1", "-1", "1.5"])
def test_bad_seeds_are_refused_in_one_line(text):
    with pytest.raises(typer.BadParameter, match="--seeds"):
        parse_seeds(text)


def test_seed_counts_are_n_seeds_and_backend_means_the_trainer():
    r = CliRunner().invoke(app, ["demo", "--seeds", "3"])
    assert r.exit_code != 0 and "No such option" in r.output
    r = CliRunner().invoke(app, ["sweep-diversity", "--help"])
    assert "--n-seeds" in r.output and "--executor" in r.output and "--backend" not in r.output
    r = CliRunner().invoke(app, ["train", "--backend", "rllib", "--num-worlds", "8"])
    assert r.exit_code != 0 and "--num-worlds not used by --backend rllib" in r.output
    r = CliRunner().invoke(app, ["train", "--device", "tpu"])
    assert r.exit_code != 0 and "--device must be one of cpu | cuda | auto" in r.output


def _scalar_tags(event_file) -> set[str]:
    """The scalar tags in a TensorBoard event file (TFRecord framing: length, crc, data, crc)."""
    from tensorboardX.proto import event_pb2

    tags, data = set(), event_file.read_bytes()
    while data:
        (n,) = struct.unpack("<Q", data[:8])
        event = event_pb2.Event.FromString(data[12 : 12 + n])
        tags |= {v.tag for v in event.summary.value if v.HasField("simple_value")}
        data = data[12 + n + 4 :]
    return tags


def test_train_options_reach_the_trainer_steps_round_visibly_and_tensorboard_is_written(tmp_path):
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["train", "--arch", "flat", "--steps", "300", "--num-worlds", "8", "--num-steps", "16",
                                 "--processes", "1", "--device", "cpu", "--hidden", "16", "--no-progress",
                                 "--out", str(out)])
    assert r.exit_code == 0, r.output + repr(r.exception)
    assert "total_steps 300 rounds to 256 (2 updates)" in r.output
    args = json.loads((out / "args.json").read_text())
    assert (args["arch"], args["hidden"], args["num_worlds"], args["device"]) == ("flat", 16, 8, "cpu")
    assert [json.loads(x)["global_step"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [128, 256]
    (event_file,) = (out / "tb").glob("events.out.tfevents.*")
    tags = _scalar_tags(event_file)
    assert {"charts/SPS", "charts/learning_rate", "losses/policy_loss", "losses/value_loss", "losses/entropy",
            "losses/approx_kl", "losses/clipfrac"} <= tags


def _documented_commands():
    """Every `villages ...` line in the README's and docs' bash blocks (continuations joined)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        block, pending = False, ""
        for line in doc.read_text().splitlines():
            if line.startswith("```"):
                block = line.strip() in ("```bash", "```sh", "```console")
                continue
            if not block:
                continue
            line = pending + line.split(" #")[0].strip()
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            pending = ""
            words = line.split()
            while words and "=" in words[0]:  # leading VAR=value
                words = words[1:]
            if words and words[0] == "villages":
                yield f"{doc.name}: {line}", words[1:]


@pytest.mark.parametrize("where, words", list(_documented_commands()), ids=lambda x: x if isinstance(x, str) else "")
def test_documented_commands_parse(where, words):
    """The commands in the README and docs are valid `villages` command lines (parsed, not run)."""
    import shlex

    words = shlex.split(" ".join(words))
    group = typer.main.get_command(app)
    ctx = group.make_context("villages", list(words), resilient_parsing=False)
    cmd = group.get_command(ctx, words[0])
    assert cmd is not None, f"{where}: no command {words[0]!r}"
    try:
        cmd.make_context(words[0], words[1:], parent=ctx)
    except (click.exceptions.Exit, typer.Exit) as done:  # --help: printed, exit 0
        assert done.exit_code == 0


def test_device_auto_is_the_cpu_without_cuda_and_cuda_is_refused_clearly():
    import torch

    from villages.train.ppo import resolve_device

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert resolve_device("auto").type == "cpu" and resolve_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="no CUDA device"):
        resolve_device("cuda")
