"""TorchRL: ``PettingZooWrapper`` over the villages facade, PPO with one shared policy per group.

    python examples/torchrl_pettingzoo.py --frames 100000

The wrapper groups the agents by name (``<group>_<n>``): ``focal`` (the players under test)
and ``background`` (everyone else); each group gets its own masked policy and value
network, shared by the agents in it (parameter sharing within a group, as in TorchRL's
multi-agent PPO tutorial). ``return_state=True`` adds the global ``state()`` vector;
``use_mask=True`` marks agents that have left the game; the facade's ``action_mask``
drives a ``MaskedCategorical``, so illegal actions are never sampled.
"""

from __future__ import annotations

import argparse

import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn
from torchrl.collectors import Collector
from torchrl.envs.libs.pettingzoo import PettingZooWrapper
from torchrl.modules import MaskedCategorical, MLP, ProbabilisticActor, ValueOperator
from torchrl.objectives import ClipPPOLoss

import villages


def make_env(scenario: str, max_cycles: int | None, seed: int) -> PettingZooWrapper:
    return PettingZooWrapper(villages.parallel_env(scenario=scenario, max_cycles=max_cycles), use_mask=True,
                             return_state=True, done_on_any=False, seed=seed)


def group_modules(env, group: str, hidden: int):
    """(actor, critic) of one group: MLPs applied to every agent of the group (shared weights)."""
    obs_key = (group, "observation", "observation")
    n_obs = env.observation_spec[obs_key].shape[-1]
    n_actions = env.full_action_spec[group, "action"].space.n
    logits = TensorDictModule(MLP(in_features=n_obs, out_features=n_actions, num_cells=[hidden]),
                              in_keys=[obs_key], out_keys=[(group, "logits")])
    actor = ProbabilisticActor(logits, in_keys={"logits": (group, "logits"), "mask": (group, "action_mask")},
                               out_keys=[(group, "action")], distribution_class=MaskedCategorical,
                               return_log_prob=True, log_prob_key=(group, "sample_log_prob"))
    critic = ValueOperator(MLP(in_features=n_obs, out_features=1, num_cells=[hidden]), in_keys=[obs_key],
                           out_keys=[(group, "state_value")])
    return actor, critic


def group_loss(actor, critic, group: str, gamma: float, lmbda: float) -> ClipPPOLoss:
    loss = ClipPPOLoss(actor, critic, clip_epsilon=0.2, entropy_coeff=0.01, normalize_advantage=False)
    loss.set_keys(reward=(group, "reward"), action=(group, "action"), sample_log_prob=(group, "sample_log_prob"),
                  value=(group, "state_value"), advantage=(group, "advantage"),
                  value_target=(group, "value_target"), done=(group, "done"), terminated=(group, "terminated"))
    loss.make_value_estimator(gamma=gamma, lmbda=lmbda)
    return loss


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default="training")
    p.add_argument("--max-cycles", type=int, default=None, help="episode length (default: the scenario's)")
    p.add_argument("--frames", type=int, default=100_000, help="env-steps to train for")
    p.add_argument("--frames-per-batch", type=int, default=1_000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    torch.manual_seed(a.seed)

    env = make_env(a.scenario, a.max_cycles, a.seed)
    groups = list(env.group_map)
    modules = {g: group_modules(env, g, a.hidden) for g in groups}
    losses = {g: group_loss(actor, critic, g, gamma=0.99, lmbda=0.95) for g, (actor, critic) in modules.items()}
    policy = TensorDictSequential(*(actor for actor, _ in modules.values()))
    params = [p for loss in losses.values() for p in loss.parameters()]
    optimizer = torch.optim.Adam(params, lr=5e-4)
    collector = Collector(env, policy, frames_per_batch=a.frames_per_batch, total_frames=a.frames)
    history = []
    for batch in collector:
        for _ in range(a.epochs):
            total = 0.0
            for g, loss in losses.items():
                with torch.no_grad():
                    loss.value_estimator(batch, params=loss.critic_network_params,
                                         target_params=loss.target_critic_network_params)
                out = loss(batch)
                total = total + out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]
            optimizer.zero_grad()
            total.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
        collector.update_policy_weights_()
        history.append({g: float(batch.get(("next", g, "reward")).mean()) for g in groups})
        print(f"frames {len(history) * a.frames_per_batch}: mean reward per step " +
              ", ".join(f"{g} {r:.3f}" for g, r in history[-1].items()))
    collector.shutdown()
    env.close()
    return env, history


if __name__ == "__main__":
    main()
