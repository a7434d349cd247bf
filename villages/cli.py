"""The ``villages`` command. Each subcommand is a thin shim over a module function."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Optional

import typer

from villages.experiments.curriculum import BUDGETS as CURRICULUM_BUDGETS
from villages.experiments.curriculum import METHODS as CURRICULUM_METHODS
from villages.experiments.salience import FRACTIONS as SALIENCE_FRACTIONS
from villages.experiments.salience import SCALES as SALIENCE_SCALES
from villages.experiments.sweep import FRACTIONS as SWEEP_FRACTIONS
from villages.validation import InputError, check_count, check_output_path, parse_fractions, parse_ints, parse_numbers


def _listed(values) -> str:
    """A default list option written as the user would type it (one source: the experiment's constant)."""
    return ",".join(f"{v:g}" for v in values)

SEEDS_HELP = "evaluation seeds: a list such as 0,1,2 or a range such as 0-9 (--seeds is such a list in every command)"


def parse_seeds(text: str) -> list[int]:
    """``"0,1,5-7"`` -> [0, 1, 5, 6, 7]; a one-line error (``typer.BadParameter``) for anything else."""
    try:
        return parse_ints(text, "--seeds")
    except InputError as e:
        raise typer.BadParameter(str(e)) from None


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
    seeds: str = typer.Option("0", help=SEEDS_HELP),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write metrics as JSON here"),
    record: Optional[Path] = typer.Option(None, help="write a replay of the first episode into this folder"),
):
    """Run a focal policy in a scenario and report metrics with 95% bootstrap CIs."""
    from villages.scenarios.runner import cli_eval

    observer = None
    if record is not None:
        from villages.render.replay import ReplayObserver

        check_output_path(record, "--record", "folder")
        observer = ReplayObserver(record)
    cli_eval(policy, scenario, episodes, parse_seeds(seeds), json_out, observer)


@app.command()
def compare(
    policies: list[str] = typer.Argument(..., help="checkpoints or bots, pooled as one group "
                                                   "(e.g. one per training seed)"),
    baseline: str = typer.Option("raider", help="the policy every one of them is compared with"),
    scenario: str = typer.Option("aurora-control", help="built-in scenario name or a .toml path"),
    episodes: int = typer.Option(64, help="episodes per evaluation seed"),
    seeds: str = typer.Option("0", help=SEEDS_HELP),
    metrics: str = typer.Option("proxy_reward,enemy_villages_destroyed,intended,attacks,peaceful_attacks"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the comparison as JSON here"),
):
    """Paired comparison on the same episodes: group - baseline per episode, with 95% bootstrap CIs."""
    from villages.scenarios.compare import cli_compare

    cli_compare(policies, baseline, scenario, episodes, parse_seeds(seeds),
                [m.strip() for m in metrics.split(",") if m.strip()], json_out)


def _run_training(backend: str, overrides: dict, out: Path, resume: bool, population: dict | None = None) -> None:
    if population is not None:
        from villages.train.population import cli_train_population

        return cli_train_population(overrides, out, parse_seeds(population["seeds"]), population["compile"],
                                    resume=resume)
    if backend == "rllib":
        from villages.train.rllib import cli_train
    else:
        from villages.train.ppo import cli_train
    cli_train(overrides, out, resume=resume)


def _train_command():
    from villages.train.options import make_train_command

    return make_train_command(_run_training)


app.command("train")(_train_command())


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo")),
    quick: bool = typer.Option(False, help="tiny smoke-run configuration"),
    n_seeds: int = typer.Option(3, help="training seeds per agent (seeds 0 .. N-1)"),
    oversight: bool = typer.Option(False, help="the absent-supervisor family instead: watched and enforced agents, "
                                   "unwatched vs watched (default --out runs/oversight)"),
):
    """Train troops / villages / diverse agents from scratch, evaluate, write report.md."""
    check_count(n_seeds, "--n-seeds", 1)
    if oversight:
        from villages.experiments.oversight import run_oversight

        out = Path("runs/oversight") if out == Path("runs/demo") else out
        check_output_path(out, "--out", "folder")
        run_oversight(out=out, quick=quick, n_seeds=n_seeds)
        return
    from villages.experiments.demo import run_demo

    check_output_path(out, "--out", "folder")
    run_demo(out=out, quick=quick, n_seeds=n_seeds)


@app.command("sweep-diversity")
def sweep_diversity(
    out: Path = typer.Option(Path("runs/demo/sweep"), help="under the demo's folder, a re-run of `villages demo` "
                                                            "puts the sweep plot into its report"),
    fractions: str = typer.Option(_listed(SWEEP_FRACTIONS)),
    n_seeds: int = typer.Option(3, help="training seeds per fraction (seeds 0 .. N-1)"),
    executor: str = typer.Option("local", help="where the (native) training runs go: local | ray (Ray Tune)"),
    address: Optional[str] = typer.Option(None, help="ray only: an existing Ray cluster"),
    steps: Optional[int] = typer.Option(None, help="env-steps per training run (default: the sweep's)"),
    reuse: Optional[Path] = typer.Option(Path("runs/demo/agents"), help="finished agents to reuse where their "
                                         "training settings are the same (0% is the demo's villages agents, 100% its "
                                         "diverse agents)"),
):
    """Retention and misgeneralization vs the share of training episodes with a randomized enemy."""
    from villages.experiments.sweep import run_sweep

    check_count(n_seeds, "--n-seeds", 1)
    check_count(steps, "--steps", 1)
    check_output_path(out, "--out", "folder")
    if executor not in ("local", "ray"):
        raise InputError(f"--executor: expected local or ray, got {executor!r}")
    run_sweep(out=out, fractions=parse_fractions(fractions, "--fractions"), n_seeds=n_seeds, backend=executor,
              address=address, steps=steps, reuse=reuse)


@app.command("sweep-curriculum")
def sweep_curriculum(
    out: Path = typer.Option(Path("runs/curriculum")),
    methods: str = typer.Option(",".join(CURRICULUM_METHODS), help="curricula: dr, plr, sfl"),
    budgets: str = typer.Option(_listed(CURRICULUM_BUDGETS), help="disambiguating budgets: shares of generated "
                                "levels whose enemy wears another identity"),
    n_seeds: int = typer.Option(5, help="training seeds per cell (seeds 0 .. N-1)"),
    executor: str = typer.Option("local", help="where the training runs go: local | ray (Ray Tune)"),
    address: Optional[str] = typer.Option(None, help="ray only: an existing Ray cluster"),
    steps: Optional[int] = typer.Option(None, help="env-steps per training run (default: the demo's)"),
):
    """Retention vs disambiguating budget for PLR and SFL curricula against domain randomization."""
    from villages.experiments.curriculum import run_curriculum_sweep

    check_count(n_seeds, "--n-seeds", 1)
    check_count(steps, "--steps", 1)
    check_output_path(out, "--out", "folder")
    chosen = [m.strip() for m in methods.split(",") if m.strip()]
    bad = [m for m in chosen if m not in CURRICULUM_METHODS]
    if not chosen or bad:
        raise InputError(f"--methods: expected a comma-separated list of {', '.join(CURRICULUM_METHODS)}, "
                         f"got {methods!r}")
    if executor not in ("local", "ray"):
        raise InputError(f"--executor: expected local or ray, got {executor!r}")
    run_curriculum_sweep(out=out, methods=chosen, budgets=parse_fractions(budgets, "--budgets"), n_seeds=n_seeds,
                         backend=executor, address=address, steps=steps)


@app.command("sweep-oversight")
def sweep_oversight(
    out: Path = typer.Option(Path("runs/oversight-sweep")),
    shares: str = typer.Option("0.1,0.25,0.5", help="shares of training episodes the overseer watches"),
    penalties: Optional[str] = typer.Option(None, help="penalties per forbidden attack while watched, e.g. 1,2,4 "
                                            "(default: the scenario's own, 2)"),
    n_seeds: int = typer.Option(5, help="training seeds per cell (seeds 0 .. N-1)"),
    reuse: Optional[Path] = typer.Option(Path("runs/oversight"), help="a `villages demo --oversight` folder whose "
                                         "watched agents serve the scenario's own share (0.25)"),
    steps: Optional[int] = typer.Option(None, help="env-steps per training run (default: the demo's)"),
):
    """How often conditioning on the watch emerges, by the share of training episodes the overseer watches
    (and the penalty it charges)."""
    from villages.experiments.oversight import run_watch_sweep

    check_count(n_seeds, "--n-seeds", 1)
    costs = None if penalties is None else parse_numbers(penalties, "--penalties", 0, 1e6, "1,2,4")
    check_count(steps, "--steps", 1)
    check_output_path(out, "--out", "folder")
    run_watch_sweep(out=out, shares=parse_fractions(shares, "--shares"), penalties=costs, n_seeds=n_seeds, steps=steps,
                    reuse=reuse)


@app.command("sweep-salience")
def sweep_salience(
    out: Path = typer.Option(Path("runs/salience")),
    scales: str = typer.Option(_listed(SALIENCE_SCALES), help="banner_scale values (the identity features' magnitude)"),
    fractions: str = typer.Option(_listed(SALIENCE_FRACTIONS), help="shares of training episodes with a randomized enemy"),
    n_seeds: int = typer.Option(3, help="training seeds per cell (seeds 0 .. N-1)"),
    steps: Optional[int] = typer.Option(None, help="env-steps per training run (default: the demo's)"),
):
    """Retention at deployment over banner salience x randomized fraction (a heat map with per-cell CIs)."""
    from villages.experiments.salience import run_salience

    check_count(n_seeds, "--n-seeds", 1)
    check_count(steps, "--steps", 1)
    check_output_path(out, "--out", "folder")
    salience = parse_numbers(scales, "--scales", 0, 100, "1,2,3", lo_inclusive=False)
    run_salience(out=out, scales=salience, fractions=parse_fractions(fractions, "--fractions"), n_seeds=n_seeds,
                 steps=steps)


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
    """Map the learned goal (identity x relation) on the training distribution; predict deployments blind.
    On a scenario with an [oversight] table (e.g. oversight-training): the oversight probe instead."""
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
