"""PPO with action masking over the batched engine (CleanRL-style, one file).

    villages train --scenario training --objective villages --seed 0 --out runs/x

The focal player learns in ``num_worlds`` worlds at once against the scenario's
background bots. Rollouts are read straight from the engine's arrays (no per-agent
dicts). Every logged number is named: ``charts/*``, ``losses/*``. A run directory
holds ``args.json``, ``metrics.jsonl``, ``checkpoint.pt`` (latest, for --resume),
``final.pt`` and ``curve.png``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from villages.game import action_layout, observation_layout
from villages.policies.neural import (
    CheckpointError,
    build_net,
    masked_logits,
    read_checkpoint,
    save_checkpoint,
)
from villages.scenarios import ScenarioGame, game_config, load


@dataclass
class Args:
    scenario: str = "training"
    """built-in scenario name or TOML path (its background bots are the opponents)"""
    objective: str | None = None
    """troops | villages | intended; None = the scenario's own objective"""
    diversity: float | None = None
    """override the scenario's diversity fraction (share of episodes with a randomized enemy identity)"""
    relation_in_rows: bool | None = None
    """override the scenario's observation setting"""
    banner_scale: float | None = None
    """override the salience (magnitude) of alliance identity features in observations"""
    seed: int = 0
    total_steps: int = 600_000
    """env-steps (one per world per tick)"""
    num_worlds: int = 128
    num_steps: int = 32
    """rollout length per update"""
    arch: str = "entity"
    """entity (shared per-village encoder) | flat (MLP ablation)"""
    hidden: int = 64
    learning_rate: float = 5e-4
    anneal_lr: bool = True
    gamma: float = 0.99
    gae_lambda: float = 0.95
    num_minibatches: int = 4
    update_epochs: int = 3
    clip_coef: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    threads: int = 1
    """torch intra-op threads (the engine runs in numpy on the main thread)"""
    checkpoint_every: int = 20
    """updates between checkpoints"""
    progress: bool = True

    @property
    def batch_size(self) -> int:
        return self.num_worlds * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_updates(self) -> int:
        return max(1, self.total_steps // self.batch_size)


def make_spec(args: Args):
    spec = load(args.scenario)
    if args.objective is not None:
        spec = dataclasses.replace(spec, objective=args.objective)
    if args.diversity is not None:
        spec = dataclasses.replace(spec, diversity=dataclasses.replace(spec.diversity, fraction=args.diversity))
    if args.relation_in_rows is not None:
        spec = dataclasses.replace(spec, map=dataclasses.replace(spec.map, relation_in_rows=args.relation_in_rows))
    return spec


def config_overrides(args: Args) -> dict:
    return {} if args.banner_scale is None else {"banner_scale": args.banner_scale}


def checkpoint_meta(args: Args, game: ScenarioGame, step: int) -> dict:
    c = game.config
    return {"arch": args.arch, "hidden": args.hidden, "n_rows": c.n_rows, "n_alliances": c.n_alliances,
            "banner_dim": c.banner_dim, "relation_in_rows": bool(c.relation_in_rows), "banner_scale": c.banner_scale,
            "scenario": game.spec.name, "objective": game.spec.objective,
            "diversity": float(game.spec.diversity.fraction), "seed": args.seed, "step": int(step),
            "args": {k: v for k, v in dataclasses.asdict(args).items()}}


def train(args: Args, out: Path, resume: bool = False, log=print) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    spec = make_spec(args)
    game = ScenarioGame(spec, args.num_worlds, config=game_config(spec, **config_overrides(args)))
    O, L = observation_layout(game.config), action_layout(game.config)
    F = len(game.focal)

    # --- seeding ---
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    net = build_net(args.arch, O, L, args.hidden)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.learning_rate, eps=1e-5)
    start_update, global_step, episode = 0, 0, 0
    ckpt_path = out / "checkpoint.pt"
    if resume:
        if not ckpt_path.exists():
            raise CheckpointError(f"{ckpt_path}: nothing to resume from")
        blob = read_checkpoint(ckpt_path)
        net.load_state_dict(blob["model"])
        optimizer.load_state_dict(blob["optimizer"])
        torch.set_rng_state(blob["torch_rng"])
        start_update, global_step, episode = int(blob["update"]), int(blob["meta"]["step"]), int(blob["episode"])
        log(f"resumed from {ckpt_path} at update {start_update} (step {global_step})")
    else:
        (out / "metrics.jsonl").unlink(missing_ok=True)
    (out / "args.json").write_text(json.dumps(dataclasses.asdict(args), indent=2))

    def episode_seeds(ep):  # worlds of episode ep get distinct seeds, disjoint across training seeds
        return (args.seed * 1_000_003 + ep * args.num_worlds + np.arange(args.num_worlds)).astype(np.int64)

    # --- storage: (num_steps, num_worlds * F, ...) ---
    n = args.num_worlds * F
    obs_buf = torch.zeros((args.num_steps, n, O.size))
    mask_buf = torch.zeros((args.num_steps, n, L.n_actions), dtype=torch.bool)
    act_buf = torch.zeros((args.num_steps, n), dtype=torch.long)
    logp_buf = torch.zeros((args.num_steps, n))
    rew_buf = torch.zeros((args.num_steps, n))
    done_buf = torch.zeros((args.num_steps, n))
    val_buf = torch.zeros((args.num_steps, n))

    obs, mask = game.reset(episode_seeds(episode))
    next_obs = torch.as_tensor(obs.reshape(n, -1))
    next_mask = torch.as_tensor(mask.reshape(n, -1))
    next_done = torch.zeros(n)
    ep_returns, ep_intended, ep_troops, ep_levy = [], [], [], []
    ep_attacks, ep_enemy_attacks = [], []
    attacks = np.zeros(2)  # attacks launched, of which on current enemies (this episode, all worlds)
    metrics_file = (out / "metrics.jsonl").open("a")
    bar = None
    if args.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=args.num_updates, initial=start_update, desc=f"{spec.name}/{spec.objective}/s{args.seed}",
                   unit="upd", dynamic_ncols=True)
    t0, steps0 = time.perf_counter(), global_step
    for update in range(start_update, args.num_updates):
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = args.learning_rate * (1.0 - update / args.num_updates)
        for t in range(args.num_steps):
            global_step += args.num_worlds
            obs_buf[t], mask_buf[t], done_buf[t] = next_obs, next_mask, next_done
            with torch.no_grad():
                logits, value = net(next_obs)
                logp_all, _ = log_policy(logits, next_mask)
                action = sample_gumbel(logp_all)
            act_buf[t], logp_buf[t], val_buf[t] = action, logp_all.gather(-1, action[:, None])[:, 0], value
            obs, mask, reward, done, info = game.step(action.numpy().reshape(args.num_worlds, F))
            rew_buf[t] = torch.as_tensor(reward.reshape(n))
            attacks += info["counts"]["attacks"].sum(), info["counts"]["attacks_on_enemy"].sum()
            if done:
                ep_attacks.append(attacks[0] / n)
                ep_enemy_attacks.append(attacks[1] / max(attacks[0], 1))
                attacks[:] = 0
                ep_returns.append(float(game.returns.mean()))
                ep_intended.append(float(game.intended.mean()))
                ep_troops.append(float(info["troops"].mean()))
                ep_levy.append(_levy_share(game))
                episode += 1
                obs, mask = game.reset(episode_seeds(episode))
            next_obs = torch.as_tensor(obs.reshape(n, -1))
            next_mask = torch.as_tensor(mask.reshape(n, -1))
            next_done = torch.full((n,), float(done))

        # --- GAE ---
        with torch.no_grad():
            next_value = net(next_obs)[1]
            adv = torch.zeros_like(rew_buf)
            last = 0.0
            for t in reversed(range(args.num_steps)):
                nonterminal = 1.0 - (next_done if t == args.num_steps - 1 else done_buf[t + 1])
                nv = next_value if t == args.num_steps - 1 else val_buf[t + 1]
                delta = rew_buf[t] + args.gamma * nv * nonterminal - val_buf[t]
                last = delta + args.gamma * args.gae_lambda * nonterminal * last
                adv[t] = last
            ret = adv + val_buf

        # --- PPO update ---
        b_obs, b_mask = obs_buf.reshape(-1, O.size), mask_buf.reshape(-1, L.n_actions)
        b_act, b_logp, b_adv, b_ret, b_val = (x.reshape(-1) for x in (act_buf, logp_buf, adv, ret, val_buf))
        idx = np.arange(args.batch_size)
        clipfracs = []
        for _ in range(args.update_epochs):
            np.random.shuffle(idx)
            for s in range(0, args.batch_size, args.minibatch_size):
                mb = torch.as_tensor(idx[s : s + args.minibatch_size])
                logits, value = net(b_obs[mb])
                logp_all, probs = log_policy(logits, b_mask[mb], with_probs=True)
                logp = logp_all.gather(-1, b_act[mb][:, None])[:, 0]
                ratio = (logp - b_logp[mb]).exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - (logp - b_logp[mb])).mean()
                    clipfracs.append(((ratio - 1.0).abs() > args.clip_coef).float().mean().item())
                a = b_adv[mb]
                a = (a - a.mean()) / (a.std() + 1e-8)
                pg_loss = torch.max(-a * ratio, -a * ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef)).mean()
                v_loss = 0.5 * ((value - b_ret[mb]) ** 2).mean()
                entropy = -(probs * logp_all).sum(-1).mean()
                loss = pg_loss - args.ent_coef * entropy + args.vf_coef * v_loss
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), args.max_grad_norm)
                optimizer.step()

        sps = (global_step - steps0) / (time.perf_counter() - t0)
        row = {"update": update + 1, "global_step": global_step, "charts/SPS": round(sps, 1),
               "charts/learning_rate": optimizer.param_groups[0]["lr"],
               "losses/policy_loss": pg_loss.item(), "losses/value_loss": v_loss.item(),
               "losses/entropy": entropy.item(), "losses/approx_kl": approx_kl.item(),
               "losses/clipfrac": float(np.mean(clipfracs))}
        if ep_returns:
            row.update({"charts/episodic_return": ep_returns[-1], "charts/intended": ep_intended[-1],
                        "charts/troops": ep_troops[-1], "charts/levy_share": ep_levy[-1], "charts/episodes": episode,
                        "charts/attacks": ep_attacks[-1], "charts/enemy_attack_share": ep_enemy_attacks[-1]})
        metrics_file.write(json.dumps(row) + "\n")
        metrics_file.flush()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(ret=f"{ep_returns[-1]:.2f}" if ep_returns else "-",
                            intended=f"{ep_intended[-1]:.2f}" if ep_intended else "-", sps=f"{sps:,.0f}")
        if (update + 1) % args.checkpoint_every == 0 or update + 1 == args.num_updates:
            save_checkpoint(ckpt_path, net, checkpoint_meta(args, game, global_step),
                            {"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
                             "update": update + 1, "episode": episode})
    metrics_file.close()
    if bar is not None:
        bar.close()
    final = out / "final.pt"
    save_checkpoint(final, net, checkpoint_meta(args, game, global_step))
    try:
        plot_curve(out / "metrics.jsonl", out / "curve.png", title=f"{spec.name} / {spec.objective} / seed {args.seed}")
    except Exception as e:  # a plotting failure must never lose a trained model
        log(f"warning: could not plot the training curve: {e}")
    return final


def log_policy(logits: torch.Tensor, mask: torch.Tensor, with_probs: bool = False):
    """(log-probabilities, probabilities or None) of the masked categorical policy.

    The same distribution as ``torch.distributions.Categorical(logits=masked_logits(..))``,
    computed with the fused log_softmax/softmax kernels: the masked logits (-1e9) send
    ``exp`` (used by Categorical's logsumexp and its backward) down a slow path (about
    10x), while the fused kernels handle them at full speed."""
    z = masked_logits(logits, mask)
    return torch.log_softmax(z, -1), (torch.softmax(z, -1) if with_probs else None)


def sample_gumbel(logp: torch.Tensor) -> torch.Tensor:
    """One action per row by the Gumbel-max trick (argmax of log-probability plus Gumbel
    noise from the torch generator): exactly a categorical sample, cheaper than
    ``torch.multinomial``. Masked actions (log-probability about -1e9) never win."""
    u = torch.rand_like(logp).clamp_(min=1e-12)
    return (logp - torch.log(-torch.log(u))).argmax(-1)


def _levy_share(game: ScenarioGame) -> float:
    """Levy share of the focal army's head count (home + away) at the end of the episode."""
    s = game.state
    f = game.focal
    owns = s.owner[:, None, :] == f[None, :, None]
    home = (s.troops[:, None] * owns[..., None]).sum(2)
    away = ((s.army_owner[:, None, :] == f[None, :, None]) & s.army_active[:, None, :])
    troops = home + (s.army_troops[:, None] * away[..., None]).sum(2)
    total = troops.sum()
    return float(troops[..., 0].sum() / total) if total else 0.0


def plot_curve(metrics_path, png_path, title=""):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in Path(metrics_path).read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "charts/episodic_return" in r]
    if not rows:
        return
    x = [r["global_step"] for r in rows]
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.2))
    for a, key, label in zip(ax, ("charts/episodic_return", "charts/intended", "charts/levy_share"),
                             ("proxy return", "intended score", "levy share")):
        a.plot(x, [r[key] for r in rows])
        a.set_title(label)
        a.set_xlabel("env-steps")
        a.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def cli_train(scenario, objective, seed, steps, out, resume=False):
    args = Args(scenario=scenario, objective=objective, seed=seed)
    if steps is not None:
        args.total_steps = steps
    if resume and (Path(out) / "args.json").exists():
        saved = json.loads((Path(out) / "args.json").read_text())
        args = Args(**saved)
    final = train(args, Path(out), resume=resume)
    print(f"wrote {final}")
