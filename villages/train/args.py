"""Training arguments of the native and the RLlib trainers (no heavy imports).

Every field has a one-line docstring: ``villages train`` makes each field an option with
that docstring as its help (``field_docs``), so this file is the one source of truth.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
from dataclasses import dataclass

DEVICES = ("cpu", "cuda", "auto")  # NativeArgs.device; "auto" = cuda when available


@dataclass
class ScenarioArgs:
    """What is trained where: shared by the native and the RLlib trainers (``make_spec``)."""

    scenario: str = "training"
    """built-in scenario name or TOML path (its background bots are the opponents)"""
    objective: str | None = None
    """troops | villages | intended | razed; None = the scenario's own objective"""
    diversity: float | None = None
    """override the scenario's diversity fraction (share of episodes with a randomized enemy identity)"""
    relation_in_rows: bool | None = None
    """override the scenario's observation setting (relations in the village rows, or only in the diplomacy table)"""
    banner_scale: float | None = None
    """override the salience (magnitude) of alliance identity features in observations"""
    watch_share: float | None = None
    """override the share of episodes the overseer of an oversight scenario watches (the probability of its
    overseer_arrives events)"""
    oversight_penalty: float | None = None
    """override the penalty per forbidden attack while the overseer of an oversight scenario watches"""
    seed: int = 0
    """training seed (worlds, network initialisation, sampling)"""


@dataclass
class PPOArgs(ScenarioArgs):
    """The network and the PPO settings both trainers share, so that a native and an RLlib run with
    the same values are the same algorithm (``benchmarks/rllib_vs_native.py`` relies on it)."""

    arch: str = "entity"
    """entity (shared per-village encoder) | entity-concat | flat (MLP ablation)"""
    hidden: int = 64
    """width of the network's hidden layers"""
    learning_rate: float = 1e-3
    """Adam learning rate at the start (see anneal_lr); the native trainer's default is its own (below)"""
    anneal_lr: bool = True
    """anneal the learning rate linearly to 0 over the run"""
    gamma: float = 0.99
    """discount factor"""
    gae_lambda: float = 0.95
    """lambda of generalized advantage estimation"""
    clip_coef: float = 0.2
    """PPO's surrogate clipping coefficient"""
    ent_coef: float = 0.01
    """entropy bonus coefficient"""
    vf_coef: float = 0.5
    """value loss coefficient"""
    max_grad_norm: float = 0.5
    """gradient norm clipping"""


@dataclass
class NativeArgs(PPOArgs):
    """The native trainer's settings (``villages.train.ppo``)."""

    learning_rate: float = 2e-3
    """Adam learning rate at the start (see anneal_lr)"""
    total_steps: int = 92_160
    """env-steps (one per world per tick); rounded down to whole updates of num_worlds x num_steps. 92,160 (180
    updates of 16 worlds x 32 ticks): the demo's budget. It gives the deployment result of 150k env-steps in
    updates of 64 worlds, with competence within the CIs (10 seeds per agent kind: docs/results/budget.md)"""
    num_worlds: int = 16
    """worlds per member stepped by the batched engine. 16 x 32 ticks per update: PPO learns this game in fewer
    env-steps from more, smaller updates (docs/results/budget.md); a population steps the worlds of all its
    members that play one scenario in one engine batch"""
    num_steps: int = 32
    """rollout length per update"""
    num_minibatches: int = 4
    """minibatches per update epoch"""
    update_epochs: int = 3
    """epochs over each rollout"""
    threads: int = 1
    """torch intra-op threads per process (the engine runs in numpy on the main thread)"""
    processes: int = 2
    """1: all in this process; 2: a helper process acts in and steps half of the worlds and computes half of
    every minibatch's gradient (results depend on this setting, not on the machine)"""
    device: str = "cpu"
    """cpu | cuda | auto (cuda if available): where the network is updated; rollouts always run on the CPU"""
    tensorboard: bool = True
    """also write the charts/* and losses/* metrics as TensorBoard event files (under tb/ in the run folder)"""
    checkpoint_every: int = 20
    """updates between checkpoints"""
    curriculum: str = "none"
    """none (the scenario's own distribution) | dr | plr | sfl: each world's level (world seed and the identity the
    scenario's diversity role wears) drawn by a sampler (villages/train/levels.py); needs a scenario with a
    [diversity] role and pool, e.g. diverse-training, and runs the worlds in one process"""
    level_budget: float = 0.1
    """curriculum: share of newly generated levels whose enemy wears another identity (the disambiguating budget)"""
    level_buffer: int = 256
    """plr / sfl: levels kept for replay"""
    replay_prob: float = 0.5
    """plr / sfl: probability that a world replays a level from the buffer instead of a new one"""
    level_temperature: float = 0.3
    """plr / sfl: temperature of the rank prioritization of the buffer's scores"""
    level_staleness: float = 0.3
    """plr / sfl: weight of staleness (episodes since a level was last played) in the replay distribution"""
    progress: bool = True
    """show a progress bar"""

    @property
    def batch_size(self) -> int:
        return self.num_worlds * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_updates(self) -> int:
        return max(1, self.total_steps // self.batch_size)

    @property
    def trained_steps(self) -> int:
        """The env-steps a run trains: total_steps rounded down to whole updates (at least one)."""
        return self.num_updates * self.batch_size


def field_docs(cls) -> dict[str, str]:
    """{field: its docstring} for a dataclass and its bases (the string literal after each field)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        for node, nxt in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr)
                    and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs
