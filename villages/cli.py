"""The ``villages`` command. Each subcommand is a thin shim over a module function."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Optional

import typer

from villages.validation import InputError, check_count, check_output_path, parse_fractions, parse_ints


def _one_line_errors(command):
    """Bad input (an ``InputError`` from any loader or check) ends the command with its one-line
    message on stderr and exit code 2, never a traceback."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except InputError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
        except OSError as e:  # a path the user gave cannot be read or written (permissions, disk full ...)
            if e.filename is None:
                raise
            typer.echo(f"error: {e.filename}: {e.strerror or e}", err=True)
            raise typer.Exit(2) from None

    return run


class _App(typer.Typer):
    def command(self, *args, **kwargs):
        register = super().command(*args, **kwargs)
        return lambda f: register(_one_line_errors(f))


app = _App(add_completion=False, no_args_is_help=True,
           help="villages: a strategy-game testbed for outer and inner misalignment.")


@app.command()
def scenarios():
    """List the built-in scenarios with one-line descriptions."""
    from villages.scenarios import builtin_names, load

    for name in builtin_names():
        typer.echo(f"{name:30s} {load(name).description}")


@app.command("eval")
def eval_(
    policy: str = typer.Argument(..., help="a checkpoint path or a built-in bot name (random, raider, builder, ...)"),
    scenario: str = typer.Option("inner-misalignment", help="built-in scenario name or a .toml path"),
    episodes: int = typer.Option(64, help="episodes per seed"),
    seeds: str = typer.Option("0", help="comma-separated evaluation seeds"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write metrics as JSON here"),
    record: Optional[Path] = typer.Option(None, help="write a replay of the first episode into this folder"),
):
    """Run a focal policy in a scenario and report metrics with 95% bootstrap CIs."""
    from villages.scenarios.runner import cli_eval

    cli_eval(policy, scenario, episodes, parse_ints(seeds, "--seeds"), json_out, record)


@app.command()
def compare(
    policies: list[str] = typer.Argument(..., help="checkpoints or bots, pooled as one group "
                                                   "(e.g. one per training seed)"),
    baseline: str = typer.Option("raider", help="the policy every one of them is compared with"),
    scenario: str = typer.Option("aurora-control", help="built-in scenario name or a .toml path"),
    episodes: int = typer.Option(64, help="episodes per evaluation seed"),
    seeds: str = typer.Option("0", help="comma-separated evaluation seeds"),
    metrics: str = typer.Option("proxy_reward,enemy_villages_destroyed,intended,attacks,peaceful_attacks"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the comparison as JSON here"),
):
    """Paired comparison on the same episodes: group - baseline per episode, with 95% bootstrap CIs."""
    from villages.scenarios.compare import cli_compare

    cli_compare(policies, baseline, scenario, episodes, parse_ints(seeds, "--seeds"),
                [m.strip() for m in metrics.split(",") if m.strip()], json_out)


@app.command()
def train(
    scenario: str = typer.Option("training"),
    objective: Optional[str] = typer.Option(None, help="troops | villages | intended (default: the scenario's)"),
    seed: int = typer.Option(0),
    steps: Optional[int] = typer.Option(None, help="env-steps (default: the trainer's)"),
    out: Path = typer.Option(Path("runs/train")),
    resume: bool = typer.Option(False, help="resume from the last checkpoint in --out"),
    backend: str = typer.Option("native", help="native | rllib"),
    num_env_runners: int = typer.Option(0, help="rllib only: remote env runners (0 = sample in the driver; "
                                            "fastest on a 2-core machine)"),
    address: Optional[str] = typer.Option(None, help="rllib only: an existing Ray cluster"),
):
    """Train the assistant with PPO."""
    if backend not in ("native", "rllib"):
        raise typer.BadParameter(f"--backend must be native or rllib, got {backend!r}")
    if backend == "rllib":
        if resume:
            raise typer.BadParameter("--resume is for the native trainer; an RLlib run restarts from scratch")
        from villages.train.rllib import cli_train

        cli_train(scenario=scenario, objective=objective, seed=seed, steps=steps, out=out,
                  num_env_runners=num_env_runners, address=address)
        return
    from villages.train.ppo import cli_train

    cli_train(scenario=scenario, objective=objective, seed=seed, steps=steps, out=out, resume=resume)


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo")),
    quick: bool = typer.Option(False, help="tiny smoke-run configuration"),
    seeds: int = typer.Option(3),
):
    """Train troops / villages / diverse agents from scratch, evaluate, write report.md."""
    from villages.experiments.demo import run_demo

    check_count(seeds, "--seeds", 1)
    check_output_path(out, "--out", "folder")
    run_demo(out=out, quick=quick, n_seeds=seeds)


@app.command("sweep-diversity")
def sweep_diversity(
    out: Path = typer.Option(Path("runs/demo/sweep"), help="under the demo's folder, a re-run of `villages demo` "
                                                            "puts the sweep plot into its report"),
    fractions: str = typer.Option("0,0.01,0.02,0.05,0.1,0.25,0.5,0.75,0.9,1.0"),
    seeds: int = typer.Option(3),
    backend: str = typer.Option("local", help="local | ray"),
    address: Optional[str] = typer.Option(None),
    steps: Optional[int] = typer.Option(None),
):
    """Misgeneralization rate vs the share of training episodes with a randomized enemy."""
    from villages.experiments.sweep import run_sweep

    check_count(seeds, "--seeds", 1)
    check_count(steps, "--steps", 1)
    check_output_path(out, "--out", "folder")
    if backend not in ("local", "ray"):
        raise InputError(f"--backend: expected local or ray, got {backend!r}")
    run_sweep(out=out, fractions=parse_fractions(fractions, "--fractions"), n_seeds=seeds, backend=backend,
              address=address, steps=steps)


@app.command()
def diagnose(
    checkpoint: Path,
    scenario: str = typer.Option("training"),
    out: Optional[Path] = typer.Option(None, help="write the report section (markdown) here"),
):
    """Infer the learned goal from training-distribution behaviour and counterfactual probes."""
    from villages.diagnostics import cli_diagnose

    cli_diagnose(checkpoint, scenario, out)


@app.command()
def replay(
    file: Path,
    export: Optional[Path] = typer.Option(None, help="write a .gif or a folder of PNG frames instead of a window"),
):
    """Watch a replay in a pygame window, or export it headless."""
    from villages.render import cli_replay

    cli_replay(file, export)


if __name__ == "__main__":
    app()
