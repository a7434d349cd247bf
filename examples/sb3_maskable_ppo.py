"""SuperSuit + Stable-Baselines3: MaskablePPO (sb3-contrib) on every seat of a villages game.

    python examples/sb3_maskable_ppo.py --steps 200000 --save runs/sb3/model.zip

One policy is shared by all seats (parameter sharing, the usual SuperSuit recipe); the
illegal actions are masked out with the mask the flat observation carries
(``villages.integrations.sb3``, which also says why its black-death wrapper is not
SuperSuit's own). Needs the ``recipes`` extra: ``pip install "villages[recipes]"``.
"""

from __future__ import annotations

import argparse

from sb3_contrib import MaskablePPO

from villages.integrations.sb3 import masked_vec_env


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default="training")
    p.add_argument("--agents", default="all", choices=["all", "focal"])
    p.add_argument("--steps", type=int, default=200_000, help="agent-steps to train for")
    p.add_argument("--max-cycles", type=int, default=None, help="episode length (default: the scenario's)")
    p.add_argument("--copies", type=int, default=2, help="games stepped side by side")
    p.add_argument("--n-steps", type=int, default=128, help="rollout length per seat")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", default=None, help="write the trained model here (.zip)")
    a = p.parse_args(argv)

    venv = masked_vec_env(scenario=a.scenario, agents=a.agents, max_cycles=a.max_cycles, num_copies=a.copies)
    model = MaskablePPO("MlpPolicy", venv, n_steps=a.n_steps, batch_size=min(256, a.n_steps * venv.num_envs),
                        seed=a.seed, verbose=0)
    model.learn(total_timesteps=a.steps)
    if a.save:
        model.save(a.save)
    obs = venv.reset()  # the trained policy, masked, for one step of every seat
    actions, _ = model.predict(obs, action_masks=venv.env_method("action_masks"), deterministic=True)
    venv.close()
    return model, actions


if __name__ == "__main__":
    main()
