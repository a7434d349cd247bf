"""RLlib's own PettingZoo wrapper with its action-masking RLModule (new API stack).

    python examples/rllib_action_masking.py --iterations 20

Every seat is an RLlib agent (``ParallelPettingZooEnv`` over ``villages.parallel_env``),
all mapped to one shared ``ActionMaskingTorchRLModule`` from RLlib's examples, which
reads ``{"observations", "action_mask"}`` (``villages.integrations.rllib`` renames the
facade's ``observation`` key for it). Needs the ``rllib`` extra. The project's own RLlib
trainer (``villages train --backend rllib``) is the other way in: the focal seat only, with
the project's network.
"""

from __future__ import annotations

import argparse

from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.examples.rl_modules.classes.action_masking_rlm import ActionMaskingTorchRLModule
from ray.tune.registry import register_env

from villages.integrations.rllib import ENV_NAME, make_env
from villages.train.rllib import ray_session


def shared_module(agent_id, *args, **kwargs) -> str:
    return "shared"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default="training")
    p.add_argument("--max-cycles", type=int, default=None, help="episode length (default: the scenario's)")
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--batch", type=int, default=4000, help="agent-steps per training iteration")
    p.add_argument("--env-runners", type=int, default=0, help="0 = sample in the driver")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)

    register_env(ENV_NAME, make_env)
    config = (
        PPOConfig()
        .environment(ENV_NAME, env_config={"scenario": a.scenario, "max_cycles": a.max_cycles})
        .env_runners(num_env_runners=a.env_runners)
        .multi_agent(policies={"shared"}, policy_mapping_fn=shared_module)
        .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs={
            "shared": RLModuleSpec(module_class=ActionMaskingTorchRLModule, model_config={"head_fcnet_hiddens": (64,)}),
        }))
        .training(train_batch_size_per_learner=a.batch, minibatch_size=min(a.batch, 1000), num_epochs=3)
        .debugging(seed=a.seed)
    )
    results = []
    with ray_session(None, num_cpus=max(1, a.env_runners + 1)):
        algo = config.build_algo()
        for i in range(a.iterations):
            r = algo.train()
            runners = r.get("env_runners", {})
            results.append(runners)
            print(f"iteration {i + 1}: env-steps {runners.get('num_env_steps_sampled_lifetime')}, "
                  f"episode return (all agents) {runners.get('episode_return_mean')}")
        algo.stop()
    return results


if __name__ == "__main__":
    main()
