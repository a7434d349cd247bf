"""Scenarios: spec + TOML loader, built-ins, the batched scenario runtime, objectives."""

from .loader import ScenarioError, builtin_names, load, load_file, parse
from .runtime import ScenarioGame, config_for, game_config, with_observation_settings
from .spec import AllianceSpec, Diversity, EventSpec, Identity, MapSpec, Oversight, PlayerSpec, ScenarioSpec, When

__all__ = ["AllianceSpec", "Diversity", "EventSpec", "Identity", "MapSpec", "Oversight", "PlayerSpec", "ScenarioError",
           "ScenarioGame", "ScenarioSpec", "When", "builtin_names", "config_for", "game_config", "load", "load_file", "parse",
           "with_observation_settings"]
