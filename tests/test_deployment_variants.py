"""The deployment variants of examples/deployments and the validation script's summary."""

from __future__ import annotations

import numpy as np
import pytest

from villages.diagnostics.predict import wars
from villages.experiments.validate_predictions import report, summarise, variants
from villages.scenarios import ScenarioGame, load

VARIANTS = variants()


@pytest.mark.parametrize("path", VARIANTS[1:], ids=lambda p: p.rsplit("/", 1)[-1])
def test_variant_puts_one_identity_at_war(path):
    spec = load(path)
    [(alliance, worn)] = wars(spec)
    assert alliance == "Brotherhood" and len(worn) == 1 and worn[0][1] == 1.0
    assert worn[0][0].name.lower() in spec.name  # at-war-<identity>[-no-raids]
    raids = [e for e in spec.events if e.action == "set_policy"]
    assert bool(raids) == ("no-raids" not in spec.name)
    g = ScenarioGame(spec, 2)
    g.reset(np.arange(2))
    names = [i.name for i in spec.identities]
    assert all(names[i] == worn[0][0].name for i in g.identity[:, spec.alliance_index("Brotherhood")])


def test_at_least_eight_variants():
    assert len(VARIANTS) >= 9 and VARIANTS[0] == "inner-misalignment"


def test_summary_and_report(tmp_path):
    rows = [{"agent": f"{k}-seed0", "kind": k, "seed": 0, "variant": v, "alliance": "Brotherhood", "wears": v,
             "cos_enemy": 0.0, "raids": True, "predicted": [p, p - 0.1, p + 0.1], "observed": [o, o - 0.2, o + 0.2]}
            for k, v, p, o in [("villages", "a", 0.0, 0.05), ("villages", "b", 0.9, 1.1), ("diverse", "a", 1.0, 0.4),
                               ("diverse", "b", 1.1, 1.3)]]
    rows.append({**rows[0], "agent": "troops-seed0", "kind": "troops", "predicted_outcome": "inconclusive",
                 "observed": [float("nan")] * 3})
    s = summarise(rows)
    assert s["all"]["abstained"] == 1 and s["troops"]["n"] == 0
    assert s["all"]["agreement"]["k"] == 3 and s["all"]["false_robust"] == 1 and s["all"]["false_misgeneralized"] == 0
    assert s["all"]["spearman"][0] == pytest.approx(0.8)
    text = report(rows, s, [], tmp_path / "om", "cmd", "agents")
    assert "| all | 4 | 1 |" in text and "**no**" in text and "abstains" in text
