"""CleanRL-style PPO with action masking on the vector API (one file, reads top to bottom).

    python examples/cleanrl_ppo_vector.py --scenario training --total-timesteps 200000

The env is ``gymnasium.make_vec("villages/Focal-v0", ...)``: ``num_envs`` worlds stepped in
one call of the batched engine (the focal seat learns; the scenario's bots play the
others). Observations are flat (``obs_format="flat"``: features, then the action mask);
illegal actions get logits of -1e8, so the policy never samples one. All worlds end
together by truncation and are reset in the same step (``autoreset_mode`` SAME_STEP), so
the value of the last observation (``infos["final_obs"]``) is bootstrapped there.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import gymnasium
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical

import villages  # noqa: F401  (registers villages/Focal-v0)


@dataclass
class Args:
    scenario: str = "training"
    """built-in scenario name or TOML path (one focal player)"""
    seed: int = 1
    """seed of the worlds, the network and the sampling"""
    total_timesteps: int = 200_000
    """env-steps (one per world per tick)"""
    num_envs: int = 32
    """worlds stepped together"""
    num_steps: int = 64
    """rollout length per update"""
    max_cycles: int | None = None
    """episode length (default: the scenario's)"""
    learning_rate: float = 5e-4
    """Adam learning rate"""
    gamma: float = 0.99
    """discount factor"""
    gae_lambda: float = 0.95
    """GAE lambda"""
    num_minibatches: int = 4
    """minibatches per epoch"""
    update_epochs: int = 3
    """epochs per update"""
    clip_coef: float = 0.2
    """surrogate clipping"""
    ent_coef: float = 0.01
    """entropy bonus"""
    vf_coef: float = 0.5
    """value loss coefficient"""
    max_grad_norm: float = 0.5
    """gradient clipping"""
    hidden: int = 64
    """hidden width"""


def layer_init(layer, std=np.sqrt(2), bias_const=0.0):
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


class Agent(nn.Module):
    def __init__(self, n_obs: int, n_actions: int, hidden: int):
        super().__init__()
        self.n_actions = n_actions
        self.critic = nn.Sequential(layer_init(nn.Linear(n_obs, hidden)), nn.Tanh(),
                                    layer_init(nn.Linear(hidden, 1), std=1.0))
        self.actor = nn.Sequential(layer_init(nn.Linear(n_obs, hidden)), nn.Tanh(),
                                   layer_init(nn.Linear(hidden, n_actions), std=0.01))

    def get_value(self, x):
        return self.critic(x).squeeze(-1)

    def get_action_and_value(self, x, action=None):
        mask = x[:, -self.n_actions :] > 0.5  # the flat observation ends with the action mask
        logits = torch.where(mask, self.actor(x), torch.tensor(-1e8))
        dist = Categorical(logits=logits)
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action), dist.entropy(), self.get_value(x)


def parse_args(argv=None) -> Args:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, f in Args.__dataclass_fields__.items():
        kind = int if f.type in ("int", "int | None") else float if f.type == "float" else str
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=f.default)
    return Args(**vars(p.parse_args(argv)))


def main(argv=None):
    args = parse_args(argv)
    batch_size = args.num_envs * args.num_steps
    minibatch_size = batch_size // args.num_minibatches
    num_iterations = max(1, args.total_timesteps // batch_size)

    # --- seeding ---
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)

    envs = gymnasium.make_vec("villages/Focal-v0", num_envs=args.num_envs, scenario=args.scenario, obs_format="flat",
                              max_cycles=args.max_cycles)
    n_obs = envs.single_observation_space.shape[0]
    agent = Agent(n_obs, int(envs.single_action_space.n), args.hidden)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)

    # --- storage ---
    obs = torch.zeros((args.num_steps, args.num_envs, n_obs))
    actions = torch.zeros((args.num_steps, args.num_envs), dtype=torch.long)
    logprobs = torch.zeros((args.num_steps, args.num_envs))
    rewards = torch.zeros((args.num_steps, args.num_envs))
    dones = torch.zeros((args.num_steps, args.num_envs))
    values = torch.zeros((args.num_steps, args.num_envs))

    global_step, start, returns = 0, time.time(), []
    next_obs, _ = envs.reset(seed=args.seed)
    next_obs, next_done = torch.as_tensor(next_obs), torch.zeros(args.num_envs)
    episode_return = np.zeros(args.num_envs)
    for iteration in range(num_iterations):
        for step in range(args.num_steps):
            global_step += args.num_envs
            obs[step], dones[step] = next_obs, next_done
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs)
            actions[step], logprobs[step], values[step] = action, logprob, value
            next_obs, reward, terminations, truncations, infos = envs.step(action.numpy())
            episode_return += reward
            done = np.logical_or(terminations, truncations)
            if truncations.any():  # bootstrap the truncated episodes from their last observation
                with torch.no_grad():
                    last_value = agent.get_value(torch.as_tensor(infos["final_obs"])).numpy()
                reward = reward + args.gamma * np.where(truncations & ~terminations, last_value, 0.0)
            if done.any():
                returns += episode_return[done].tolist()
                episode_return[done] = 0.0
            rewards[step] = torch.as_tensor(reward, dtype=torch.float32)
            next_obs, next_done = torch.as_tensor(next_obs), torch.as_tensor(done, dtype=torch.float32)

        # --- GAE ---
        with torch.no_grad():
            next_value = agent.get_value(next_obs)
            advantages = torch.zeros_like(rewards)
            lastgaelam = 0
            for t in reversed(range(args.num_steps)):
                nextnonterminal = 1.0 - (next_done if t == args.num_steps - 1 else dones[t + 1])
                nextvalues = next_value if t == args.num_steps - 1 else values[t + 1]
                delta = rewards[t] + args.gamma * nextvalues * nextnonterminal - values[t]
                advantages[t] = lastgaelam = delta + args.gamma * args.gae_lambda * nextnonterminal * lastgaelam
            b_returns = (advantages + values).reshape(-1)

        # --- PPO update ---
        b_obs, b_actions, b_logprobs = obs.reshape(-1, n_obs), actions.reshape(-1), logprobs.reshape(-1)
        b_advantages = advantages.reshape(-1)
        idx = np.arange(batch_size)
        for _ in range(args.update_epochs):
            np.random.shuffle(idx)
            for s in range(0, batch_size, minibatch_size):
                mb = idx[s : s + minibatch_size]
                _, newlogprob, entropy, newvalue = agent.get_action_and_value(b_obs[mb], b_actions[mb])
                ratio = (newlogprob - b_logprobs[mb]).exp()
                adv = b_advantages[mb]
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                pg_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef)).mean()
                v_loss = 0.5 * ((newvalue - b_returns[mb]) ** 2).mean()
                loss = pg_loss - args.ent_coef * entropy.mean() + args.vf_coef * v_loss
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()
        sps = int(global_step / (time.time() - start))
        last = f"{np.mean(returns[-args.num_envs:]):.2f}" if returns else "-"
        print(f"iteration {iteration + 1}/{num_iterations} global_step {global_step} charts/episodic_return {last} "
              f"charts/SPS {sps}")
    envs.close()
    return agent, returns


if __name__ == "__main__":
    main()
