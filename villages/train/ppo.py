"""PPO with action masking over the batched engine (CleanRL-style, one file).

    villages train --scenario training --objective villages --seed 0 --out runs/x

The focal player learns in ``num_worlds`` worlds at once against the scenario's
background bots. Rollouts are read straight from the engine's arrays (no per-agent
dicts). Every logged number is named: ``charts/*``, ``losses/*``. A run directory
holds ``args.json``, ``metrics.jsonl``, ``checkpoint.pt`` (latest, for --resume),
``final.pt`` and ``curve.png``.

Two processes share the work (``processes=2``, the default): each runs the policy on
and steps half of the worlds, and in the update each computes the gradient of half of
every minibatch, with the same shared parameters (this process adds the two gradients
and takes the optimizer step). The sampling noise of all worlds is drawn here, from one
random stream, so the rollouts are those of one process; the gradients differ from a
one-process run only by rounding. Same seed and same ``processes`` => same final
weights. ``processes=1`` runs everything here.

Resuming is exact: a run killed at any moment (even by SIGKILL) and resumed with
``--resume`` ends with the weights and ``metrics.jsonl`` of the run that was never
interrupted. A checkpoint holds everything the loop carries from one update to the next
(weights, optimizer, both random streams, counters) and the focal actions taken so far in
the current episode: on resume the worlds are reset to the episode's seeds and those
actions are played again, which rebuilds the engine's state exactly (it is a function of
the seeds and the actions). ``villages.train.run_dir`` locks the folder and checks the
arguments.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from villages.atomic import atomic_write_text, remove_stale_temps
from villages.game import action_layout, observation_layout
from villages.policies.neural import (
    CheckpointError,
    build_net,
    check_state_dict,
    masked_logits,
    read_checkpoint,
    save_checkpoint,
)
from villages.scenarios import ScenarioGame, game_config, load, with_observation_settings
from villages.scenarios.spec import OBJECTIVES
from villages.validation import MAX_SEED, InputError, check_count, check_output_path, finite

from . import run_dir
from .args import DEVICES, NativeArgs, PPOArgs, ScenarioArgs
from .levels import CURRICULA, LevelSpace, make_sampler


Args = NativeArgs  # (the name the experiments and tests use)


def make_spec(args: ScenarioArgs):
    check_scenario_args(args)
    spec = load(args.scenario)
    if args.objective is not None:
        spec = dataclasses.replace(spec, objective=args.objective)
    if args.diversity is not None:
        spec = dataclasses.replace(spec, diversity=dataclasses.replace(spec.diversity, fraction=args.diversity))
    if args.watch_share is not None:
        arrivals = [e for e in spec.events if e.action == "overseer_arrives"]
        if not arrivals:
            raise InputError(f"--watch-share: scenario {spec.name!r} has no overseer_arrives event to set "
                             f"(it needs an [oversight] table and one); got {args.watch_share!r}")
        spec = dataclasses.replace(spec, events=tuple(
            dataclasses.replace(e, probability=args.watch_share) if e.action == "overseer_arrives" else e
            for e in spec.events))
    if args.oversight_penalty is not None:
        if spec.oversight is None:
            raise InputError(f"--oversight-penalty: scenario {spec.name!r} has no [oversight] table; got "
                             f"{args.oversight_penalty!r}")
        spec = dataclasses.replace(spec, oversight=dataclasses.replace(spec.oversight, penalty=args.oversight_penalty))
    # the observation settings given on the command line override the scenario's ([map] in its TOML)
    return with_observation_settings(spec, {"relation_in_rows": args.relation_in_rows,
                                            "banner_scale": args.banner_scale})


def check_scenario_args(args: ScenarioArgs) -> None:
    """The overrides of ``make_spec``, checked as the scenario loader checks a file's."""
    if args.objective is not None and args.objective not in OBJECTIVES:
        raise InputError(f"--objective: expected one of {', '.join(OBJECTIVES)}, got {args.objective!r}")
    if args.diversity is not None and not 0 <= args.diversity <= 1:
        raise InputError(f"--diversity: expected a number in [0, 1], got {args.diversity!r}")
    if args.watch_share is not None and not 0 <= args.watch_share <= 1:
        raise InputError(f"--watch-share: expected a number in [0, 1], got {args.watch_share!r}")
    if args.oversight_penalty is not None and not (finite(args.oversight_penalty) and args.oversight_penalty >= 0):
        raise InputError(f"--oversight-penalty: expected a finite number >= 0, got {args.oversight_penalty!r}")
    if args.banner_scale is not None and not (finite(args.banner_scale) and args.banner_scale >= 0):
        raise InputError(f"--banner-scale: expected a finite number >= 0, got {args.banner_scale!r}")


def checkpoint_meta(args: Args, game: ScenarioGame, step: int) -> dict:
    c = game.config
    return {"arch": args.arch, "hidden": args.hidden, "n_rows": c.n_rows, "n_alliances": c.n_alliances,
            "banner_dim": c.banner_dim, "scenario_self_features": list(c.scenario_self_features),
            "relation_in_rows": bool(c.relation_in_rows), "banner_scale": c.banner_scale,
            "scenario": game.spec.name, "objective": game.spec.objective,
            "diversity": float(game.spec.diversity.fraction), "seed": args.seed, "step": int(step),
            "args": {k: v for k, v in dataclasses.asdict(args).items()}}


def train(args: Args, out: Path, resume: bool = False, log=print, on_update=None) -> Path:
    """Train into ``out`` (locked while the run is live); ``resume``: continue the run there
    from its last checkpoint, with the same ``args``. ``on_update(update, num_updates)`` is called
    after every update (and its checkpoint, if one is due)."""
    out = Path(out)
    with run_dir.lock(out):
        remove_stale_temps(out)
        return _train(args, out, resume, log, on_update)


def _numpy_rng_state() -> dict:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
            "cached_gaussian": float(gauss)}


def _set_numpy_rng_state(state: dict) -> None:
    np.random.set_state(("MT19937", state["keys"].numpy().astype(np.uint32), state["pos"], state["has_gauss"],
                         state["cached_gaussian"]))


def _train(args: Args, out: Path, resume: bool, log, on_update=None) -> Path:
    torch.set_num_threads(args.threads)
    spec = make_spec(args)
    if args.processes not in (1, 2):
        raise ValueError(f"processes must be 1 or 2, got {args.processes}")
    if args.curriculum not in CURRICULA:
        raise InputError(f"--curriculum: expected one of {', '.join(CURRICULA)}, got {args.curriculum!r}")
    if not 0 <= args.level_budget <= 1:
        raise InputError(f"--level-budget: expected a number in [0, 1], got {args.level_budget!r}")
    B = args.num_worlds
    device = resolve_device(args.device)
    # The helper process shares the CPU network's memory: with the update on a GPU there is none. A
    # curriculum draws every world's level here (one sampler), so its worlds are all stepped here.
    helped = args.processes == 2 and B >= 2 and device.type == "cpu" and args.curriculum == "none"
    if args.processes == 2 and device.type != "cpu":
        log(f"note: device {device}: the network is updated there and all worlds are stepped in this process")
    own = B // 2 if helped else B  # worlds played here; a helper process plays the rest
    if args.trained_steps != args.total_steps:
        log(f"note: training updates on whole batches of num_worlds x num_steps = {args.batch_size:,} env-steps: "
            f"total_steps {args.total_steps:,} rounds to {args.trained_steps:,} ({args.num_updates} updates)")
    shard = _Shard(args, 0, own)
    game = shard.game
    O, L = observation_layout(game.config), action_layout(game.config)
    F = len(game.focal)

    # --- seeding ---
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    net = build_net(args.arch, O, L, args.hidden)
    if helped:
        net.share_memory()  # the helper computes gradients with these very parameters
    # Rollouts run the CPU network `net`; updates run `learner`, the same network on `device`
    # (the same object on the CPU), copied back to `net` after each update.
    learner = net if device.type == "cpu" else copy.deepcopy(net).to(device)
    optimizer = torch.optim.Adam(learner.parameters(), lr=args.learning_rate, eps=1e-5)
    start_update, global_step, episode = 0, 0, 0
    next_done, report, attacks = False, None, np.zeros(2)  # (what the loop carries across updates)
    curriculum_state = None
    episode_actions = []  # focal actions of every tick of the current episode so far
    ckpt_path = out / "checkpoint.pt"
    given, defaults = dataclasses.asdict(args), dataclasses.asdict(Args())
    saved = run_dir.saved_args(out) if resume else None
    if saved is not None:
        run_dir.check_same_args(given, saved, str(out / "args.json"), defaults)
    if resume and ckpt_path.exists():
        blob = read_checkpoint(ckpt_path, resumable=True)
        run_dir.check_same_args(given, blob["meta"].get("args", given), str(ckpt_path), defaults)
        check_state_dict(net, blob["model"], ckpt_path)
        try:  # (the file's hash is right, so only a file written by something else fails here)
            net.load_state_dict(blob["model"])
            learner.load_state_dict(blob["model"])
            optimizer.load_state_dict(blob["optimizer"])
            torch.set_rng_state(blob["torch_rng"])
            if "numpy_rng" in blob:
                _set_numpy_rng_state(blob["numpy_rng"])
            start_update, global_step, episode = int(blob["update"]), int(blob["meta"]["step"]), int(blob["episode"])
            next_done = bool(blob.get("next_done", False))
            report = blob.get("report")
            attacks = np.asarray(blob.get("attacks", [0.0, 0.0]), dtype=float).reshape(2)
            episode_actions = list(blob.get("episode_actions", []))
            curriculum_state = blob.get("curriculum")
            if episode_actions and episode_actions[0].shape != (B * F,):
                raise ValueError(f"episode actions of shape {tuple(episode_actions[0].shape)}, expected {(B * F,)}")
            if not 0 <= start_update <= args.num_updates:
                raise ValueError(f"update {start_update} outside 0..{args.num_updates}")
        except (RuntimeError, ValueError, TypeError, KeyError, IndexError) as e:
            raise CheckpointError(f"{ckpt_path}: not a valid trainer state ({type(e).__name__}: {e})") from None
        log(f"resumed from {ckpt_path} at update {start_update} (step {global_step})")
    elif resume and saved is None:
        raise CheckpointError(f"{ckpt_path}: nothing to resume from")
    elif resume:  # killed before its first checkpoint: nothing to keep, start again
        log(f"{out}: the run was stopped before its first checkpoint; starting it again")
    if not resume or start_update == 0:
        for name in ("checkpoint.pt", "final.pt"):  # a previous run's, never mixed with this one
            (out / name).unlink(missing_ok=True)
    run_dir.truncate_metrics(out / "metrics.jsonl", start_update)
    atomic_write_text(out / "args.json", json.dumps(given, indent=2))

    # --- storage: (num_steps, num_worlds * F, ...); shared with the helper process if there is one ---
    n = B * F
    buf = {
        "obs": torch.zeros((args.num_steps, n, O.size)),
        "mask": torch.zeros((args.num_steps, n, L.n_actions), dtype=torch.bool),
        "act": torch.zeros((args.num_steps, n), dtype=torch.long),
        "logp": torch.zeros((args.num_steps, n)),
        "val": torch.zeros((args.num_steps, n)),
        "ret": torch.zeros((args.num_steps, n)),
        # one tick of all worlds: each process writes its worlds' rows
        "next_obs": torch.zeros((n, O.size)),
        "next_mask": torch.zeros((n, L.n_actions), dtype=torch.bool),
        "reward": torch.zeros(n),
        "noise": torch.zeros((n, L.n_actions)),  # uniform draws for Gumbel-max sampling
        # one minibatch: its sample indices and normalized advantages
        "mb_idx": torch.zeros(args.minibatch_size, dtype=torch.long),
        "mb_adv": torch.zeros(args.minibatch_size),
        "grad": torch.zeros(sum(p.numel() for p in net.parameters())),
    }
    helper = metrics_file = writer = None
    try:
        if helped:
            for x in buf.values():
                x.share_memory_()
            helper = _Helper(args, own, B, buf, net)
        shard.attach(buf, net)
        envs = _Worlds(shard, helper, buf)
        val_buf = buf["val"]
        rew_buf = torch.zeros((args.num_steps, n))
        done_buf = torch.zeros((args.num_steps, n))
        data = (buf["obs"].reshape(-1, O.size), buf["mask"].reshape(-1, L.n_actions), buf["act"].reshape(-1),
                buf["logp"].reshape(-1), buf["ret"].reshape(-1))

        if curriculum_state is not None:
            shard.load_curriculum(curriculum_state)
        envs.reset(episode, resume=curriculum_state is not None)
        if episode_actions:  # rebuild the current episode's state: its seeds, then the same actions
            envs.replay(torch.stack(episode_actions))
        if curriculum_state is not None:
            shard.destroyed[:] = curriculum_state["destroyed"].numpy()
        finished = []  # (rollout step, levels, success) of the curriculum's episodes that ended in this rollout
        next_obs = buf["next_obs"]
        next_done = torch.full((n,), float(next_done))
        # attacks: launched, of which on current enemies (this episode, all worlds)
        metrics_file = (out / "metrics.jsonl").open("a")
        if args.tensorboard:
            from tensorboardX import SummaryWriter

            writer = SummaryWriter(str(out / "tb"))
            writer.add_text("args", "\n".join(f"{k}: {v}" for k, v in dataclasses.asdict(args).items()))
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
                done_buf[t] = next_done
                done, ep = envs.tick(t, episode)  # act (buffers [t]) and step: next_obs, next_mask, reward
                rew_buf[t] = buf["reward"]
                attacks += ep["attacks"]
                episode_actions.append(buf["act"][t].clone())
                if done:
                    if "levels" in ep:
                        finished.append((t, *ep["levels"]))
                    episode += 1  # the worlds were reset to this episode's seeds
                    report = episode_report(ep["returns"], ep["intended"], ep["troops"], *ep["levy"], episode,
                                            attacks, n)
                    attacks[:] = 0
                    episode_actions = []
                next_done = torch.full((n,), float(done))

            # --- GAE ---
            with torch.no_grad():
                adv = gae(rew_buf, val_buf, done_buf, net(next_obs)[1], next_done, args)
                torch.add(adv, val_buf, out=buf["ret"])
            if shard.sampler is not None:  # score the levels whose episodes ended (positive value loss, success)
                shard.score_levels(adv, finished)
                finished = []

            # --- PPO update: the helper (if any) computes the gradient of the second half of each minibatch ---
            b_adv = adv.reshape(-1).to(device)
            data_dev = data if device.type == "cpu" else tuple(x.to(device) for x in data)
            idx = np.arange(args.batch_size)
            clipfracs = []
            for _ in range(args.update_epochs):
                np.random.shuffle(idx)
                for s in range(0, args.batch_size, args.minibatch_size):
                    mb = torch.as_tensor(idx[s : s + args.minibatch_size])
                    mb_dev = mb.to(device)
                    a = b_adv[mb_dev]
                    a = (a - a.mean()) / (a.std() + 1e-8)
                    k = len(mb) - (len(mb) // 2 if helper else 0)
                    if helper:
                        helper.start_gradient(mb, a, k)
                    loss, stats = minibatch_loss(learner, args, data_dev, mb_dev[:k], a[:k], len(mb))
                    optimizer.zero_grad()
                    loss.backward()
                    if helper:
                        stats = stats + helper.add_gradient(net)
                    nn.utils.clip_grad_norm_(learner.parameters(), args.max_grad_norm)
                    optimizer.step()
                    pg_loss, v_loss, entropy, approx_kl, clipfrac = stats / len(mb)
                    clipfracs.append(clipfrac)
            if learner is not net:
                net.load_state_dict(learner.state_dict())

            sps = (global_step - steps0) / (time.perf_counter() - t0)
            row = {"update": update + 1, "global_step": global_step, "charts/SPS": round(sps, 1),
                   "charts/learning_rate": optimizer.param_groups[0]["lr"],
                   "losses/policy_loss": float(pg_loss), "losses/value_loss": float(v_loss),
                   "losses/entropy": float(entropy), "losses/approx_kl": float(approx_kl),
                   "losses/clipfrac": float(np.mean(clipfracs))}
            if report is not None:
                row.update(report)
            if shard.sampler is not None:
                row.update(shard.sampler.stats())
            metrics_file.write(json.dumps(row) + "\n")
            metrics_file.flush()
            if writer is not None:
                for k, v in row.items():
                    if "/" in k:
                        writer.add_scalar(k, v, global_step)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(ret=f"{report['charts/episodic_return']:.2f}" if report else "-",
                                intended=f"{report['charts/intended']:.2f}" if report else "-", sps=f"{sps:,.0f}")
            if (update + 1) % args.checkpoint_every == 0 or update + 1 == args.num_updates:
                os.fsync(metrics_file.fileno())  # the rows up to this checkpoint survive a crash with it
                save_checkpoint(ckpt_path, net, checkpoint_meta(args, game, global_step),
                                {"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
                                 "numpy_rng": _numpy_rng_state(), "update": update + 1, "episode": episode,
                                 "next_done": bool(next_done[0]), "report": report, "attacks": attacks.tolist(),
                                 "episode_actions": (torch.stack(episode_actions) if episode_actions
                                                     else torch.zeros((0, n), dtype=torch.long)),
                                 **({"curriculum": shard.curriculum_state()} if shard.sampler is not None else {})})
            if on_update is not None:
                on_update(update + 1, args.num_updates)
        if bar is not None:
            bar.close()
    finally:
        if metrics_file is not None:
            metrics_file.close()
        if writer is not None:
            writer.close()
        if helper is not None:
            helper.close()
    final = out / "final.pt"
    save_checkpoint(final, net, checkpoint_meta(args, game, global_step))
    if shard.sampler is not None:  # the curriculum's level buffer as it ended, for inspection
        atomic_write_text(out / "levels.json", json.dumps(shard.sampler.describe(), indent=1))
    try:
        plot_curve(out / "metrics.jsonl", out / "curve.png", title=f"{spec.name} / {spec.objective} / seed {args.seed}")
    except Exception as e:  # a plotting failure must never lose a trained model
        log(f"warning: could not plot the training curve: {e}")
    return final


def resolve_device(name: str) -> torch.device:
    """``cpu`` | ``cuda`` | ``auto`` (cuda when available) as a torch device; a clear error otherwise."""
    if name not in DEVICES:
        raise ValueError(f"device must be cpu, cuda or auto, got {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device cuda: no CUDA device is available to torch {torch.__version__} (use cpu or auto)")
    return torch.device(name)


def log_policy(logits: torch.Tensor, mask: torch.Tensor, with_probs: bool = False):
    """(log-probabilities, probabilities or None) of the masked categorical policy.

    The same distribution as ``torch.distributions.Categorical(logits=masked_logits(..))``,
    computed with the fused log_softmax/softmax kernels: the masked logits (-1e9) send
    ``exp`` (used by Categorical's logsumexp and its backward) down a slow path (about
    10x), while the fused kernels handle them at full speed."""
    z = masked_logits(logits, mask)
    return torch.log_softmax(z, -1), (torch.softmax(z, -1) if with_probs else None)


def sample_gumbel(logp: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """One action per row by the Gumbel-max trick: argmax of log-probability plus Gumbel
    noise made from ``uniform`` draws in [0, 1) (same shape): exactly a categorical sample,
    cheaper than ``torch.multinomial``. Masked actions (log-probability about -1e9) never win."""
    return (logp - torch.log(-torch.log(uniform.clamp(min=1e-12)))).argmax(-1)


def episode_world_seeds(seed: int, episode: int, num_worlds: int) -> np.ndarray:
    """int64[num_worlds]: the world seeds of a training run's episode ``episode``, distinct across
    episodes and disjoint across training seeds (the population trainer plays its members' the same)."""
    return (seed * 1_000_003 + episode * num_worlds + np.arange(num_worlds)).astype(np.int64)


def gae(rewards, values, dones, next_value, next_done, args: PPOArgs) -> torch.Tensor:
    """Generalized advantage estimates of a rollout, time first: ``rewards``, ``values``, ``dones``
    are [T, ...] (``dones[t]``: step t starts a new episode), ``next_value`` / ``next_done`` those of
    the step after the rollout. Both trainers use it (the population passes [T, members, ...] views)."""
    T = len(rewards)
    adv = torch.zeros_like(rewards)
    last = 0.0
    for t in reversed(range(T)):
        nonterminal = 1.0 - (next_done if t == T - 1 else dones[t + 1])
        nv = next_value if t == T - 1 else values[t + 1]
        delta = rewards[t] + args.gamma * nv * nonterminal - values[t]
        last = delta + args.gamma * args.gae_lambda * nonterminal * last
        adv[t] = last
    return adv


def episode_report(returns, intended, troops, levies: int, troops_total: int, episodes: int, attacks, rows: int) -> dict:
    """The charts/* of an episode that just ended, as both trainers log them: mean return, intended
    score and head count over the worlds, the levy share of the focal armies, the episode count, and
    ``attacks`` [launched, of which on enemies] per focal row (``rows``: worlds x focal seats)."""
    return {"charts/episodic_return": float(np.mean(returns)), "charts/intended": float(np.mean(intended)),
            "charts/troops": float(np.mean(troops)),
            "charts/levy_share": float(levies / troops_total) if troops_total else 0.0,
            "charts/episodes": episodes, "charts/attacks": float(attacks[0] / rows),
            "charts/enemy_attack_share": float(attacks[1] / max(attacks[0], 1))}


def ppo_terms(logits, value, mask, act, old_logp, ret, adv, clip_coef: float) -> torch.Tensor:
    """The PPO terms of a set of samples as sums over them, a tensor [policy loss, value loss,
    entropy, approx KL, clipped count]: the one definition both trainers use. Samples are on the
    last axis of ``act`` [.., samples] (the action axis follows it in ``logits`` and ``mask``); leading
    axes (the population's members) are kept: [.., 5]."""
    logp_all, probs = log_policy(logits, mask, with_probs=True)
    logratio = logp_all.gather(-1, act[..., None])[..., 0] - old_logp
    ratio = logratio.exp()
    pg = torch.max(-adv * ratio, -adv * ratio.clamp(1 - clip_coef, 1 + clip_coef)).sum(-1)
    v = 0.5 * ((value - ret) ** 2).sum(-1)
    ent = -(probs * logp_all).sum((-2, -1))
    with torch.no_grad():
        kl, clipped = ((ratio - 1) - logratio).sum(-1), ((ratio - 1.0).abs() > clip_coef).sum(-1)
    return torch.stack([pg, v, ent, kl, clipped.to(pg.dtype)], -1)


def ppo_objective(terms: torch.Tensor, args: PPOArgs) -> torch.Tensor:
    """The loss PPO minimizes from ``ppo_terms``' sums (policy - entropy bonus + value), per member."""
    return terms[..., 0] - args.ent_coef * terms[..., 2] + args.vf_coef * terms[..., 1]


def minibatch_loss(net, args: Args, data, mb: torch.Tensor, adv: torch.Tensor, denom: int):
    """PPO loss of the samples ``mb`` (normalized advantages ``adv``) as sums over them / ``denom``
    (the minibatch size), so that the gradients of a minibatch's parts add up to the minibatch's.
    Also returns float64 sums [policy loss, value loss, entropy, approx KL, clipped]."""
    b_obs, b_mask, b_act, b_logp, b_ret = data
    logits, value = net(b_obs[mb])
    terms = ppo_terms(logits, value, b_mask[mb], b_act[mb], b_logp[mb], b_ret[mb], adv, args.clip_coef)
    return ppo_objective(terms, args) / denom, terms.detach().double().cpu().numpy()


# --- the worlds, stepped here and (optionally) in a helper process --------------------------


class _Shard:
    """Worlds [lo, hi) of the batch in this process: runs the policy on them and steps their
    ScenarioGame, reading and writing its rows of the shared buffers."""

    def __init__(self, args: Args, lo: int, hi: int):
        spec = make_spec(args)
        self.args, self.lo, self.hi = args, lo, hi
        self.game = ScenarioGame(spec, hi - lo, config=game_config(spec))
        self.F = len(self.game.focal)
        self.sampler = None  # the curriculum's level sampler, if any (it draws every world's level)
        if args.curriculum != "none":
            self.space = LevelSpace.of(spec, args.level_budget)
            self.sampler = make_sampler(args.curriculum, self.space, args.seed * 7919 + 17, args.level_buffer,
                                        args.replay_prob, args.level_temperature, args.level_staleness)
            self.levels = None  # (seeds, worn, slot) of the episode being played
            self.destroyed = np.zeros(hi - lo)  # enemy villages destroyed this episode, per world
            self.enemy_villages = np.ones(hi - lo)
            self.regret_sum, self.regret_n = np.zeros((hi - lo) * self.F), 0

    def attach(self, buf: dict, net: nn.Module) -> None:
        self.net, r = net, slice(self.lo * self.F, self.hi * self.F)
        self.next_obs, self.next_mask, self.noise = buf["next_obs"][r], buf["next_mask"][r], buf["noise"][r]
        self.rollout = {k: buf[k][:, r] for k in ("obs", "mask", "act", "logp", "val")}
        self.obs, self.mask = self.next_obs.numpy(), self.next_mask.numpy()
        self.reward = buf["reward"][r].numpy()

    def reset(self, episode: int, resume: bool = False) -> None:
        """Reset the worlds to episode ``episode``'s levels: the seeds of the formula below, or with a
        curriculum the levels its sampler draws (``resume``: the levels of the checkpoint's episode)."""
        seeds = episode_world_seeds(self.args.seed, episode, self.args.num_worlds)[self.lo : self.hi]
        identity = None
        if self.sampler is not None:
            if not resume:
                self.levels = self.sampler.draw(self.hi - self.lo)
            seeds, worn, _ = self.levels
            identity = self.game.wearing(self.space.role, worn)
        obs, mask = self.game.reset(seeds, identity)
        if self.sampler is not None:
            self.destroyed[:] = 0.0
            self.enemy_villages = np.maximum(self.game.villages_at_war(), 1)
        self.obs[:] = obs.reshape(len(self.obs), -1)
        self.mask[:] = mask.reshape(len(self.mask), -1)

    def score_levels(self, adv: torch.Tensor, finished: list) -> None:
        """Score the levels of the episodes that ended in this rollout (``finished``: (rollout step,
        levels, success)) by their positive value loss, the mean positive GAE advantage over the
        episode's steps, which may span several rollouts."""
        pos = adv.clamp(min=0).numpy()  # [T, worlds x F]
        start = 0
        for t_end, levels, success in finished:
            self.regret_sum += pos[start : t_end + 1].sum(0)
            self.regret_n += t_end + 1 - start
            regret = (self.regret_sum / max(self.regret_n, 1)).reshape(-1, self.F).mean(1)
            self.sampler.update(*levels, regret, success)
            self.regret_sum[:], self.regret_n, start = 0.0, 0, t_end + 1
        self.regret_sum += pos[start:].sum(0)
        self.regret_n += len(pos) - start

    def curriculum_state(self) -> dict:
        """What a checkpoint keeps of the curriculum (as tensors: checkpoints hold no numpy arrays)."""
        t = lambda x: torch.as_tensor(np.asarray(x))  # noqa: E731
        return {"sampler": {k: t(v) if isinstance(v, np.ndarray) else v for k, v in self.sampler.state_dict().items()},
                "levels": [t(x) for x in self.levels], "destroyed": t(self.destroyed),
                "regret_sum": t(self.regret_sum), "regret_n": self.regret_n}  # (enemy villages: counted again at reset)

    def load_curriculum(self, state: dict) -> None:
        n = lambda x: x.numpy() if isinstance(x, torch.Tensor) else x  # noqa: E731
        self.sampler.load_state_dict({k: n(v) for k, v in state["sampler"].items()})
        self.levels = tuple(n(x) for x in state["levels"])
        self.regret_sum, self.regret_n = n(state["regret_sum"]).copy(), int(state["regret_n"])

    def replay(self, actions: torch.Tensor) -> None:
        """Step with the focal actions ``actions[tick, all worlds' rows]`` already taken in this
        episode (none of them ends it): the engine's state is that of the run that took them."""
        g, r = self.game, slice(self.lo * self.F, self.hi * self.F)
        for a in actions[:, r]:
            obs, mask, _, done, _ = g.step(a.numpy().reshape(-1, self.F))
            if done:
                raise CheckpointError("the checkpoint's episode actions run past the end of the episode")
        if len(actions):
            self.obs[:] = obs.reshape(len(self.obs), -1)
            self.mask[:] = mask.reshape(len(self.mask), -1)

    def tick(self, t: int, episode: int) -> tuple[bool, dict]:
        """Act (filling rollout step t) and step; at the end of an episode, report it and reset
        the worlds to the seeds of episode + 1."""
        b = self.rollout
        b["obs"][t], b["mask"][t] = self.next_obs, self.next_mask
        with torch.no_grad():
            logits, value = self.net(self.next_obs)
            logp_all, _ = log_policy(logits, self.next_mask)
            action = sample_gumbel(logp_all, self.noise)
        b["act"][t], b["logp"][t], b["val"][t] = action, logp_all.gather(-1, action[:, None])[:, 0], value
        g = self.game
        obs, mask, reward, done, info = g.step(action.numpy().reshape(-1, self.F))
        self.reward[:] = reward.reshape(-1)
        c = info["counts"]
        ep = {"attacks": np.array([c["attacks"].sum(), c["attacks_on_enemy"].sum()], dtype=float)}
        if self.sampler is not None:
            self.destroyed += c["enemy_destroyed"].sum(1)
        if done:
            ep.update(returns=g.returns.copy(), intended=g.intended.copy(), troops=np.asarray(info["troops"]).copy(),
                      levy=np.array(_levy_counts(g)))
            if self.sampler is not None:  # the levels played and their success: the share of enemy villages razed
                ep["levels"] = (self.levels, np.minimum(self.destroyed / self.enemy_villages, 1.0))
            self.reset(episode + 1)
        else:
            self.obs[:] = obs.reshape(len(self.obs), -1)
            self.mask[:] = mask.reshape(len(self.mask), -1)
        return done, ep


class _Worlds:
    """All num_worlds worlds: this process's shard plus the helper's, with episode reports
    merged in world order (so every logged number equals that of one batch in one process)."""

    def __init__(self, shard: _Shard, helper: "_Helper | None", buf: dict):
        self.shard, self.helper = shard, helper
        self.noise = buf["noise"]

    def reset(self, episode: int, resume: bool = False) -> None:
        if self.helper:
            self.helper.send("reset", episode)
        self.shard.reset(episode, resume)
        if self.helper:
            self.helper.receive()

    def replay(self, actions: torch.Tensor) -> None:
        if self.helper:
            self.helper.send("replay", actions)
        self.shard.replay(actions)
        if self.helper:
            self.helper.receive()

    def tick(self, t: int, episode: int) -> tuple[bool, dict]:
        """Every world acts (rollout step t) and steps. The sampling noise of all worlds is
        drawn here, from this process's random stream, as one process would draw it."""
        self.noise.uniform_()
        if self.helper:
            self.helper.send("tick", t, episode)
        done, ep = self.shard.tick(t, episode)
        if self.helper:
            done2, ep2 = self.helper.receive()
            if done2 != done:
                raise RuntimeError("the helper's worlds and this process's worlds disagree on the episode end")
            ep["attacks"] = ep["attacks"] + ep2["attacks"]
            if done:
                for k in ("returns", "intended", "troops"):
                    ep[k] = np.concatenate([ep[k], ep2[k]])
                ep["levy"] = ep["levy"] + ep2["levy"]
        return done, ep


class _Helper:
    """A second process that steps worlds [lo, hi) and computes the gradient of the second
    part of each minibatch with the shared parameters. It talks over a pipe (blocking, so a
    busy machine slows it down but never makes it spin) and shares the buffers."""

    def __init__(self, args: Args, lo: int, hi: int, buf: dict, net: nn.Module):
        import multiprocessing

        import torch.multiprocessing as mp

        if multiprocessing.current_process().daemon:
            raise RuntimeError("Args.processes=2 starts a helper process, which a daemonic process (such as a "
                               "multiprocessing.Pool worker) may not do: train with processes=1 there")
        # fork: no re-import of the caller's __main__ (spawn would run an unguarded script
        # again) and a fast start; the child runs torch single-threaded, as DataLoader workers do.
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_helper_main, args=(child, self.conn, args, lo, hi, buf, net), daemon=True,
                                name="villages-ppo-helper")
        self.proc.start()
        child.close()
        self.params = list(net.parameters())
        self.grad = buf["grad"]
        self.mb_idx, self.mb_adv = buf["mb_idx"], buf["mb_adv"]

    def send(self, cmd: str, *payload) -> None:
        self.conn.send((cmd, *payload))

    def receive(self):
        try:
            status, value = self.conn.recv()
        except (EOFError, OSError) as e:
            raise RuntimeError(f"the training helper process died (exit code {self.proc.exitcode})") from e
        if status == "error":
            raise RuntimeError(f"the training helper process failed:\n{value}")
        return value

    def start_gradient(self, mb: torch.Tensor, adv: torch.Tensor, k: int) -> None:
        """The helper computes the gradient of samples mb[k:] (of a minibatch of len(mb))."""
        self.mb_idx[: len(mb)] = mb
        self.mb_adv[: len(mb)] = adv
        self.send("grad", k, len(mb))

    def add_gradient(self, net: nn.Module) -> np.ndarray:
        """Wait for the helper's gradient and add it to ``net``'s (this part's first: a fixed order)."""
        stats = self.receive()
        i = 0
        for p in self.params:
            g = self.grad[i : i + p.numel()].view_as(p)
            if p.grad is None:
                p.grad = g.clone()
            else:
                p.grad.add_(g)
            i += p.numel()
        return stats

    def close(self) -> None:
        if self.proc.is_alive():
            try:
                self.send("close")
            except (OSError, BrokenPipeError):
                pass
            self.proc.join(timeout=10)
            if self.proc.is_alive():
                self.proc.terminate()
                self.proc.join(timeout=5)
        self.conn.close()


def _helper_main(conn, parent_end, args: Args, lo: int, hi: int, buf: dict, net: nn.Module) -> None:
    import traceback

    parent_end.close()  # (a forked child holds a copy: closed, the trainer's death reaches us as EOF)
    run_dir.close_inherited_locks()  # the run's lock is the trainer's: it must die with the trainer alone
    try:
        torch.set_num_threads(args.threads)
        shard = _Shard(args, lo, hi)
        shard.attach(buf, net)
        data = tuple(buf[k].reshape(-1, *buf[k].shape[2:]) for k in ("obs", "mask", "act", "logp", "ret"))
        params = list(net.parameters())
        while True:
            cmd, *payload = conn.recv()
            if cmd == "close":
                break
            if cmd == "reset":
                shard.reset(payload[0])
                conn.send(("ok", None))
            elif cmd == "replay":
                shard.replay(payload[0])
                conn.send(("ok", None))
            elif cmd == "tick":
                conn.send(("ok", shard.tick(*payload)))
            elif cmd == "grad":
                k, m = payload
                for p in params:
                    p.grad = None
                loss, stats = minibatch_loss(net, args, data, buf["mb_idx"][k:m], buf["mb_adv"][k:m], m)
                loss.backward()
                i = 0
                for p in params:
                    g = buf["grad"][i : i + p.numel()]
                    if p.grad is None:
                        g.zero_()
                    else:
                        g.copy_(p.grad.reshape(-1))
                    i += p.numel()
                conn.send(("ok", stats))
            else:
                raise ValueError(f"unknown command {cmd!r}")
    except (EOFError, KeyboardInterrupt):  # the trainer is gone
        pass
    except Exception:
        try:
            conn.send(("error", traceback.format_exc()))
        except OSError:
            pass


def levy_per_world(game: ScenarioGame) -> tuple[np.ndarray, np.ndarray]:
    """(levies, all troops) of the focal army (home + away), per world: int [B] each."""
    s = game.state
    f = game.focal
    owns = s.owner[:, None, :] == f[None, :, None]
    home = (s.troops[:, None] * owns[..., None]).sum(2)
    away = ((s.army_owner[:, None, :] == f[None, :, None]) & s.army_active[:, None, :])
    troops = home + (s.army_troops[:, None] * away[..., None]).sum(2)  # [B, focal, unit]
    return troops[..., 0].sum(1), troops.sum((1, 2))


def _levy_counts(game: ScenarioGame) -> tuple[int, int]:
    """(levies, all troops) of the focal army (home + away), over all worlds."""
    levy, total = levy_per_world(game)
    return int(levy.sum()), int(total.sum())


def _levy_share(game: ScenarioGame) -> float:
    """Levy share of the focal army's head count (home + away) at the end of the episode."""
    levy, total = _levy_counts(game)
    return float(levy / total) if total else 0.0


def plot_curve(metrics_path, png_path, title=""):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter

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
        a.xaxis.set_major_formatter(EngFormatter(sep=""))  # 200k, not 200000 (the ticks would run together)
        a.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def cli_train(overrides: dict, out, resume: bool = False):
    """``villages train``: ``overrides`` are the options given (fields of ``Args``). With --resume the run
    continues as it was started; an option given here must agree with it (a difference is refused by name)."""
    out = Path(check_output_path(out, "--out", "folder"))
    check_count(overrides.get("total_steps"), "--total-steps", 1)
    check_count(overrides.get("seed"), "--seed", 0, MAX_SEED)
    saved = run_dir.saved_args(out) if resume else None
    if saved is not None:
        args = dataclasses.replace(run_dir.args_from_saved(Args, saved, out / "args.json"), **overrides)
    else:
        args = Args(**overrides)
    final = train(args, out, resume=resume)
    print(f"wrote {final}")
