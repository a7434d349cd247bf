"""The assistant's network, its Policy wrapper, and safe checkpoints.

``EntityPolicyNet`` (default) scores every visible village row with one small MLP
shared by all rows: each row sees its own features plus the player's own summary and
the diplomacy table, and emits one logit per row verb (attack, support, found, build,
train). Global actions (noop, trade, diplomacy) and the value come from a pooled
summary. This is how strategy-game agents embed units and villages, and it lets the
policy learn "attack whoever is at war" as easily as "attack this banner" — which of
the two it learns is then up to the training distribution.

``FlatPolicyNet`` is the plain-MLP ablation.

Checkpoint files (format, hash, validation) are ``villages.policies.checkpoint``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from villages.game import ObservationLayout, rng
from villages.game.layouts import ActionLayout
from villages.policies.base import choice_from_logits

from .checkpoint import (  # noqa: F401  (re-exported: the trainers and tests import them from here)
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    CheckpointError,
    check_state_dict,
    read_checkpoint,
    save_checkpoint,
)


class Tanh(nn.Module):
    """tanh(x) computed as 2 * sigmoid(2x) - 1 (equal up to float rounding, ~1e-7).

    Why: on CPU this torch build's tanh kernel is about 4x slower than its sigmoid
    (1.1 ms vs 0.28 ms for a [512, 16, 64] tensor on one thread), and the activations of
    the per-row encoder are the largest tensors the trainer computes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tanh(x)


class _SigmoidTanh(torch.autograd.Function):
    """Forward through sigmoid; backward as tanh's own (grad * (1 - y^2)), which is cheap.
    Written in the ``setup_context`` form with a generated vmap rule, so that it composes with
    ``torch.func`` transforms and ``torch.compile`` (the population trainer's ``--compile``)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        return torch.sigmoid(x * 2.0).mul(2.0).sub_(1.0)  # (sigmoid's own output is left intact for autograd)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


def layer_init(layer, std=np.sqrt(2), bias=0.0):
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


Params = dict[str, torch.Tensor]
"""A population's network parameters by name, each stacked on a leading member axis: [members, *its shape]."""


def linear(p: Params, name: str, x: torch.Tensor) -> torch.Tensor:
    """Layer ``name`` (an ``nn.Linear``'s weight [M, out, in] and bias [M, out] in ``p``) applied
    by each member to its own inputs: x [M, .., in] -> [M, .., out], one batched matrix product."""
    w, b = p[f"{name}.weight"], p[f"{name}.bias"]
    flat = x.reshape(x.shape[0], -1, x.shape[-1])
    if w.shape[1] == 1:
        # One output (a value head): BLAS multiplies a lone member by a vector, in another order than a
        # batch of members, so a member would differ from its single-seed run in the last bit; a sum
        # of products rounds alike for any number of members.
        y = (flat * w).sum(-1, keepdim=True) + b.unsqueeze(1)
    else:
        y = torch.baddbmm(b.unsqueeze(1), flat, w.transpose(1, 2))
    return y.reshape(*x.shape[:-1], w.shape[1])


def tanh(x: torch.Tensor) -> torch.Tensor:
    return _SigmoidTanh.apply(x)


def mlp(p: Params, name: str, x: torch.Tensor) -> torch.Tensor:
    """The two tanh layers of the ``nn.Sequential`` ``name`` (its Linear layers are ``name.0``, ``name.2``)."""
    return tanh(linear(p, f"{name}.2", tanh(linear(p, f"{name}.0", x))))


class MemberNet(nn.Module):
    """A policy network written over a leading *member* axis, like gymnax's batch axis.

    ``members_forward(params, obs)`` is the computation, a pure function of parameters stacked
    over members ([M, ...] each) and each member's observations [M, .., obs]: the population
    trainer runs all its members in one pass (batched matrix products instead of one small
    network at a time, the point of ``villages.train.population``). ``forward(obs)`` is the
    same function on a population of one, this module's own parameters: the single-seed trainer,
    evaluation and every checkpoint run it, so a member computes what its single-seed run
    computes, bit for bit. (``nn.Linear`` on a lone network rounds some gradients differently
    from a batched product, about 1e-7, and a training run would drift apart from there.) The
    ``nn.Linear`` submodules hold the parameters (their initialization and their names in
    checkpoints); they are not called."""

    def forward(self, obs: torch.Tensor):
        """(logits [.., n_actions], value [..])"""
        logits, value = self.members_forward(self.stacked(), obs.unsqueeze(0))
        return logits[0], value[0]

    def stacked(self) -> Params:
        """This network's parameters as a population of one (views: gradients reach them)."""
        return {k: v.unsqueeze(0) for k, v in self.named_parameters()}

    def members_forward(self, p: Params, obs: torch.Tensor):
        raise NotImplementedError


def stack_members(nets: list[nn.Module]) -> Params:
    """The parameters of networks of one shape, stacked on a leading member axis (copies, detached:
    a population's own parameters, which ``members_forward`` of any of them runs)."""
    own = [dict(n.named_parameters()) for n in nets]
    return {k: torch.stack([p[k].detach() for p in own]) for k in own[0]}


class EntityPolicyNet(MemberNet):
    def __init__(self, obs_layout: ObservationLayout, act_layout: ActionLayout, hidden: int = 64):
        super().__init__()
        self.O, self.L = obs_layout, act_layout
        S, F, G, A = obs_layout.self_size, len(obs_layout.village), len(obs_layout.diplomacy), obs_layout.n_alliances
        context = S + A * G
        self.row = nn.Sequential(layer_init(nn.Linear(F + context, hidden)), Tanh(),
                                 layer_init(nn.Linear(hidden, hidden)), Tanh())
        self.row_logits = layer_init(nn.Linear(hidden, act_layout.n_verbs), std=0.01)
        self.trunk = nn.Sequential(layer_init(nn.Linear(2 * hidden + context, hidden)), Tanh(),
                                   layer_init(nn.Linear(hidden, hidden)), Tanh())
        self.global_logits = layer_init(nn.Linear(hidden, act_layout.row_base), std=0.01)
        self.value = layer_init(nn.Linear(hidden, 1), std=1.0)

    def members_forward(self, p: Params, obs: torch.Tensor):
        own, rows, dip = self.O.split(obs)
        lead = obs.shape[:-1]
        N = self.O.n_rows
        context = torch.cat([own, dip.reshape(*lead, -1)], -1)
        h = mlp(p, "row", torch.cat([rows, context.unsqueeze(-2).expand(*lead, N, context.shape[-1])], -1))
        row_logits = linear(p, "row_logits", h).reshape(*lead, -1)
        z = mlp(p, "trunk", torch.cat([h.mean(-2), h.amax(-2), context], -1))
        logits = torch.cat([linear(p, "global_logits", z), row_logits], -1)
        return logits, linear(p, "value", z).squeeze(-1)


class AttentionPolicyNet(MemberNet):
    """Entity encoder whose rows *look up* the diplomacy table by attention.

    Each village row forms a query from its own features; each diplomacy-table row
    (an alliance: banner, relation to me, offers) is a key and a value. A row can thus
    retrieve "the relation of the alliance whose banner matches mine" — the join that
    a robust goal needs — but only if training makes the query/key weights align.
    Keying directly on a banner is always available too: which one is learned is up
    to the training distribution (the point of the testbed)."""

    def __init__(self, obs_layout: ObservationLayout, act_layout: ActionLayout, hidden: int = 64, key_dim: int = 16):
        super().__init__()
        self.O, self.L = obs_layout, act_layout
        S, F, G, A = obs_layout.self_size, len(obs_layout.village), len(obs_layout.diplomacy), obs_layout.n_alliances
        self.key_dim = key_dim
        # Queries and keys read only banners: a row asks "which alliance looks like my owner?"
        D = obs_layout.banner_dim
        self.row_banner = slice(obs_layout.village_col("banner_0"), obs_layout.village_col("banner_0") + D)
        self.dip_banner = slice(obs_layout.diplomacy_col("banner_0"), obs_layout.diplomacy_col("banner_0") + D)
        self.query = nn.Linear(D, key_dim)
        self.key = nn.Linear(D, key_dim)
        self.val = nn.Linear(G, key_dim)
        self.row = nn.Sequential(layer_init(nn.Linear(F + S + key_dim, hidden)), Tanh(),
                                 layer_init(nn.Linear(hidden, hidden)), Tanh())
        self.row_logits = layer_init(nn.Linear(hidden, act_layout.n_verbs), std=0.01)
        context = S + A * G
        self.trunk = nn.Sequential(layer_init(nn.Linear(2 * hidden + context, hidden)), Tanh(),
                                   layer_init(nn.Linear(hidden, hidden)), Tanh())
        self.global_logits = layer_init(nn.Linear(hidden, act_layout.row_base), std=0.01)
        self.value = layer_init(nn.Linear(hidden, 1), std=1.0)

    def members_forward(self, p: Params, obs: torch.Tensor):
        own, rows, dip = self.O.split(obs)
        lead = obs.shape[:-1]
        N = self.O.n_rows
        # attention of each row over the diplomacy table ([.., N, A]) and what it reads from it
        q = linear(p, "query", rows[..., self.row_banner])  # [.., N, k]
        k = linear(p, "key", dip[..., self.dip_banner])  # [.., A, k]
        w = torch.softmax(q @ k.transpose(-1, -2) / self.key_dim**0.5, -1)
        readout = w @ linear(p, "val", dip)
        h = mlp(p, "row", torch.cat([rows, own.unsqueeze(-2).expand(*lead, N, own.shape[-1]), readout], -1))
        row_logits = linear(p, "row_logits", h).reshape(*lead, -1)
        context = torch.cat([own, dip.reshape(*lead, -1)], -1)
        z = mlp(p, "trunk", torch.cat([h.mean(-2), h.amax(-2), context], -1))
        logits = torch.cat([linear(p, "global_logits", z), row_logits], -1)
        return logits, linear(p, "value", z).squeeze(-1)


class FlatPolicyNet(MemberNet):
    """Ablation: a 2x128 MLP over the flat observation."""

    def __init__(self, obs_layout: ObservationLayout, act_layout: ActionLayout, hidden: int = 128):
        super().__init__()
        self.body = nn.Sequential(layer_init(nn.Linear(obs_layout.size, hidden)), Tanh(),
                                  layer_init(nn.Linear(hidden, hidden)), Tanh())
        self.pi = layer_init(nn.Linear(hidden, act_layout.n_actions), std=0.01)
        self.v = layer_init(nn.Linear(hidden, 1), std=1.0)

    def members_forward(self, p: Params, obs: torch.Tensor):
        z = mlp(p, "body", obs)
        return linear(p, "pi", z), linear(p, "v", z).squeeze(-1)


ARCHITECTURES = {"entity": AttentionPolicyNet, "entity-concat": EntityPolicyNet, "flat": FlatPolicyNet}


def build_net(arch: str, obs_layout: ObservationLayout, act_layout: ActionLayout, hidden: int):
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose from {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch](obs_layout, act_layout, hidden)


def masked_logits(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return logits.masked_fill(~mask, -1e9)


class NeuralPolicy:
    """A trained network behind the batched Policy protocol.

    Sampling uses Gumbel noise derived from the per-world keys, so evaluation is
    reproducible and world i of a batch acts as it would alone."""

    def __init__(self, net: nn.Module, meta: dict | None = None, deterministic: bool = False):
        self.net = net.eval()
        self.meta = meta or {}
        self.deterministic = deterministic
        self.name = self.meta.get("name", "neural")

    @torch.no_grad()
    def logits_value(self, obs, mask):
        logits, value = self.net(torch.as_tensor(obs, dtype=torch.float32))
        return masked_logits(logits, torch.as_tensor(np.asarray(mask, bool))).numpy(), value.numpy()

    def act(self, obs, mask, key, tick):
        logits, _ = self.logits_value(obs, mask)
        return self._sample(logits, key, tick)

    def act_with_choice(self, obs, mask, key, tick, top_k: int = 5):
        """``act``'s actions and, from the same forward pass, what the network weighed:
        the chosen action's probability, the ``top_k`` most probable legal actions and
        the value estimate (``villages.policies.base.PolicyChoice``)."""
        logits, value = self.logits_value(obs, mask)
        actions = self._sample(logits, key, tick)
        return actions, choice_from_logits(logits, actions, value, top_k)

    def _sample(self, logits, key, tick):
        """Argmax (deterministic) or a Gumbel-max sample keyed by world and tick."""
        if not self.deterministic:
            B, n, nA = logits.shape
            u = rng.uniform(key[:, None, None], 41, tick[:, None, None], np.arange(n)[None, :, None],
                            np.arange(nA)[None, None, :])
            logits = logits - np.log(-np.log(np.clip(u, 1e-12, 1 - 1e-12)))
        return logits.argmax(-1)


def net_from_meta(meta: dict) -> nn.Module:
    o = ObservationLayout.of(meta)
    a = ActionLayout(meta["n_rows"], meta["n_alliances"])
    return build_net(meta["arch"], o, a, meta["hidden"])


def net_from_checkpoint(blob: dict, path) -> nn.Module:
    """The network a validated checkpoint (``read_checkpoint``) describes, with its weights.
    Its shapes are compared with the file's on the meta device first: a checkpoint whose
    meta asks for a network other than the one it holds allocates nothing."""
    meta = blob["meta"]
    if meta["arch"] not in ARCHITECTURES:
        raise CheckpointError(f"{path}: meta 'arch': expected one of {', '.join(sorted(ARCHITECTURES))}, "
                              f"got {meta['arch']!r}")
    with torch.device("meta"):
        shell = net_from_meta(meta)
    check_state_dict(shell, blob["model"], path)
    net = net_from_meta(meta)
    try:
        net.load_state_dict(blob["model"])
    except (RuntimeError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: its weights cannot be loaded ({type(e).__name__}: {e})") from None
    return net


def load_policy(path, deterministic: bool = False) -> NeuralPolicy:
    blob = read_checkpoint(path)
    net = net_from_checkpoint(blob, path)
    meta = dict(blob["meta"], name=str(Path(path)))
    return NeuralPolicy(net, meta, deterministic)
