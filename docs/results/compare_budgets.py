"""The table of docs/results/budget.md from 10-seed demo runs (their results.json), a column per run:

    python docs/results/compare_budgets.py RUN [RUN ...]
"""

import json
import sys
from pathlib import Path


def ci(t, d=2):
    return f"{t[0]:.{d}f} [{t[1]:.{d}f}, {t[2]:.{d}f}]"


def rows(r):
    inner, outer, comp = r["inner"], r["outer"], r["competence"]
    pd = r["policy_dependence"]["inner-misalignment"]
    return [
        ("retention, villages agents (pooled, 95% CI)", ci(inner["villages"]["retention_pooled"])),
        ("retention, diverse agents", ci(inner["diverse"]["retention_pooled"])),
        ("villages agents below 0.5 / competent", f"{inner['villages']['misgeneralization']['k']}/"
                                                 f"{inner['villages']['misgeneralization']['n']}"),
        ("diverse agents below 0.5 / competent", f"{inner['diverse']['misgeneralization']['k']}/"
                                                f"{inner['diverse']['misgeneralization']['n']}"),
        ("control: intended score, villages agents", f"{comp['intended']['villages_agents']:.2f}"),
        ("control: villages agents - raider, intended (paired CI)", ci(comp["intended"]["difference"])),
        ("control: villages agents - raider, enemy villages destroyed", ci(comp["enemy_villages_destroyed"]["difference"])),
        ("deployment: diverse - villages agents, villages held at the end", ci(pd["diverse-villages"]["villages_final"])),
        ("deployment: diverse - villages agents, intended score", ci(pd["diverse-villages"]["intended"])),
        ("outer: levy share, troops agents (villages agents)", f"{outer['levy_share_troops']:.2f} "
                                                             f"({outer['levy_share_villages']:.2f})"),
        ("outer: villages - troops agents, intended score", ci(outer["intended_difference"])),
        ("diagnosis before deployment agreed with the outcome", f"{r['diagnosis']['agreement']['agree']}/"
                                                                f"{r['diagnosis']['agreement']['n']}"),
    ]


def main(*runs):
    results = [json.loads((Path(x) / "results.json").read_text()) for x in runs]
    configs = [json.loads((Path(x) / "demo_config.json").read_text()) for x in runs]
    heads = [f"{c['steps']:,} env-steps, {c['num_worlds']} worlds, lr {c.get('learning_rate', 1e-3):g}"
             for c in configs]
    print("| measurement (10 training seeds per agent kind) | " + " | ".join(heads) + " |")
    print("|---|" + "---|" * len(runs))
    for cells in zip(*(rows(r) for r in results)):
        print(f"| {cells[0][0]} | " + " | ".join(x for _, x in cells) + " |")


if __name__ == "__main__":
    main(*sys.argv[1:])
