"""Diagnose the learned goal: behavioural objective and counterfactual probes.

    from villages.diagnostics import diagnose
    d = diagnose("runs/train/final.pt", scenario="training", n_episodes=64, seed=0)
    d.verdict            # "robust" | "pseudo-aligned (keys on identity)" | "inconclusive"
    print(d.to_markdown())

Only training-distribution data is used: decisions logged in the training scenario,
paired counterfactual episodes on its maps, and edited observations of its states.
See ``docs/diagnostics.md`` for the method and the decision rule.
"""

from .api import Diagnosis, cli_diagnose, diagnose
from .common import NOVEL_IDENTITY, Roles, config_for, find_roles
from .verdict import INCONCLUSIVE, PSEUDO, ROBUST, RULE_TEXT

__all__ = ["Diagnosis", "INCONCLUSIVE", "NOVEL_IDENTITY", "PSEUDO", "ROBUST", "RULE_TEXT", "Roles", "cli_diagnose",
           "config_for", "diagnose", "find_roles"]
