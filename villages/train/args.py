"""Training arguments shared by the native and the RLlib trainers (no heavy imports)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ScenarioArgs:
    """What is trained where: shared by the native and the RLlib trainers (``make_spec``)."""

    scenario: str = "training"
    """built-in scenario name or TOML path (its background bots are the opponents)"""
    objective: str | None = None
    """troops | villages | intended; None = the scenario's own objective"""
    diversity: float | None = None
    """override the scenario's diversity fraction (share of episodes with a randomized enemy identity)"""
    relation_in_rows: bool | None = None
    """override the scenario's observation setting"""
    banner_scale: float | None = None
    """override the salience (magnitude) of alliance identity features in observations"""
    seed: int = 0


@dataclass
class PPOArgs(ScenarioArgs):
    """The network and the PPO settings both trainers share, so that a native and an RLlib run with
    the same values are the same algorithm (``benchmarks/rllib_vs_native.py`` relies on it)."""

    arch: str = "entity"
    """entity (shared per-village encoder) | entity-concat | flat (MLP ablation)"""
    hidden: int = 64
    learning_rate: float = 1e-3
    """Adam step size (linearly annealed to 0 when anneal_lr). 1e-3: at the demo budget (300k env-steps) agents
    reach competence in the escalating-war scenarios; at 5e-4 they were still climbing (measured 2026-12-07)"""
    anneal_lr: bool = True
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
