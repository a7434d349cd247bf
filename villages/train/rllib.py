"""RLlib PPO backend (new API stack) over the PettingZoo facade, exported to the project's checkpoint format.

    villages train --backend rllib --scenario training --steps 200000 --num-env-runners 2 --out runs/rl
    villages train --backend rllib ... --address ray://head:10001      # an existing Ray cluster

Design:

* **Only the focal player is an RLlib agent.** The env is
  ``ParallelPettingZooEnv(villages.pettingzoo_env.parallel_env(agents="focal"))``: the
  scenario's background players keep following their scripted bots *inside* the env, as
  in the native trainer and in evaluation (Melting Pot style). The alternative (every
  seat an agent, bots as RLModules excluded via ``policies_to_train``) would route nine
  scripted seats per world through RLlib's per-agent episode bookkeeping and connector
  pipeline every tick, for no gain: the bots are not trained and their batched numpy
  implementation already lives in the scenario runtime (it also keeps scenario events
  that switch a seat's policy, e.g. an alliance's players leaving, in one place). One module,
  ``"assistant"``, is trained; ``policy_mapping_fn`` maps every agent id to it.
* **The RLModule wraps the project's own network** (``build_net(arch, ...)`` from
  ``villages.policies.neural``) as ``self.net`` and masks its logits with the
  observation's ``action_mask`` (the same ``masked_logits`` the native trainer uses), so
  the default PPO module, which cannot read Dict observations, is not needed. Its
  state_dict is the network's with a ``net.`` prefix; :func:`export_checkpoint` strips
  it and writes a normal ``villages`` checkpoint (``save_checkpoint`` + the same meta as
  the native trainer, plus ``backend: "rllib"``). ``villages eval``, the demo report and
  replays load it with ``villages.policies.load_policy`` — without Ray.
* Ray is imported lazily: ``import villages.train.rllib`` does not import ray. The
  RLModule and env classes are built on first attribute access (module ``__getattr__``)
  and registered under this module's name, so Ray pickles them by reference and remote
  env runners import them from the installed project.
* Local runs start a private Ray instance (``address="local"``, no dashboard, temp dir
  ``/tmp/vray_<pid>_*`` — unix socket paths are limited to ~107 characters, so it cannot
  live under a deep run directory — removed after ``ray.shutdown()``), token auth off and
  usage stats off, and RLlib's logger directory redirected into the run's output: a run
  writes nothing to the user's home directory.

Outputs (``out``): ``args.json``, ``metrics.jsonl`` (``charts/*``, ``losses/*`` like the
native trainer), ``checkpoint.pt`` (exported every ``checkpoint_every`` iterations),
``final.pt`` and ``curve.png``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .args import PPOArgs

MODULE_ID = "assistant"
ENV_NAME = "villages_focal"


@dataclass
class RLlibArgs(PPOArgs):
    total_steps: int = 200_000
    """env-steps (one per tick of one world); rounded up to whole training batches"""
    train_batch_size: int = 4096
    """env-steps per training iteration"""
    minibatch_size: int = 1024
    """env-steps per minibatch"""
    num_epochs: int = 3
    """epochs over each training batch (set explicitly: RLlib's default, 30 epochs of 128, is several times slower)"""
    num_env_runners: int = 0
    """remote env runners; 0 = sample in the driver process (fastest on a 2-core machine)"""
    num_envs_per_env_runner: int = 8
    """worlds per env runner (one batched forward pass for all of them)"""
    address: str | None = None
    """an existing Ray cluster (`ray start --head` prints it); None = a private local instance"""
    checkpoint_every: int = 10
    """iterations between exports of checkpoint.pt"""
    progress: bool = True
    """show a progress bar"""


# --- Ray session -------------------------------------------------------------------------------


def _short_tmp_root() -> str:
    return "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None, runtime_env: dict | None = None,
                log_to_driver: bool = False):
    """Start (and afterwards stop) Ray unless it is already initialized.

    ``address=None``: a private local instance (``address="local"``) with its own temp dir
    ``/tmp/vray_<pid>_*`` (removed on exit), no dashboard, token auth and usage stats off.
    ``address="host:port"`` / ``"ray://host:10001"`` / ``"auto"``: connect to a cluster; for
    ``runtime_env`` see docs/scale-out.md. Yields the temp dir (None when connecting to a
    cluster or when Ray was already up — then the caller owns it and nothing is shut down).
    """
    import ray

    if ray.is_initialized():
        yield None
        return
    kw = dict(include_dashboard=False, log_to_driver=log_to_driver, logging_level="WARNING")
    if runtime_env:
        kw["runtime_env"] = runtime_env
    tmp, saved_env = None, {}
    if address is None:
        for k, v in (("RAY_AUTH_MODE", "disabled"), ("RAY_USAGE_STATS_ENABLED", "0")):
            saved_env[k] = os.environ.get(k)
            os.environ[k] = v
        tmp = tempfile.mkdtemp(prefix=f"vray_{os.getpid()}_", dir=_short_tmp_root())
        kw.update(address="local", num_cpus=int(num_cpus or os.cpu_count() or 1), _temp_dir=tmp,
                  object_store_memory=256 * 1024**2)
    else:
        kw["address"] = address
    try:
        ray.init(**kw)
        yield tmp
    finally:
        ray.shutdown()
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def project_runtime_env() -> dict:
    """A runtime_env that ships this checkout's ``villages`` package to every worker
    (dependencies — numpy, torch, gymnasium, pettingzoo, ray — must be installed there)."""
    import villages

    return {"py_modules": [str(Path(villages.__file__).parent)],
            "excludes": ["__pycache__", "*.pyc"]}


@contextlib.contextmanager
def _logs_into(path: Path):
    """RLlib's Algorithm (a Tune Trainable) makes a log dir under ~/ray_results when run
    outside Tune; put it into the run's output instead."""
    from ray.tune.trainable import trainable as _trainable

    path = Path(path)
    existed = path.exists()
    before = set(path.iterdir()) if existed else set()
    old = _trainable.DEFAULT_STORAGE_PATH
    _trainable.DEFAULT_STORAGE_PATH = str(path)
    try:
        yield
    finally:
        _trainable.DEFAULT_STORAGE_PATH = old
        if path.is_dir():  # RLlib leaves empty per-Algorithm log dirs there: tidy them away
            for d in set(path.iterdir()) - before:
                if d.is_dir() and not any(d.iterdir()):
                    d.rmdir()
            if not existed and not any(path.iterdir()):
                path.rmdir()


# --- spec / sizes --------------------------------------------------------------------------------


def _spec_and_config(args):
    from villages.scenarios import game_config
    from villages.train.ppo import make_spec

    spec = make_spec(args)
    return spec, game_config(spec)


def model_config(args, config) -> dict:
    """What the RLModule needs to build the project's network (plain values: it travels to workers)."""
    return {"arch": args.arch, "hidden": int(args.hidden), "torch_threads": 1, "n_rows": int(config.n_rows),
            "n_alliances": int(config.n_alliances), "banner_dim": int(config.banner_dim),
            "scenario_self_features": list(config.scenario_self_features)}


# --- lazily built Ray classes -----------------------------------------------------------------

_LAZY = ("VillagesTorchRLModule", "VillagesRLlibEnv", "VillagesCallbacks")


def __getattr__(name):  # PEP 562: build the Ray-dependent classes on first use only
    if name in _LAZY:
        _build_classes()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _build_classes():
    import torch
    from ray.rllib.callbacks.callbacks import RLlibCallback
    from ray.rllib.core.columns import Columns
    from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
    from ray.rllib.core.rl_module.torch import TorchRLModule
    from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv

    from villages.game import ObservationLayout
    from villages.game.layouts import ActionLayout
    from villages.policies.neural import build_net, masked_logits

    class VillagesTorchRLModule(TorchRLModule, ValueFunctionAPI):
        """The project's policy network (``self.net``) behind RLlib's RLModule API.

        Observations arrive as ``{"observation": float32[B, obs], "action_mask": int8[B, nA]}``;
        logits of illegal actions are set to -1e9 (exactly the native trainer's masking),
        so sampling, log-probs, entropy and KL only ever see legal actions."""

        def setup(self):
            mc = self.model_config
            # Tiny matmuls: extra intra-op threads only spin against the env (and against
            # the other runners on the same node). Same setting as the native trainer.
            torch.set_num_threads(int(mc.get("torch_threads", 1)))
            O = ObservationLayout.of(mc)
            L = ActionLayout(mc["n_rows"], mc["n_alliances"])
            self.net = build_net(mc["arch"], O, L, mc["hidden"])

        def _logits_value(self, batch):
            obs = batch[Columns.OBS]
            logits, value = self.net(obs["observation"].float())
            return masked_logits(logits, obs["action_mask"].bool()), value

        def _forward(self, batch, **kwargs):
            logits, _ = self._logits_value(batch)
            return {Columns.ACTION_DIST_INPUTS: logits}

        def _forward_train(self, batch, **kwargs):
            # One pass for both heads: the value rides along as "embeddings", which PPO's
            # loss hands back to compute_values().
            logits, value = self._logits_value(batch)
            return {Columns.ACTION_DIST_INPUTS: logits, Columns.EMBEDDINGS: value}

        def compute_values(self, batch, embeddings=None):
            if embeddings is not None:
                return embeddings
            return self.net(batch[Columns.OBS]["observation"].float())[1]

    class VillagesRLlibEnv(ParallelPettingZooEnv):
        """``ParallelPettingZooEnv`` over the facade with only the focal seat(s) as agents.

        ``env_config``: ``spec`` (a ScenarioSpec), ``config`` (its GameConfig), ``seed``.
        Episodes get reproducible world seeds drawn per (seed, worker, sub-env); the final
        step's infos carry the episode's hidden ``intended`` score and levy share."""

        def __init__(self, env_config=None):
            from villages.pettingzoo_env import parallel_env

            env_config = env_config or {}
            spec = env_config.get("spec", "training")
            pz = parallel_env(scenario=spec, agents="focal", config=env_config.get("config"),
                              invalid_action="raise")
            super().__init__(pz)
            self._stream = [int(env_config.get("seed", 0)), int(getattr(env_config, "worker_index", 0))]
            self._rng = np.random.default_rng(self._stream + [int(getattr(env_config, "vector_index", 0))])
            self._intended = 0.0

        def reset(self, *, seed=None, options=None):
            if seed is not None:
                # RLlib seeds sub-env i of runner w with config.seed + w + i, which collides
                # across runners and training seeds: key the episode stream on
                # (training seed, runner, that number) instead.
                self._rng = np.random.default_rng(self._stream + [int(seed)])
            self._intended = 0.0
            return super().reset(seed=int(self._rng.integers(2**31)), options=options)

        def step(self, action_dict):
            obs, rew, term, trunc, infos = super().step(action_dict)
            self._intended += sum(float(i.get("intended", 0.0)) for i in infos.values())
            if term["__all__"] or trunc["__all__"]:
                from villages.train.ppo import _levy_share

                game = self.par_env.game
                extra = {"episode_intended": self._intended, "episode_levy_share": _levy_share(game),
                         "episode_troops": float(sum(i.get("troops", 0) for i in infos.values()))}
                for a in infos:
                    infos[a] = dict(infos[a], **extra)
            return obs, rew, term, trunc, infos

    class VillagesCallbacks(RLlibCallback):
        def on_episode_end(self, *, episode, metrics_logger=None, **kwargs):
            if metrics_logger is None:
                return
            try:
                last = episode.get_infos(-1)
            except Exception:  # an episode chunk without infos: nothing to log
                return
            for info in last.values():
                if isinstance(info, dict) and "episode_intended" in info:
                    for k in ("intended", "levy_share", "troops"):
                        metrics_logger.log_value(f"villages_{k}", float(info[f"episode_{k}"]), reduce="mean",
                                                 window=50)
                    break

    for cls in (VillagesTorchRLModule, VillagesRLlibEnv, VillagesCallbacks):
        cls.__module__ = __name__
        cls.__qualname__ = cls.__name__
        globals()[cls.__name__] = cls


def _env_creator(env_config):
    from villages.train import rllib

    return rllib.VillagesRLlibEnv(env_config)


# --- config / training -------------------------------------------------------------------------


def build_config(args: RLlibArgs):
    """The PPOConfig (new API stack) for ``args``."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec
    from ray.tune.registry import register_env

    from villages.train import rllib

    spec, config = _spec_and_config(args)
    register_env(ENV_NAME, _env_creator)
    lr = args.learning_rate
    if args.anneal_lr:
        lr = [[0, args.learning_rate], [int(args.total_steps), 0.0]]
    cfg = (
        PPOConfig()
        # RLlib's env pre-check steps random actions, which the facade rightly refuses (the
        # facade has its own PettingZoo API tests); masked sampling never picks them.
        .environment(ENV_NAME, env_config={"spec": spec, "config": config, "seed": int(args.seed)},
                     disable_env_checking=True)
        .framework("torch")
        .env_runners(num_env_runners=int(args.num_env_runners),
                     num_envs_per_env_runner=int(args.num_envs_per_env_runner),
                     rollout_fragment_length="auto", num_cpus_per_env_runner=1)
        .learners(num_learners=0)
        .multi_agent(policies={MODULE_ID}, policy_mapping_fn=_map_to_assistant, policies_to_train=[MODULE_ID])
        .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs={
            MODULE_ID: RLModuleSpec(module_class=rllib.VillagesTorchRLModule, model_config=model_config(args, config)),
        }))
        .training(lr=lr, gamma=args.gamma, lambda_=args.gae_lambda, clip_param=args.clip_coef,
                  entropy_coeff=args.ent_coef, vf_loss_coeff=args.vf_coef, grad_clip=args.max_grad_norm,
                  grad_clip_by="global_norm", use_kl_loss=False, vf_clip_param=1e6,
                  train_batch_size_per_learner=int(args.train_batch_size),
                  minibatch_size=int(min(args.minibatch_size, args.train_batch_size)), num_epochs=int(args.num_epochs))
        .callbacks(rllib.VillagesCallbacks)
        .debugging(seed=int(args.seed), log_level="ERROR")
    )
    return cfg, spec, config


def _map_to_assistant(agent_id, episode, **kwargs):
    return MODULE_ID


def module_state_to_net_state(state: dict) -> dict:
    """The RLModule's state_dict (numpy or torch, keys ``net.*``) as the project network's."""
    import torch

    out = {k[len("net."):]: torch.as_tensor(np.asarray(v)) for k, v in state.items() if k.startswith("net.")}
    if not out:
        raise ValueError(f"no 'net.*' parameters in the RLModule state (keys: {sorted(state)[:5]}...)")
    return out


def export_checkpoint(algo, args: RLlibArgs, path, step: int) -> Path:
    """Write the trained module as a plain ``villages`` checkpoint (loadable without Ray)."""
    from villages.policies.neural import net_from_meta, save_checkpoint
    from villages.scenarios import ScenarioGame
    from villages.train.ppo import checkpoint_meta

    from ray.rllib.core import COMPONENT_LEARNER, COMPONENT_RL_MODULE

    state = algo.learner_group.get_state(components=f"{COMPONENT_LEARNER}/{COMPONENT_RL_MODULE}/{MODULE_ID}")
    state = state[COMPONENT_LEARNER][COMPONENT_RL_MODULE][MODULE_ID]
    spec, config = _spec_and_config(args)
    meta = checkpoint_meta(args, ScenarioGame(spec, 1, config=config), step)
    meta["backend"] = "rllib"
    net = net_from_meta(meta)
    net.load_state_dict(module_state_to_net_state(state))  # strict: the mapping is 1:1
    save_checkpoint(path, net, meta)
    return Path(path)


def _get(d, *keys, default=None):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def train(args: RLlibArgs, out, log=print, runtime_env: dict | None = None) -> Path:
    """Train with RLlib PPO; returns the path of ``final.pt`` (project format)."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "args.json").write_text(json.dumps(dataclasses.asdict(args), indent=2))
    if args.address is not None and runtime_env is None and os.environ.get("VILLAGES_RAY_SHIP_CODE", "1") != "0":
        runtime_env = project_runtime_env()
    num_cpus = max(os.cpu_count() or 1, args.num_env_runners)
    with ray_session(args.address, num_cpus=num_cpus, runtime_env=runtime_env), _logs_into(out / "rllib_logs"):
        cfg, spec, _ = build_config(args)
        algo = cfg.build_algo()
        try:
            final = _train_loop(algo, args, out, spec, log)
        finally:
            algo.stop()
    try:
        from villages.train.ppo import plot_curve

        plot_curve(out / "metrics.jsonl", out / "curve.png",
                   title=f"{spec.name} / {spec.objective} / seed {args.seed} (RLlib)")
    except Exception as e:  # never lose a trained model over a plot
        log(f"warning: could not plot the training curve: {e}")
    return final


def _train_loop(algo, args, out, spec, log) -> Path:
    from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, LEARNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME

    metrics_path = out / "metrics.jsonl"
    metrics_path.unlink(missing_ok=True)
    bar = None
    n_iter = max(1, -(-int(args.total_steps) // int(args.train_batch_size)))
    if n_iter * int(args.train_batch_size) != int(args.total_steps):
        log(f"note: RLlib samples whole batches of train_batch_size {args.train_batch_size:,}: total_steps "
            f"{args.total_steps:,} rounds up to about {n_iter * int(args.train_batch_size):,} env-steps ({n_iter} iterations)")
    if args.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_iter, desc=f"rllib {spec.name}/{spec.objective}/s{args.seed}", unit="it",
                   dynamic_ncols=True)
    t0, steps, it = time.perf_counter(), 0, 0
    with metrics_path.open("a") as mf:
        while steps < args.total_steps:
            result = algo.train()
            it += 1
            env = result.get(ENV_RUNNER_RESULTS, {})
            steps = int(env.get(NUM_ENV_STEPS_SAMPLED_LIFETIME, steps + args.train_batch_size))
            learner = _get(result, LEARNER_RESULTS, MODULE_ID, default={}) or {}
            row = {"update": it, "global_step": steps, "charts/SPS": round(steps / (time.perf_counter() - t0), 1),
                   "losses/policy_loss": learner.get("policy_loss"), "losses/value_loss": learner.get("vf_loss"),
                   "losses/entropy": learner.get("entropy"),
                   "charts/learning_rate": learner.get("default_optimizer_learning_rate")}
            ret = env.get("episode_return_mean")
            if ret is not None and not (isinstance(ret, float) and np.isnan(ret)):
                row.update({"charts/episodic_return": float(ret),
                            "charts/intended": env.get("villages_intended"),
                            "charts/levy_share": env.get("villages_levy_share"),
                            "charts/troops": env.get("villages_troops"),
                            "charts/episodes": env.get("num_episodes_lifetime")})
            row = {k: (float(v) if isinstance(v, (np.floating, np.integer)) else v) for k, v in row.items()
                   if v is not None}
            mf.write(json.dumps(row) + "\n")
            mf.flush()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(ret=f"{row.get('charts/episodic_return', float('nan')):.2f}",
                                sps=f"{row['charts/SPS']:,.0f}")
            if it % args.checkpoint_every == 0:
                export_checkpoint(algo, args, out / "checkpoint.pt", steps)
    if bar is not None:
        bar.close()
    return export_checkpoint(algo, args, out / "final.pt", steps)


def cli_train(overrides: dict, out, resume: bool = False):
    """``villages train --backend rllib``: ``overrides`` are the options given (fields of ``RLlibArgs``).
    A --total-steps below the training batch shrinks the batch to it (at least 64)."""
    if resume:
        raise ValueError("--resume is for the native trainer; an RLlib run restarts from scratch")
    from villages.train import run_dir
    from villages.train.ppo import check_scenario_args
    from villages.validation import MAX_SEED, check_count, check_output_path

    args = RLlibArgs(**overrides)
    check_count(args.total_steps, "--total-steps", 1)
    check_count(args.seed, "--seed", 0, MAX_SEED)
    check_count(args.num_env_runners, "--num-env-runners", 0)
    check_scenario_args(args)
    out = Path(check_output_path(out, "--out", "folder"))
    if "total_steps" in overrides and "train_batch_size" not in overrides:
        args.train_batch_size = int(min(args.train_batch_size, max(64, args.total_steps)))
    with run_dir.lock(out):  # one live run per folder, as for the native trainer
        final = train(args, out)
    print(f"wrote {final}")
