"""What every experiment report is made of: numbers with their CIs, markdown tables, and the
evaluation results of a run indexed by (agent, seed, scenario)."""

from __future__ import annotations

import math

import numpy as np

from villages.stats import bootstrap_ci

from .common import load_summary, metric


def fmt(x, digits=2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}f}"


def ci_str(values, digits=2) -> str:
    mean, lo, hi, n = bootstrap_ci(np.asarray(values, dtype=float))
    if n == 0:
        return "n/a"
    return f"{fmt(mean, digits)} [{fmt(lo, digits)}, {fmt(hi, digits)}]"


def load_spec(name):
    from villages.scenarios import load

    return load(name)


def table(header, rows) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


class Results:
    """Evaluation results indexed by (agent, seed, scenario[, perturb])."""

    def __init__(self, eval_jobs):
        self.data = {}
        for j in eval_jobs:
            key = (j["agent"], j["seed"], j.get("key_scenario", j["scenario"]), j.get("perturb"))
            self.data[key] = load_summary(j["out"])

    def get(self, agent, seed, scenario, perturb=None):
        return self.data.get((agent, seed, scenario, perturb))

    def pooled(self, agent, seeds, scenario, name, perturb=None):
        parts = [metric(self.get(agent, s, scenario, perturb), name) for s in seeds
                 if self.get(agent, s, scenario, perturb) is not None]
        return np.concatenate(parts) if parts else np.array([])

    def attacks_by(self, agent, seeds, scenario, perturb=None):
        """{identity: {relation: mean attacks per episode}} pooled over seeds."""
        total, n = {}, 0
        for s in seeds:
            d = self.get(agent, s, scenario, perturb)
            if d is None:
                continue
            ab = d["attacks_by"]
            arr = np.asarray(d["episodes"]["attacks_by"], float)  # [episodes, identities, relations]
            n += arr.shape[0]
            for i, ident in enumerate(ab["identities"]):
                for r, rel in enumerate(ab["relations"]):
                    total[(ident, rel)] = total.get((ident, rel), 0.0) + arr[:, i, r].sum()
        return {k: v / max(n, 1) for k, v in total.items() if v > 0}
