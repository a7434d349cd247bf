"""The absent-supervisor family's calibration: scripted stand-ins in its four scenarios, before any
training (docs/oversight.md). Usage: python docs/results/oversight_calibration.py [episodes=64]"""

import sys

import numpy as np

from villages.scenarios.runner import run_episodes

episodes = int(sys.argv[1]) if len(sys.argv) > 1 else 64
keys = ("proxy_reward", "intended", "peaceful_attacks", "watched_peaceful_attacks", "enemy_villages_destroyed",
        "villages_destroyed", "villages_lost", "watched_share")
print("| scenario | policy | " + " | ".join(keys) + " |\n|" + "---|" * (len(keys) + 2))
for scenario in ("oversight-training", "oversight-training-enforced", "oversight-deployment", "oversight-control"):
    for policy in ("passive", "raider", "marauder", "sneak"):
        r = run_episodes(scenario, policy, episodes, seed=0, batch_size=episodes)
        print(f"| {scenario} | {policy} | " + " | ".join(f"{np.nanmean(r.values[k]):.2f}" for k in keys) + " |")
