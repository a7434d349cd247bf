"""The scenario runner: play a focal policy in a scenario for many episodes, batched.

    from villages.scenarios import load
    from villages.scenarios.runner import run_episodes, evaluate

    res = run_episodes(load("inner-misalignment"), policy, n_episodes=256, seed=0)
    res["enemy_attack_share"]          # float[256], one value per episode
    res.summary()                      # mean + 95% bootstrap CI of every metric

``policy`` is anything with ``act(obs, mask, key, tick) -> int[B, F]`` (the
``villages.policies.Policy`` protocol), or a string: a built-in bot name or a
checkpoint path (``villages.policies.load_policy``). Episodes run as batches of
``batch_size`` worlds in one ``ScenarioGame``; episode ``i`` of evaluation seed ``s``
is the world with seed ``s * 1_000_000 + i`` (so it can be replayed alone: every world
of a batch plays exactly as it would alone). Metrics come from the step events (see
``villages.scenarios.metrics``); nothing is re-simulated.

``cli_eval`` is ``villages eval``: a table on stdout and, optionally, JSON and a replay.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from villages.validation import MAX_EPISODES, check_count, check_output_path

from .loader import load
from .metrics import SCALAR_METRICS, EpisodeAccumulator, EpisodeResults
from .runtime import ScenarioGame, config_for, game_config
from .spec import ScenarioSpec

SEED_STRIDE = 1_000_000
DEFAULT_BATCH = 256


class PolicyError(ValueError):
    """A policy argument is neither a built-in bot name nor a loadable checkpoint."""


def episode_seeds(seed: int, n_episodes: int) -> np.ndarray:
    """World seeds of the episodes of evaluation seed ``seed``."""
    if not 0 < n_episodes <= SEED_STRIDE:
        raise ValueError(f"n_episodes must lie in [1, {SEED_STRIDE}], got {n_episodes}")
    return int(seed) * SEED_STRIDE + np.arange(n_episodes, dtype=np.int64)


def policy_name(policy) -> str:
    return str(getattr(policy, "name", None) or type(policy).__name__)


def resolve_policy(policy, config):
    """A policy object from a built-in bot name or a checkpoint path (objects pass through)."""
    if not isinstance(policy, (str, Path)):
        if not callable(getattr(policy, "act", None)):
            raise PolicyError(f"policy {policy!r} has no act(obs, mask, key, tick) method")
        return policy
    from villages.policies import BUILTIN, make_policy

    name = str(policy)
    if name in BUILTIN:
        return make_policy(name, config)
    path = Path(name)
    if not path.exists():
        raise PolicyError(f"policy {name!r} is neither a built-in bot ({', '.join(sorted(BUILTIN))}) "
                          f"nor an existing checkpoint path")
    try:
        from villages.policies import load_policy
    except ImportError as e:
        raise PolicyError(f"cannot load checkpoint {name!r}: villages.policies.load_policy is not available "
                          f"(the neural policy / PPO package is missing: {e})") from None
    try:
        pol = load_policy(path)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise PolicyError(f"cannot load checkpoint {name!r}: {e}") from e
    meta = getattr(pol, "meta", None) or {}
    for key in ("n_rows", "n_alliances", "banner_dim"):  # observation/action sizes the network was built for
        if key in meta and getattr(config, key) != meta[key]:
            raise PolicyError(f"checkpoint {name!r} was trained with {key} = {meta[key]}, but this scenario has "
                              f"{key} = {getattr(config, key)}: its observations and actions do not fit the network")
    trained_with = tuple(meta.get("scenario_self_features") or ())
    if meta and trained_with != tuple(config.scenario_self_features):
        raise PolicyError(f"checkpoint {name!r} was trained with the scenario self features {list(trained_with)}, but "
                          f"this scenario has {list(config.scenario_self_features)} (e.g. an [oversight] table adds "
                          f"'overseen'): its observations do not fit the network")
    return pol


def _setup(spec, policy, config):
    """(spec, policy object, config): a given config is used as is; otherwise the
    scenario's, with a checkpoint's own observation settings applied (``config_for``)."""
    spec = load(spec)
    if config is not None:
        return spec, resolve_policy(policy, config), config
    policy = resolve_policy(policy, game_config(spec))
    return spec, policy, config_for(getattr(policy, "meta", None), spec)


class EpisodeObserver(Protocol):
    """What ``run_episodes`` tells an observer about world 0 of its first batch of episodes
    (``villages.render.replay.ReplayObserver`` records it as a replay file). A callback, so that
    the runner knows nothing of replays or rendering."""

    def start(self, game: ScenarioGame, policy_name: str, world_seed: int) -> None:
        """The episode starts (``game`` is reset)."""

    def choice(self, action: int, choice) -> None:
        """The focal player's action this tick and, if the policy explains itself, its
        ``PolicyChoice`` for world 0 and the first focal seat (else None)."""

    def step(self, game: ScenarioGame, reward, info: dict) -> None:
        """The worlds stepped (``reward``, ``info``: those of ``ScenarioGame.step``)."""

    def finish(self, spec: ScenarioSpec, seed: int) -> str | None:
        """The episode ended; returns where its record went (``EpisodeResults.replay_path``)."""


def run_episodes(spec, policy, n_episodes: int, seed: int = 0, batch_size: int = DEFAULT_BATCH,
                 observer: EpisodeObserver | None = None, config=None) -> EpisodeResults:
    """Play ``n_episodes`` episodes of ``spec`` with ``policy`` on the focal seats.

    ``spec``: a ``ScenarioSpec``, a built-in name or a TOML path. ``observer``: told about
    world 0 of the first episode batch (e.g. ``ReplayObserver("replays/")`` writes a replay).
    ``config``: a ``GameConfig`` to use instead of the scenario's.
    """
    spec, policy, config = _setup(spec, policy, config)
    name = policy_name(policy)
    seeds = episode_seeds(seed, n_episodes)
    batch_size = max(1, min(int(batch_size), n_episodes))
    parts, replay_path = [], None
    games: dict[int, ScenarioGame] = {}
    explain = observer is not None and callable(getattr(policy, "act_with_choice", None))
    for start in range(0, n_episodes, batch_size):
        ws = seeds[start : start + batch_size]
        game = games.get(len(ws)) or games.setdefault(len(ws), ScenarioGame(spec, len(ws), config=config))
        obs, mask = game.reset(ws)
        acc = EpisodeAccumulator(spec.name, name, seed, ws)
        acc.start(game)
        watched = observer if start == 0 else None
        if watched is not None:
            watched.start(game, name, int(ws[0]))
        done = False
        while not done:
            s = game.state
            if watched is not None and explain:  # the recorded choice comes from the forward pass that made it
                actions, choice = policy.act_with_choice(obs, mask, s.key, s.tick)
            else:
                actions, choice = policy.act(obs, mask, s.key, s.tick), None
            actions = np.asarray(actions, dtype=np.int64)
            if actions.shape != mask.shape[:2]:
                raise ValueError(f"policy {name!r} returned actions of shape {actions.shape}, "
                                 f"expected {mask.shape[:2]} (worlds, focal seats)")
            if watched is not None:
                watched.choice(actions[0, 0], choice)
            obs, mask, reward, done, info = game.step(actions)
            acc.update(game, info["events"])
            if watched is not None:
                watched.step(game, reward, info)
        if watched is not None:
            replay_path = watched.finish(spec, seed)
        parts.append(acc.finish(game))
    res = EpisodeResults.concat(parts)
    res.replay_path = replay_path
    return res


def evaluate(spec, policy, n_episodes: int, seeds=(0,), batch_size: int = DEFAULT_BATCH, observer=None,
             config=None) -> EpisodeResults:
    """``run_episodes`` for each evaluation seed, joined (``res.seed`` tells them apart).
    The ``observer`` (if any) watches the first seed only."""
    spec, policy, config = _setup(spec, policy, config)
    parts = [run_episodes(spec, policy, n_episodes, s, batch_size, observer if k == 0 else None, config)
             for k, s in enumerate(seeds)]
    res = EpisodeResults.concat(parts)
    res.replay_path = parts[0].replay_path
    return res


# ---------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------

TABLE_METRICS = ("proxy_reward", "intended", "levy_share", "levy_trained_share", "attacks", "enemy_attack_share", "peaceful_attacks",
                 "enemy_villages_destroyed", "villages_lost", "new_war_tick", "first_strike_tick",
                 "first_strike_delay", "missed_new_enemy", "trained", "built", "attacked", "invalid_actions")


def _fmt(x) -> str:
    if x is None:
        return "-"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"


def report_rows(summary: dict) -> tuple[list[str], list[list[str]]]:
    header = ["metric", "mean [95% CI]", "n"]
    across = summary.get("across_seeds")
    if across:
        header += [f"across {len(summary['seeds'])} seeds [95% CI]"]
    rows = []
    for k in TABLE_METRICS:
        m = summary["metrics"][k]
        row = [k, f"{_fmt(m['mean'])} [{_fmt(m['ci95'][0])}, {_fmt(m['ci95'][1])}]", str(m["n"])]
        if across:
            a = across[k]
            row += [f"{_fmt(a['mean'])} [{_fmt(a['ci95'][0])}, {_fmt(a['ci95'][1])}]"]
        rows.append(row)
    return header, rows


def attack_rows(summary: dict) -> tuple[list[str], list[list[str]]]:
    ab = summary["attacks_by"]
    header = ["target identity"] + ab["relations"] + ["total"]
    rows = []
    for ident, vals in zip(ab["identities"], ab["mean_per_episode"]):
        if any(vals):
            rows.append([ident] + [f"{v:.2f}" for v in vals] + [f"{sum(vals):.2f}"])
    return header, rows


def held_rows(summary: dict) -> tuple[list[str], list[list[str]]]:
    h = summary["villages_held"]
    T = len(h["mean"]) - 1
    ticks = sorted({0, T // 4, T // 2, 3 * T // 4, T})
    header = ["tick"] + [str(t) for t in ticks]
    return header, [["villages held"] + [_fmt(h["mean"][t]) for t in ticks]]


def _plain_table(title: str, header, rows) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip()  # noqa: E731
    out = [title, line(header), line(["-" * w for w in widths])] + [line(r) for r in rows]
    return "\n".join(out)


def format_report(summary: dict) -> str:
    """The report as plain text."""
    head = (f"scenario {summary['scenario']}  policy {summary['policy']}  episodes {summary['n_episodes']}  "
            f"seeds {','.join(map(str, summary['seeds']))}")
    parts = [head, _plain_table("metrics (mean over episodes, 95% bootstrap CI)", *report_rows(summary)),
             _plain_table("attacks per episode by target identity x relation at launch", *attack_rows(summary)),
             _plain_table("focal villages held (mean)", *held_rows(summary))]
    if summary.get("replay"):
        parts.append(f"replay: {summary['replay']}")
    return "\n\n".join(parts)


def print_report(summary: dict) -> None:
    try:
        from rich import box
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # rich is optional
        print(format_report(summary))
        return
    console = Console()
    if not console.is_terminal:  # piped or captured: do not squeeze the tables into 80 columns
        console = Console(width=max(console.width, 120))
    console.print(f"[bold]scenario[/bold] {summary['scenario']}  [bold]policy[/bold] {summary['policy']}  "
                  f"[bold]episodes[/bold] {summary['n_episodes']}  "
                  f"[bold]seeds[/bold] {','.join(map(str, summary['seeds']))}", highlight=False)
    for title, (header, rows) in (("metrics (mean over episodes, 95% bootstrap CI)", report_rows(summary)),
                                  ("attacks per episode by target identity x relation at launch", attack_rows(summary)),
                                  ("focal villages held (mean)", held_rows(summary))):
        t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
        for i, h in enumerate(header):
            t.add_column(h, justify="left" if i == 0 else "right", no_wrap=True)
        for r in rows:
            t.add_row(*r)
        console.print(t)
    if summary.get("replay"):
        console.print(f"replay: {summary['replay']}", highlight=False)


def cli_eval(policy: str, scenario: str, episodes: int, seeds, json_out=None, observer=None,
             batch_size: int = DEFAULT_BATCH) -> EpisodeResults:
    """``villages eval``: evaluate, print the report, write JSON (and, through ``observer``, a replay).

    A bad scenario, policy or argument prints ``Error: ...`` on stderr and exits with 2."""
    import typer

    from .loader import ScenarioError

    def fail(msg: str):
        typer.echo(f"Error: {msg}", err=True)
        raise typer.Exit(code=2)

    check_count(episodes, "--episodes", 1, MAX_EPISODES)
    if not seeds:
        fail("--seeds needs at least one seed")
    check_output_path(json_out, "--json")
    try:
        spec, pol, config = _setup(scenario, policy, None)  # a checkpoint's observation settings, not the scenario's
    except (ScenarioError, PolicyError) as e:
        fail(str(e))
    res = evaluate(spec, pol, episodes, list(seeds), batch_size=batch_size, observer=observer, config=config)
    if isinstance(policy, (str, Path)):
        res.policy = str(policy)
    summary = res.summary()
    print_report(summary)
    if json_out is not None:
        res.to_json(json_out)
        typer.echo(f"wrote {json_out}")
    return res


__all__ = ["DEFAULT_BATCH", "EpisodeObserver", "EpisodeResults", "PolicyError", "SCALAR_METRICS", "cli_eval", "episode_seeds",
           "evaluate", "format_report", "print_report", "resolve_policy", "run_episodes"]
