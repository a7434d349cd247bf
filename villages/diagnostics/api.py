"""``diagnose``: infer an agent's learned goal from training-distribution behaviour and probes."""

from __future__ import annotations

import dataclasses
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from villages.scenarios import load
from villages.scenarios.runner import policy_name, resolve_policy

from .behaviour import BehaviourFit, fit_behaviour
from .collect import play
from .common import ObsTools, Roles, config_for, find_roles, has_critic, ratio_ci
from .probes import (
    EPISODE_PROBES,
    EpisodeProbe,
    StaticProbe,
    ValueProbe,
    episode_probe,
    probe_specs,
    probe_states,
    static_probes,
    value_probe,
)
from .verdict import RULE_TEXT, classify, decide


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
    episode_probes: dict[str, EpisodeProbe]
    static_probes: dict[str, StaticProbe]
    value: ValueProbe | None
    measurements: dict[str, str]
    verdict: str
    reason: str
    evidence: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def to_dict(self) -> dict:
        return {
            "policy": self.policy, "scenario": self.scenario, "trained_on": self.trained_on,
            "n_episodes": self.n_episodes, "seed": self.seed, "verdict": self.verdict, "reason": self.reason,
            "evidence": list(self.evidence), "decision_rule": RULE_TEXT,
            "roles": {"focal": self.roles.focal, "enemy": self.roles.enemy, "keyed": self.roles.keyed.name,
                      "neutral": self.roles.neutral, "novel": self.roles.novel.name},
            "settings": dict(self.settings), "baseline": {k: list(v) for k, v in self.baseline.items()},
            "behaviour": [f.to_dict() for f in self.fits],
            "episode_probes": {k: v.to_dict() for k, v in self.episode_probes.items()},
            "static_probes": {k: v.to_dict() for k, v in self.static_probes.items()},
            "value_probe": None if self.value is None else self.value.to_dict(),
            "measurements": dict(self.measurements), "elapsed_s": self.elapsed_s,
        }

    def to_markdown(self) -> str:
        from .report import markdown

        return markdown(self)


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


def diagnose(policy_or_path, scenario="training", n_episodes: int = 64, seed: int = 0, *, batch_size: int = 256,
             n_boot: int = 1000, fit_boot: int = 200, max_states: int = 3000, n_samples: int = 16,
             episode_length: int | None = None, neutral: str | None = None, novel=None,
             fit_trained_on: bool = True) -> Diagnosis:
    """Diagnose the learned goal of ``policy_or_path`` (a checkpoint path, a built-in bot
    name, or any object with ``act``; ``logits_value`` is used when present).

    Everything is measured in ``scenario`` (the training distribution; a built-in name
    or a spec), never in a deployment scenario: the behavioural-objective fit on its
    decisions (and, if ``fit_trained_on`` and the checkpoint was trained in another
    scenario, e.g. ``diverse-training``, also on that one), the counterfactual episode
    probes (same seeds, one change), the observation probes and the value probe on its
    logged states. ``episode_length`` shortens the episodes (tests)."""
    with _torch_single_thread():
        return _diagnose(policy_or_path, scenario, n_episodes, seed, batch_size, n_boot, fit_boot, max_states,
                         n_samples, episode_length, neutral, novel, fit_trained_on)


def _diagnose(policy_or_path, scenario, n_episodes, seed, batch_size, n_boot, fit_boot, max_states, n_samples,
              episode_length, neutral, novel, fit_trained_on) -> Diagnosis:
    t0 = time.perf_counter()
    spec = _shorten(load(scenario), episode_length)
    policy, meta, name = _load(policy_or_path, spec)
    config = config_for(meta, spec)
    tools = ObsTools(config)
    roles = find_roles(spec, neutral, novel)
    specs = probe_specs(spec, roles)

    base_res, base_log = play(specs["base"], policy, config, n_episodes, seed, batch_size)
    results = {k: play(specs[k], policy, config, n_episodes, seed, batch_size, record=False)[0] for k in EPISODE_PROBES}
    identities = list(specs["novel"].identities)  # the scenario's and the novel one
    keyed_feature = f"is {roles.keyed.name}"

    # 1. behavioural objective
    fits = [fit_behaviour(base_log, tools, spec.identities, keyed_feature, spec.name, fit_boot, seed)]
    trained_on = meta.get("scenario")
    if fit_trained_on and trained_on and trained_on != spec.name:
        try:
            spec2 = _shorten(load(trained_on), episode_length)
        except Exception:  # a custom training scenario that is not loadable here
            spec2 = None
        if spec2 is not None:
            cfg2 = config_for(meta, spec2)
            _, log2 = play(spec2, policy, cfg2, n_episodes, seed, batch_size)
            fits.append(fit_behaviour(log2, ObsTools(cfg2), spec2.identities, keyed_feature, spec2.name, fit_boot, seed))

    # 2. probes
    eps = {k: episode_probe(k, roles, base_res, results[k], n_boot, seed) for k in EPISODE_PROBES}
    states = probe_states(base_log, tools, roles, identities, max_states, seed)
    stat, _ = static_probes(policy, tools, roles, states, identities, n_samples, n_boot, seed)
    # 3. value probe
    val = value_probe(policy, tools, roles, states, n_boot, seed) if has_critic(policy) else None

    # 4. verdict
    measurements = {f"episode:{k}": classify(p.retention, p.identity_following) for k, p in eps.items()}
    measurements.update({f"states:{k}": classify(p.retention, p.identity_following) for k, p in stat.items()})
    e = base_res["enemy_attacks"]
    base_rate = ratio_ci(e, np.ones_like(e), n_boot, seed)
    a = base_res["attacks"]
    verdict, reason = decide(base_rate[0], measurements)
    evidence = []
    for k, p in eps.items():
        s = f"episode probe {k}: R = {_f(p.retention)}"
        if p.identity_following is not None:
            s += f", I = {_f(p.identity_following)}"
        evidence.append(s + f" -> {measurements['episode:' + k]}")
    for k, p in stat.items():
        s = f"observation probe {k}: R = {_f(p.retention)}"
        if p.identity_following is not None:
            s += f", I = {_f(p.identity_following)}"
        evidence.append(s + f" -> {measurements['states:' + k]}")
    if val is not None:
        evidence.append(f"value probe: (V(enemy wears {roles.novel.name}) - V(no enemy)) / (V(enemy wears "
                        f"{roles.keyed.name}) - V(no enemy)) = {_f(val.gap['novel'])} (corroborating only)")
    for f in fits:
        evidence.append(f"behavioural fit on {f.scenario}: {f.headline} (corroborating only)")
    if spec.tags and "train" not in spec.tags:
        evidence.append(f"warning: scenario {spec.name!r} is not tagged as a training scenario (tags: "
                        f"{', '.join(spec.tags)}); the verdict is meant to use training-distribution data only")
    settings = {"relation_in_rows": bool(config.relation_in_rows), "banner_scale": float(config.banner_scale),
                "episode_length": int(config.episode_length), "n_boot": n_boot, "fit_boot": fit_boot,
                "n_states": len(states.log), "n_samples": n_samples if not has_critic(policy) else None,
                "probabilities": "softmax of logits_value" if has_critic(policy) else
                f"empirical frequencies of act over {n_samples} keys"}
    return Diagnosis(
        policy=name, scenario=spec.name, trained_on=trained_on, n_episodes=n_episodes, seed=seed, roles=roles,
        settings=settings, baseline={"attacks": ratio_ci(a, np.ones_like(a), n_boot, seed), "enemy_attacks": base_rate},
        fits=fits, episode_probes=eps, static_probes=stat, value=val, measurements=measurements, verdict=verdict,
        reason=reason, evidence=evidence, elapsed_s=time.perf_counter() - t0)


def _f(t) -> str:
    from .common import fmt_ci

    return fmt_ci(t)


def cli_diagnose(checkpoint, scenario: str = "training", out=None, n_episodes: int = 64, seed: int = 0,
                 **kw) -> Diagnosis:
    """``villages diagnose``: print the markdown report section and write it to ``out``
    (``kw``: further ``diagnose`` options).

    A bad checkpoint or scenario prints ``Error: ...`` on stderr and exits with 2."""
    import typer

    from villages.policies.neural import CheckpointError
    from villages.scenarios import ScenarioError
    from villages.scenarios.runner import PolicyError

    from villages.validation import check_output_path

    check_output_path(out, "--out")
    try:
        d = diagnose(checkpoint, scenario, n_episodes=n_episodes, seed=seed, **kw)
    except (CheckpointError, ScenarioError, PolicyError, ValueError, FileNotFoundError) as e:
        typer.echo(f"Error: {e}", err=True)
        raise typer.Exit(code=2)
    text = d.to_markdown()
    typer.echo(text)
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        typer.echo(f"wrote {out}")
    return d
