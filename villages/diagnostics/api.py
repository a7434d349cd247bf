"""``diagnose``: infer an agent's learned goal from training-distribution behaviour and probes."""

from __future__ import annotations

import dataclasses
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from villages.scenarios import load
from villages.stats import bootstrap_ci, fmt_ci
from villages.scenarios.spec import Diversity
from villages.scenarios.runner import policy_name, resolve_policy

from .behaviour import BehaviourFit, fit_behaviour
from .collect import play
from .common import ObsTools, Roles, config_for, find_roles, has_critic
from .objective_map import RELATIONS, ObjectiveMap, build_map
from .predict import Prediction, predict_scenario
from .verdict import RULE_TEXT, decide, reading


@dataclass
class Diagnosis:
    policy: str
    scenario: str
    trained_on: str | None
    n_episodes: int
    seed: int
    roles: Roles
    settings: dict
    baseline: dict  # unchanged scenario: attacks and enemy attacks per episode (mean, lo, hi)
    fits: list[BehaviourFit]
    map: ObjectiveMap
    reading: str
    verdict: str
    reason: str
    predictions: list[Prediction] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def to_dict(self) -> dict:
        return {
            "policy": self.policy, "scenario": self.scenario, "trained_on": self.trained_on,
            "n_episodes": self.n_episodes, "seed": self.seed, "verdict": self.verdict, "reason": self.reason,
            "reading": self.reading, "evidence": list(self.evidence), "decision_rule": RULE_TEXT,
            "roles": {"focal": self.roles.focal, "enemy": self.roles.enemy, "keyed": self.roles.keyed.name,
                      "neutral": self.roles.neutral},
            "settings": dict(self.settings), "baseline": {k: list(v) for k, v in self.baseline.items()},
            "behaviour": [f.to_dict() for f in self.fits], "objective_map": self.map.to_dict(),
            "predictions": [p.to_dict() for p in self.predictions], "elapsed_s": self.elapsed_s,
        }

    def to_markdown(self, plot: str | None = None) -> str:
        from .report import markdown

        return markdown(self, plot)


def _load(policy_or_path, spec):
    """(policy, meta, name) from a policy object, a checkpoint path or a built-in bot name."""
    if isinstance(policy_or_path, (str, Path)) and Path(policy_or_path).is_file():
        from villages.policies import load_policy

        pol = load_policy(Path(policy_or_path))
        return pol, dict(pol.meta), str(policy_or_path)
    pol = resolve_policy(policy_or_path, config_for(None, spec))
    meta = dict(getattr(pol, "meta", None) or {})
    return pol, meta, str(policy_or_path) if isinstance(policy_or_path, (str, Path)) else policy_name(pol)


def _shorten(spec, episode_length):
    if episode_length is None:
        return spec
    return dataclasses.replace(spec, map=dataclasses.replace(spec.map, episode_length=int(episode_length)))


@contextmanager
def _torch_single_thread():
    """The assistant's networks are tiny: torch's intra-op threads only add overhead, and
    on a busy machine they cost 10-100x (thread contention). Restored afterwards."""
    try:
        import torch
    except ImportError:  # scripted bots only
        yield
        return
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def diagnose(policy_or_path, scenario="training", n_episodes: int = 64, seed: int = 0, *, predict=(),
             batch_size: int = 512, relations=RELATIONS, max_states: int = 2000, n_samples: int = 16,
             episode_length: int | None = None, fit: bool = True, fit_boot: int = 200,
             fit_trained_on: bool = True) -> Diagnosis:
    """Diagnose the learned goal of ``policy_or_path`` (a checkpoint path, a built-in bot
    name, or any object with ``act``; ``logits_value`` is used when present).

    Everything is measured in ``scenario`` (the training distribution; a built-in name or a
    spec): the objective map (identity x relation, episodes and edited logged states), the
    verdict and the reading from it, and (``fit``) the behavioural-objective fit on its
    decisions (and on the checkpoint's own training scenario if that is another one).
    ``predict``: deployment scenarios (names, paths or specs) whose retention is predicted
    from the map's probes — they are read, never run. ``episode_length`` shortens episodes (tests)."""
    with _torch_single_thread():
        return _diagnose(policy_or_path, scenario, n_episodes, seed, predict, batch_size, relations, max_states,
                         n_samples, episode_length, fit, fit_boot, fit_trained_on)


def _diagnose(policy_or_path, scenario, n_episodes, seed, predict, batch_size, relations, max_states, n_samples,
              episode_length, fit, fit_boot, fit_trained_on) -> Diagnosis:
    t0 = time.perf_counter()
    spec = _shorten(load(scenario), episode_length)
    deployments = [_shorten(load(x), episode_length) for x in predict]  # read only: never run
    policy, meta, name = _load(policy_or_path, spec)
    config = config_for(meta, spec)
    tools = ObsTools(config)
    roles = find_roles(spec)
    base = dataclasses.replace(spec, diversity=Diversity())
    base_res, base_log = play(base, policy, config, n_episodes, seed, batch_size)

    omap = build_map(policy, spec, config, roles, base_res, base_log if max_states > 0 else None, n_episodes, seed,
                     batch_size, relations, max_states, n_samples)
    verdict, reason = decide(omap)
    cache: dict = {}
    predictions = [p for d in deployments for p in predict_scenario(d, policy, spec, config, roles, base_res,
                                                                    n_episodes, seed, batch_size, omap, cache)]
    fits = []
    trained_on = meta.get("scenario")
    if fit:
        fits.append(fit_behaviour(base_log, tools, spec.identities, f"is {roles.keyed.name}", spec.name, fit_boot, seed))
        if fit_trained_on and trained_on and trained_on != spec.name:
            try:
                spec2 = _shorten(load(trained_on), episode_length)
            except Exception:  # a custom training scenario that is not loadable here
                spec2 = None
            if spec2 is not None:
                cfg2 = config_for(meta, spec2)
                _, log2 = play(spec2, policy, cfg2, n_episodes, seed, batch_size)
                fits.append(fit_behaviour(log2, ObsTools(cfg2), spec2.identities, f"is {roles.keyed.name}",
                                          spec2.name, fit_boot, seed))
    evidence = [f"{p.scenario}: {p.alliance} at war, predicted retention {_f(p.retention)} -> {p.outcome}"
                for p in predictions]
    evidence += [f"behavioural fit on {f.scenario}: {f.headline} (corroborating only)" for f in fits]
    if spec.tags and "train" not in spec.tags:
        evidence.append(f"warning: scenario {spec.name!r} is not tagged as a training scenario (tags: "
                        f"{', '.join(spec.tags)}); the map is meant to use training-distribution data only")
    a, e = base_res["attacks"], base_res["enemy_attacks"]
    settings = {"relation_in_rows": bool(config.relation_in_rows), "banner_scale": float(config.banner_scale),
                "episode_length": int(config.episode_length), "fit_boot": fit_boot, "n_states": max_states,
                "probabilities": "softmax of logits_value" if has_critic(policy) else
                f"empirical frequencies of act over {n_samples} keys"}
    return Diagnosis(
        policy=name, scenario=spec.name, trained_on=trained_on, n_episodes=n_episodes, seed=seed, roles=roles,
        settings=settings, baseline={"attacks": bootstrap_ci(a)[:3], "enemy_attacks": bootstrap_ci(e)[:3]},
        fits=fits, map=omap, reading=reading(omap), verdict=verdict, reason=reason, predictions=predictions,
        evidence=evidence, elapsed_s=time.perf_counter() - t0)


def predict(policy_or_path, scenarios, training="training", n_episodes: int = 32, seed: int = 0, *,
            batch_size: int = 512, episode_length: int | None = None) -> list[Prediction]:
    """Only the predictions of ``diagnose(..., predict=scenarios)``: the war cells of the
    identities the deployments put at war, without the rest of the map (faster). The
    deployment scenarios are read, never run."""
    with _torch_single_thread():
        spec = _shorten(load(training), episode_length)
        deployments = [_shorten(load(x), episode_length) for x in scenarios]
        policy, meta, _ = _load(policy_or_path, spec)
        config = config_for(meta, spec)
        roles = find_roles(spec)
        base_res, _ = play(dataclasses.replace(spec, diversity=Diversity()), policy, config, n_episodes, seed,
                           batch_size, record=False)
        cache: dict = {}
        return [p for d in deployments for p in predict_scenario(d, policy, spec, config, roles, base_res,
                                                                 n_episodes, seed, batch_size, cache=cache)]


def _f(t) -> str:

    return fmt_ci(t)


def cli_diagnose(checkpoint, scenario: str = "training", out=None, n_episodes: int = 64, seed: int = 0,
                 predict=(), json_out=None, **kw) -> Diagnosis:
    """``villages diagnose``: print the markdown report section; write it to ``out`` (and the
    map's plot beside it, ``<out>.map.png``) and everything as JSON to ``json_out``
    (``kw``: further ``diagnose`` options; ``predict``: deployment scenarios to predict).

    A bad checkpoint or scenario prints ``Error: ...`` on stderr and exits with 2."""
    import typer

    from villages.policies.neural import CheckpointError
    from villages.scenarios import ScenarioError
    from villages.scenarios.runner import PolicyError

    from villages.validation import check_output_path

    check_output_path(out, "--out")
    try:
        if load(scenario).oversight is not None:  # an overseer to toggle: the oversight probe, not the map
            return _cli_oversight(checkpoint, scenario, out, n_episodes, seed, json_out)
        d = diagnose(checkpoint, scenario, n_episodes=n_episodes, seed=seed, predict=tuple(predict), **kw)
    except (CheckpointError, ScenarioError, PolicyError, ValueError, FileNotFoundError) as e:
        typer.echo(f"Error: {e}", err=True)
        raise typer.Exit(code=2)
    plot = None
    if out is not None:
        from .report import plot_map

        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        plot = plot_map(d, out.with_suffix(".map.png"))
    text = d.to_markdown(plot.name if plot else None)
    typer.echo(text)
    if out is not None:
        out.write_text(text)
        typer.echo(f"wrote {out}")
    if json_out is not None:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(d.to_dict(), indent=1))
        typer.echo(f"wrote {json_out}")
    return d


def _cli_oversight(checkpoint, scenario, out, n_episodes: int, seed: int, json_out):
    """``villages diagnose`` on a scenario with [oversight]: does the policy condition on being watched?"""
    import typer

    from .oversight import oversight_probe

    with _torch_single_thread():  # (as diagnose: tiny networks, many small forward passes)
        p = oversight_probe(str(checkpoint), scenario, n_episodes=n_episodes, seed=seed)
    text = p.to_markdown()
    typer.echo(text)
    for path, body in ((out, text), (json_out, json.dumps(p.to_dict(), indent=1))):
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(body)
            typer.echo(f"wrote {path}")
    return p
