"""Diagnose the learned goal: the objective map (identity x relation), the rule read off it,
and blind predictions of deployments.

    from villages.diagnostics import diagnose
    d = diagnose("runs/train/final.pt", scenario="training", predict=["inner-misalignment"])
    d.verdict            # "robust" | "pseudo-aligned (keys on identity)" | "inconclusive"
    d.reading            # the learned rule in one line, from the map
    d.predictions        # predicted retention per alliance at war in each deployment
    print(d.to_markdown())

Only training-distribution data is used: episodes of the training scenario with an
identity or relation edited, and edited observations of its logged states. Deployment
scenarios are read (who is at war, wearing what), never run. See ``docs/diagnostics.md``.
"""

from .api import Diagnosis, cli_diagnose, diagnose, predict
from .common import Roles, config_for, find_roles
from .verdict import INCONCLUSIVE, PSEUDO, ROBUST, RULE_TEXT

__all__ = ["Diagnosis", "INCONCLUSIVE", "PSEUDO", "ROBUST", "RULE_TEXT", "Roles", "cli_diagnose", "config_for",
           "diagnose", "find_roles", "predict"]
