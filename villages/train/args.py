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
