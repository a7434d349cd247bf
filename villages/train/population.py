"""Population PPO: many seeds (and configurations of one network shape) in one process.

    villages train-population --seeds 0-9 --scenario training --objective villages --out runs/pop

Each member *is* the single-seed trainer (``villages.train.ppo``, ``processes=1``) run on its
own: member ``(scenario, objective, seed)`` starts from the weights ``villages train --seed``
starts from, plays the worlds of the same seeds, draws its sampling noise and its minibatch
order from the same random streams and takes the same PPO updates with its own Adam state
(``tests/test_population.py`` checks this). What the members share is the work:

* one engine batch per scenario: the worlds of every member that plays it step together;
* one batched model: the members' parameters stacked on a leading axis ``[members, ...]`` and
  one Adam over them (Adam is elementwise, so each member keeps its own moments and step);
  the gradient norm is clipped per member;
* one pass of the network for all members: the networks are written over a leading member axis
  (``villages.policies.neural.MemberNet``), so each layer of every member is one batched matrix
  product, on a CPU as on a GPU;
* ``compile=True``: ``torch.compile`` of the loss and its gradient, compiled once for all members
  (on the 2-core CPU of ``docs/population.md``: 18% less time per update for 5 members, for about 8 s
  more start-up, 13 s more the first time on a machine).

Files: every member writes the single trainer's files into its own folder (``final.pt``,
``metrics.jsonl``, ``args.json``, ``curve.png``), so eval, diagnose and the reports read them
unchanged. The population's state (``population.pt`` in ``out``) resumes a killed run exactly, as
the single trainer's checkpoint does.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from villages.atomic import atomic_write_text, remove_stale_temps
from villages.game import action_layout, observation_layout
from villages.policies.neural import CheckpointError, build_net, read_checkpoint, save_checkpoint, stack_members
from villages.scenarios import ScenarioGame, game_config
from villages.validation import MAX_SEED, InputError

from . import run_dir
from .args import NativeArgs, ScenarioArgs
from .ppo import (checkpoint_meta, episode_report, episode_world_seeds, gae, levy_per_world, log_policy, make_spec,
                  plot_curve, ppo_objective, ppo_terms, resolve_device, sample_gumbel)

STATE_FILE = "population.pt"
MEMBER_FIELDS = tuple(f.name for f in dataclasses.fields(ScenarioArgs))
"""What may differ between members (what is trained where: scenario, objective, diversity, observation
settings, seed); every other ``NativeArgs`` field (network, PPO, budget) is the population's."""


@dataclasses.dataclass(frozen=True)
class Member:
    """One member: the single trainer's ``args`` (its ``MEMBER_FIELDS`` are its own) and the folder
    its files go to."""

    args: NativeArgs
    out: Path


def members_of(base: NativeArgs, runs: list[dict]) -> list[Member]:
    """Members from the population's shared ``base`` args and, per member, ``out`` plus any
    of ``MEMBER_FIELDS``."""
    members = []
    for run in runs:
        run = dict(run)
        out = Path(run.pop("out")).resolve()
        extra = set(run) - set(MEMBER_FIELDS)
        if extra:
            raise ValueError(f"a population member may set only {', '.join(MEMBER_FIELDS)} and out; "
                             f"got {', '.join(sorted(extra))}")
        members.append(Member(dataclasses.replace(base, processes=1, **run), out))
    outs = [m.out for m in members]
    if len(set(outs)) != len(outs):
        raise ValueError("population members must write into different folders")
    return members


class _Group:
    """The members that play one scenario spec, and its engine batch (their worlds, member-major)."""

    def __init__(self, spec, index: list[int], members: list[Member], args: NativeArgs):
        self.spec, self.index = spec, index
        self.B = args.num_worlds
        self.game = ScenarioGame(spec, self.B * len(index), config=game_config(spec))
        self.F = len(self.game.focal)
        self.seeds = [members[i].args.seed for i in index]

    def reset(self, episode: int) -> tuple[np.ndarray, np.ndarray]:
        # the worlds of each member are those of its single-seed run
        obs, mask = self.game.reset(np.concatenate([episode_world_seeds(s, episode, self.B) for s in self.seeds]))
        return self._rows(obs), self._rows(mask)

    def _rows(self, x: np.ndarray) -> np.ndarray:
        """[worlds, F, ..] -> [members, worlds x F, ..] (a member's rows as its single run orders them)."""
        return x.reshape(len(self.index), self.B * self.F, *x.shape[2:])


def train_population(args: NativeArgs, runs: list[dict], out: Path, compile: bool = False, resume: bool = False,
                     log=print, on_update=None) -> list[Path]:
    """Train the members ``runs`` (each: ``out`` and any of ``MEMBER_FIELDS``) with the shared
    settings ``args``; the population's own state goes to ``out``. Returns each member's final.pt.
    ``on_update(update, num_updates)`` is called after every update (progress reporting)."""
    out = Path(out)
    members = members_of(args, runs)
    with run_dir.lock(out):
        remove_stale_temps(out)
        return _train(args, members, out, compile, resume, log, on_update)


def _train(args: NativeArgs, members: list[Member], out: Path, compile: bool, resume: bool, log,
           on_update) -> list[Path]:
    torch.set_num_threads(args.threads)
    if args.curriculum != "none":
        raise ValueError(f"curriculum {args.curriculum!r}: the population trainer plays each scenario's own "
                         f"distribution; train curricula with the single-seed trainer (villages train --curriculum)")
    device = resolve_device(args.device)
    M, T = len(members), args.num_steps
    specs = [make_spec(m.args) for m in members]

    # --- groups: one engine batch per distinct scenario spec ---
    groups: list[_Group] = []
    keys: dict[str, list[int]] = {}
    for i, spec in enumerate(specs):
        keys.setdefault(repr(spec), []).append(i)
    for index in keys.values():
        groups.append(_Group(specs[index[0]], index, members, args))
    O, L = observation_layout(groups[0].game.config), action_layout(groups[0].game.config)
    for g in groups:
        if (observation_layout(g.game.config), action_layout(g.game.config)) != (O, L):
            raise ValueError(f"population members must share one network shape: scenario {g.spec.name!r} has "
                             f"other observation/action sizes than {groups[0].spec.name!r}")
    F = groups[0].F
    n = args.num_worlds * F  # a member's rows per tick

    # --- members: the single trainer's initial weights and random streams, stacked ---
    nets, gens, shufflers = [], [], []
    for m in members:
        torch.manual_seed(m.args.seed)
        nets.append(build_net(args.arch, O, L, args.hidden))
        gen = torch.Generator()
        gen.set_state(torch.get_rng_state())  # the noise stream continues where the weights' draws ended
        gens.append(gen)
        shufflers.append(np.random.RandomState(m.args.seed))
    net = nets[0]  # (its members_forward is the function every member runs, with its own parameters)
    params = {k: v.to(device).requires_grad_() for k, v in stack_members(nets).items()}
    optimizer = torch.optim.Adam(list(params.values()), lr=args.learning_rate, eps=1e-5)

    def terms(obs, mask, act, old_logp, ret, adv) -> torch.Tensor:
        """[members, 5] PPO term sums of each member's minibatch (inputs: [members, mb, ...])."""
        logits, value = net.members_forward(params, obs)
        return ppo_terms(logits, value, mask, act, old_logp, ret, adv, args.clip_coef)

    all_terms = torch.compile(terms) if compile else terms

    @torch.no_grad()
    def forward_all(obs: torch.Tensor):
        """(logits, values) of every member on its own observations ([M, n, ..] in)."""
        return net.members_forward(params, obs)

    @torch.no_grad()
    def act(obs: torch.Tensor, mask: torch.Tensor):
        """Sampled actions, their log-probabilities and the values of all members ([M, n, ..] in)."""
        logits, value = forward_all(obs)
        noise = torch.stack([torch.empty((n, L.n_actions)).uniform_(generator=g) for g in gens]).to(device)
        logp_all, _ = log_policy(logits, mask)
        action = sample_gumbel(logp_all, noise)
        return action, logp_all.gather(-1, action[..., None])[..., 0], value

    # --- state carried from update to update (what population.pt holds) ---
    start_update, global_step = 0, 0
    episode = [0] * len(groups)
    reports: list[dict | None] = [None] * M
    attacks = np.zeros((M, 2))
    episode_actions: list[list[torch.Tensor]] = [[] for _ in groups]  # per group: its members' actions per tick
    done_before = [False] * M  # whether each member's last step ended an episode
    state_path = out / STATE_FILE
    shared = {k: v for k, v in dataclasses.asdict(args).items() if k not in MEMBER_FIELDS}
    plan = {"args": shared, "members": [{**{f: getattr(m.args, f) for f in MEMBER_FIELDS}, "out": str(m.out)}
                                        for m in members]}
    if resume and state_path.exists():
        blob = read_checkpoint(state_path, resumable=True)
        saved_plan = blob["meta"].get("plan")
        if isinstance(saved_plan, dict):  # (states saved before the batched pass also recorded 'vectorize')
            saved_plan = {k: v for k, v in saved_plan.items() if k != "vectorize"}
        if saved_plan != json.loads(json.dumps(plan)):
            raise CheckpointError(f"{state_path}: it holds another population (members or settings differ)")
        try:
            for k, v in params.items():
                v.data.copy_(blob["model"][k])
            optimizer.load_state_dict(blob["optimizer"])
            for g, st in zip(gens, blob["generators"]):
                g.set_state(st)
            for r, st in zip(shufflers, blob["shufflers"]):
                r.set_state(("MT19937", st["keys"].numpy().astype(np.uint32), st["pos"], 0, 0.0))
            start_update, global_step = int(blob["update"]), int(blob["meta"]["step"])
            episode = [int(e) for e in blob["episode"]]
            reports = list(blob["reports"])
            attacks = blob["attacks"].numpy().astype(float)
            episode_actions = [list(a) for a in blob["episode_actions"]]
            done_before = [bool(x) for x in blob["next_done"]]
        except (RuntimeError, ValueError, TypeError, KeyError, IndexError) as e:
            raise CheckpointError(f"{state_path}: not a valid population state ({type(e).__name__}: {e})") from None
        log(f"resumed the population from {state_path} at update {start_update}")
    elif resume and not state_path.exists():
        log(f"{out}: no population state to resume from; starting the population again")
    if start_update == 0:
        for m in members:
            for name in ("checkpoint.pt", "final.pt", "done.json"):
                (m.out / name).unlink(missing_ok=True)
    for m in members:
        m.out.mkdir(parents=True, exist_ok=True)
        run_dir.truncate_metrics(m.out / "metrics.jsonl", start_update)
        atomic_write_text(m.out / "args.json", json.dumps(dataclasses.asdict(m.args), indent=2))
    atomic_write_text(out / "population.json", json.dumps(plan, indent=2))

    # --- storage: [members, T, n, ...] ---
    obs_buf = torch.zeros((M, T, n, O.size), device=device)
    mask_buf = torch.zeros((M, T, n, L.n_actions), dtype=torch.bool, device=device)
    act_buf = torch.zeros((M, T, n), dtype=torch.long, device=device)
    logp_buf, val_buf, rew_buf, done_buf = (torch.zeros((M, T, n), device=device) for _ in range(4))
    next_obs = torch.zeros((M, n, O.size), device=device)
    next_mask = torch.zeros((M, n, L.n_actions), dtype=torch.bool, device=device)
    next_done = torch.zeros((M, n), device=device)

    def observe(gi: int, obs: np.ndarray, mask: np.ndarray) -> None:
        idx = groups[gi].index
        next_obs[idx] = torch.from_numpy(obs).to(device)
        next_mask[idx] = torch.from_numpy(mask).to(device)

    for gi, g in enumerate(groups):
        observe(gi, *g.reset(episode[gi]))
        if episode_actions[gi]:  # rebuild the current episode's state from its seeds and actions
            for a in episode_actions[gi]:
                obs, mask, _, done, _ = g.game.step(a.numpy().reshape(-1, F))
                if done:
                    raise CheckpointError(f"{state_path}: its episode actions run past the end of the episode")
            observe(gi, g._rows(obs), g._rows(mask))
    next_done[:] = torch.tensor(done_before, dtype=torch.float32, device=device)[:, None]

    files = [(m.out / "metrics.jsonl").open("a") for m in members]
    writers = []
    if args.tensorboard:  # (as the single trainer: each member's charts/* and losses/* under <member>/tb)
        from tensorboardX import SummaryWriter

        writers = [SummaryWriter(str(m.out / "tb")) for m in members]
    t0, steps0 = time.perf_counter(), global_step
    try:
        for update in range(start_update, args.num_updates):
            lr = args.learning_rate * (1.0 - update / args.num_updates) if args.anneal_lr else args.learning_rate
            optimizer.param_groups[0]["lr"] = lr
            for t in range(T):
                global_step += args.num_worlds
                done_buf[:, t] = next_done
                obs_buf[:, t], mask_buf[:, t] = next_obs, next_mask
                action, logp, value = act(next_obs, next_mask)
                act_buf[:, t], logp_buf[:, t], val_buf[:, t] = action, logp, value
                action = action.cpu()
                for gi, g in enumerate(groups):
                    a = action[g.index]
                    obs, mask, reward, done, info = g.game.step(a.numpy().reshape(-1, F))
                    rew_buf[g.index, t] = torch.from_numpy(g._rows(reward.astype(np.float32))).to(device)
                    c = info["counts"]
                    attacks[g.index] += np.stack([g._rows(c["attacks"]).sum(1),
                                                  g._rows(c["attacks_on_enemy"]).sum(1)], 1)
                    episode_actions[gi].append(a.reshape(-1))
                    if done:
                        _report(g, info, attacks, reports, episode[gi] + 1, n)
                        episode[gi] += 1
                        episode_actions[gi] = []
                        obs, mask = g.reset(episode[gi])
                    else:
                        obs, mask = g._rows(obs), g._rows(mask)
                    observe(gi, obs, mask)
                    next_done[g.index] = float(done)

            # --- GAE, all members at once ---
            with torch.no_grad():
                time_first = lambda x: x.transpose(0, 1)  # noqa: E731  ([M, T, n] -> [T, M, n] views)
                adv = time_first(gae(time_first(rew_buf), time_first(val_buf), time_first(done_buf),
                                     forward_all(next_obs)[1], next_done, args))
                ret = adv + val_buf

            # --- PPO update: each member shuffles its own samples, one minibatch of each at a time ---
            flat = lambda x: x.reshape(M, args.batch_size, *x.shape[3:])  # noqa: E731
            b_obs, b_mask, b_act, b_logp, b_ret, b_adv = map(flat, (obs_buf, mask_buf, act_buf, logp_buf, ret, adv))
            idx = np.tile(np.arange(args.batch_size), (M, 1))
            clipped = np.zeros(M)
            for _ in range(args.update_epochs):
                for i, r in enumerate(shufflers):
                    r.shuffle(idx[i])
                for s in range(0, args.batch_size, args.minibatch_size):
                    mb = torch.as_tensor(idx[:, s : s + args.minibatch_size], device=device)  # [M, mb]

                    def take(x):  # each member's minibatch rows of x [M, batch, ...]
                        return x.gather(1, mb.reshape(M, -1, *[1] * (x.dim() - 2)).expand(M, mb.shape[1], *x.shape[2:]))

                    a = take(b_adv)
                    a = (a - a.mean(1, keepdim=True)) / (a.std(1, keepdim=True) + 1e-8)
                    sums = all_terms(take(b_obs), take(b_mask), take(b_act), take(b_logp), take(b_ret), a)
                    loss = ppo_objective(sums, args).sum() / mb.shape[1]
                    optimizer.zero_grad()
                    loss.backward()
                    _clip_per_member(params, args.max_grad_norm)
                    optimizer.step()
                    sums = sums.detach().double().cpu().numpy() / mb.shape[1]  # (the last minibatch's, as ppo logs)
                    clipped += sums[:, 4]
            clipfrac = clipped / (args.update_epochs * args.num_minibatches)

            sps = (global_step - steps0) * M / (time.perf_counter() - t0)
            for i, f in enumerate(files):
                row = {"update": update + 1, "global_step": global_step, "charts/SPS": round(sps / M, 1),
                       "charts/population_SPS": round(sps, 1), "charts/learning_rate": lr,
                       "losses/policy_loss": float(sums[i, 0]), "losses/value_loss": float(sums[i, 1]),
                       "losses/entropy": float(sums[i, 2]), "losses/approx_kl": float(sums[i, 3]),
                       "losses/clipfrac": float(clipfrac[i])}
                if reports[i] is not None:
                    row.update(reports[i])
                f.write(json.dumps(row) + "\n")
                for k, v in row.items():
                    if writers and "/" in k:
                        writers[i].add_scalar(k, v, global_step)
                f.flush()
            if (update + 1) % args.checkpoint_every == 0 or update + 1 == args.num_updates:
                for f in files:
                    os.fsync(f.fileno())
                _save_state(state_path, params, args, groups[0], global_step, plan, {
                    "optimizer": optimizer.state_dict(), "generators": [g.get_state() for g in gens],
                    "shufflers": [_rs_state(r) for r in shufflers], "update": update + 1, "torch_rng": torch.get_rng_state(),
                    "episode": episode, "reports": reports, "attacks": torch.from_numpy(attacks),
                    "next_done": [bool(next_done[i, 0]) for i in range(M)],
                    "episode_actions": [torch.stack(a) if a else torch.zeros((0, len(g.index) * n), dtype=torch.long)
                                        for a, g in zip(episode_actions, groups)]})
            if on_update is not None:
                on_update(update + 1, args.num_updates)
    finally:
        for f in files:
            f.close()
        for w in writers:
            w.close()

    finals = []
    for i, m in enumerate(members):
        nets[i].load_state_dict({k: v[i].detach().cpu() for k, v in params.items()})
        game = next(g for g in groups if i in g.index).game
        final = m.out / "final.pt"
        save_checkpoint(final, nets[i], checkpoint_meta(m.args, game, global_step))
        try:
            plot_curve(m.out / "metrics.jsonl", m.out / "curve.png",
                       title=f"{specs[i].name} / {specs[i].objective} / seed {m.args.seed}")
        except Exception as e:  # a plotting failure must never lose a trained model
            log(f"warning: could not plot the training curve of {m.out}: {e}")
        finals.append(final)
    return finals


def _report(g: _Group, info: dict, attacks: np.ndarray, reports: list, episodes: int, n: int) -> None:
    """The charts/* episode report of each member of ``g`` at the end of an episode (as ppo logs it)."""
    game = g.game
    returns, intended = g._rows(game.returns), g._rows(game.intended)
    troops = g._rows(np.asarray(info["troops"]).reshape(game.B, -1))
    levy, total = (x.reshape(len(g.index), -1).sum(1) for x in levy_per_world(game))
    for j, i in enumerate(g.index):
        reports[i] = episode_report(returns[j], intended[j], troops[j], levy[j], total[j], episodes, attacks[i], n)
        attacks[i] = 0.0


def _clip_per_member(params: dict, max_norm: float) -> None:
    """``nn.utils.clip_grad_norm_`` of each member's gradient (the slices [i] of the stacked ones)."""
    grads = [p.grad for p in params.values() if p.grad is not None]
    norms = torch.stack([g.reshape(g.shape[0], -1).norm(dim=1) for g in grads], 1).norm(dim=1)  # [members]
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.reshape(-1, *[1] * (g.dim() - 1)))


def _rs_state(r: np.random.RandomState) -> dict:
    _, keys, pos, _, _ = r.get_state()
    return {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos)}


def _save_state(path: Path, params: dict, args: NativeArgs, group: _Group, step: int, plan: dict, extra: dict):
    meta = dict(checkpoint_meta(args, group.game, step), plan=plan)
    save_checkpoint(path, {k: v.detach().cpu() for k, v in params.items()}, meta, extra)


def cli_train_population(overrides: dict, out, seeds: list[int], compile: bool, resume: bool = False) -> None:
    """``villages train --seeds ...``: the population of ``seeds`` (one member per seed, each into
    ``<out>/seed<N>``) with the other options shared; a progress bar over updates."""
    from tqdm.auto import tqdm

    from villages.validation import check_count, check_output_path

    out = Path(check_output_path(out, "--out", "folder"))
    check_count(overrides.get("total_steps"), "--total-steps", 1)
    for s in seeds:
        check_count(s, "--seeds", 0, MAX_SEED)
    if len(set(seeds)) != len(seeds):
        raise InputError(f"--seeds: each seed once, got {seeds}")
    args = NativeArgs(**overrides)
    runs = [dict(seed=s, out=out / f"seed{s}") for s in seeds]
    bar = tqdm(total=args.num_updates, desc=f"population of {len(seeds)}", unit="upd", disable=not args.progress)

    def on_update(done: int, total: int) -> None:
        bar.n = done
        bar.refresh()

    try:
        finals = train_population(args, runs, out, compile=compile, resume=resume, on_update=on_update)
    finally:
        bar.close()
    for f in finals:
        print(f"wrote {f}")
