"""The ``villages`` command. Each subcommand is a thin shim over a module function."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
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

    cli_eval(policy, scenario, episodes, [int(s) for s in seeds.split(",")], json_out, record)


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

    cli_compare(policies, baseline, scenario, episodes, [int(s) for s in seeds.split(",")],
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
    banner_scale: Optional[float] = typer.Option(None, help="salience of identity features (default: the scenario's)"),
    relation_in_rows: Optional[bool] = typer.Option(None, "--relation-in-rows/--no-relation-in-rows",
                                                    help="relation in village rows (default: the scenario's)"),
):
    """Train the assistant with PPO."""
    if backend not in ("native", "rllib"):
        raise typer.BadParameter(f"--backend must be native or rllib, got {backend!r}")
    if backend == "rllib":
        if resume:
            raise typer.BadParameter("--resume is for the native trainer; an RLlib run restarts from scratch")
        from villages.train.rllib import cli_train

        cli_train(scenario=scenario, objective=objective, seed=seed, steps=steps, out=out,
                  num_env_runners=num_env_runners, address=address, banner_scale=banner_scale,
                  relation_in_rows=relation_in_rows)
        return
    from villages.train.ppo import cli_train

    cli_train(scenario=scenario, objective=objective, seed=seed, steps=steps, out=out, resume=resume,
              banner_scale=banner_scale, relation_in_rows=relation_in_rows)


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo")),
    quick: bool = typer.Option(False, help="tiny smoke-run configuration"),
    seeds: int = typer.Option(3),
):
    """Train troops / villages / diverse agents from scratch, evaluate, write report.md."""
    from villages.experiments.demo import run_demo

    run_demo(out=out, quick=quick, n_seeds=seeds)


@app.command("sweep-diversity")
def sweep_diversity(
    out: Path = typer.Option(Path("runs/demo/sweep"), help="under the demo's folder, a re-run of `villages demo` "
                                                            "puts the sweep plot into its report"),
    fractions: str = typer.Option("0,0.1,0.25,0.5,0.75,0.85,0.9,0.95,1"),
    seeds: int = typer.Option(3),
    backend: str = typer.Option("local", help="local | ray"),
    address: Optional[str] = typer.Option(None),
    steps: Optional[int] = typer.Option(None),
    reuse: Optional[Path] = typer.Option(Path("runs/demo/agents"), help="finished agents to reuse where their "
                                         "training settings are the same (0% is the demo's villages agents, 100% its "
                                         "diverse agents)"),
):
    """Retention and misgeneralization vs the share of training episodes with a randomized enemy."""
    from villages.experiments.sweep import run_sweep

    run_sweep(out=out, fractions=[float(x) for x in fractions.split(",")], n_seeds=seeds, backend=backend,
              address=address, steps=steps, reuse=reuse)


@app.command()
def diagnose(
    checkpoint: Path,
    scenario: str = typer.Option("training"),
    out: Optional[Path] = typer.Option(None, help="write the report section (markdown) and the map's plot here"),
    predict: Optional[list[str]] = typer.Option(None, help="a deployment scenario (name or .toml) whose retention to "
                                                "predict from training probes only (it is never run); repeatable"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the map, verdict and predictions as JSON"),
    episodes: int = typer.Option(32, help="training episodes per map cell"),
):
    """Map the learned goal (identity x relation) on the training distribution; predict deployments blind."""
    from villages.diagnostics import cli_diagnose

    cli_diagnose(checkpoint, scenario, out, n_episodes=episodes, predict=predict or (), json_out=json_out)


@app.command()
def replay(
    file: Path = typer.Argument(..., help="a replay (.replay.npz), e.g. from villages eval --record"),
    other: Optional[Path] = typer.Argument(None, help="a second replay of the same episode seed: side by side"),
    export: Optional[Path] = typer.Option(None, help="write a .gif, a .png still or a folder of PNG frames"),
    still: Optional[int] = typer.Option(None, help="with --export OUT.png: the game tick to show (default: the last)"),
    size: Optional[str] = typer.Option(None, help="WxH pixels (default 1280x800; a pair 1800x900)"),
    fps: float = typer.Option(10.0, help="GIF frames per second"),
    every: int = typer.Option(1, help="GIF: keep every n-th frame"),
):
    """Watch a replay (or two side by side) in a pygame window, or export it headless."""
    from villages.render import cli_replay

    cli_replay(file, export, size=size, fps=fps, other=other, still=still, every=every)


if __name__ == "__main__":
    app()
