"""Policies: the batched protocol, legality, per-world determinism, and the rule that
bots never read names or banners (identity only changes the observation's banner columns)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from villages.game import observation_layout
from villages.game.config import ARMY_ATTACK, WAR
from villages.policies import BUILTIN, Policy, ScriptedBot, make_policy
from villages.scenarios import AllianceSpec, ScenarioGame, ScenarioSpec, load


def short(spec: ScenarioSpec, ticks: int) -> ScenarioSpec:
    return dataclasses.replace(spec, map=dataclasses.replace(spec.map, episode_length=ticks))


def swap_alliance_names(spec: ScenarioSpec, a: str, b: str) -> ScenarioSpec:
    """Relabel: the alliance slot called ``a`` now wears ``b``'s identity and vice versa.
    Roles (members, relations, events, bots) stay with the slot; only identities move."""
    sw = lambda n: b if n == a else a if n == b else n  # noqa: E731
    ids = {i.name: i for i in spec.identities}
    events = tuple(dataclasses.replace(
        e, alliances=tuple(sw(x) for x in e.alliances), alliance=sw(e.alliance) if e.alliance else None,
        when=dataclasses.replace(e.when, alliance=sw(e.when.alliance)) if e.when else None) for e in spec.events)
    return dataclasses.replace(
        spec,
        alliances=tuple(AllianceSpec(ids[sw(x.name)]) for x in spec.alliances),
        players=tuple(dataclasses.replace(p, alliance=sw(p.alliance)) for p in spec.players),
        relations=tuple((sw(x), sw(y), r) for x, y, r in spec.relations),
        events=events,
        diversity=dataclasses.replace(spec.diversity, role=sw(spec.diversity.role) if spec.diversity.role else None,
                                      pool=tuple(sw(x) for x in spec.diversity.pool)),
    )


def banner_columns(config) -> np.ndarray:
    """bool[obs_size]: the observation columns that carry banner (identity) features."""
    O = observation_layout(config)
    cols = np.zeros(O.size, bool)
    v0, d0 = O.village_col("banner_0"), O.diplomacy_col("banner_0")
    for j in range(O.n_rows):
        s = O.rows_start + j * len(O.village) + v0
        cols[s : s + config.banner_dim] = True
    for k in range(O.n_alliances):
        s = O.diplomacy_start + k * len(O.diplomacy) + d0
        cols[s : s + config.banner_dim] = True
    return cols


@pytest.fixture(scope="module")
def snapshots():
    """(config, obs, mask, key, tick) of every seat at a few ticks of a training episode."""
    spec = short(load("training"), 30)
    game = ScenarioGame(spec, 6, seats="all")
    obs, mask = game.reset(np.arange(6))
    bots = make_policy("raider", game.config)
    out = []
    for t in range(30):
        if t in (0, 5, 15, 29):
            out.append((obs.copy(), mask.copy(), game.state.key.copy(), game.state.tick.copy()))
        obs, mask, *_ = game.step(bots.act(obs, mask, game.state.key, game.state.tick))
    return game.config, out


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_policies_follow_the_protocol(name, snapshots):
    config, snaps = snapshots
    pol = make_policy(name, config)
    assert isinstance(pol, Policy) and pol.name == name
    for obs, mask, key, tick in snaps:
        a = pol.act(obs, mask, key, tick)
        assert a.shape == mask.shape[:2] and np.issubdtype(a.dtype, np.integer)
        assert np.take_along_axis(mask, a[..., None], -1).all(), "illegal action"


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_a_world_acts_as_it_would_alone(name, snapshots):
    config, snaps = snapshots
    pol = make_policy(name, config)
    obs, mask, key, tick = snaps[2]
    batch = pol.act(obs, mask, key, tick)
    for b in (0, 3):
        alone = pol.act(obs[b : b + 1], mask[b : b + 1], key[b : b + 1], tick[b : b + 1])
        assert np.array_equal(alone[0], batch[b])


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_policies_ignore_banner_features(name, snapshots):
    """Scrambling every banner column of the observation changes no action."""
    config, snaps = snapshots
    pol = make_policy(name, config)
    cols = banner_columns(config)
    rng = np.random.default_rng(0)
    for obs, mask, key, tick in snaps:
        scrambled = obs.copy()
        scrambled[..., cols] = rng.normal(size=scrambled[..., cols].shape).astype(np.float32)
        assert np.array_equal(pol.act(obs, mask, key, tick), pol.act(scrambled, mask, key, tick))


def test_make_policy_unknown_name():
    with pytest.raises(KeyError) as info:
        make_policy("berserker", None)
    assert "berserker" in str(info.value) and "raider" in str(info.value)


@pytest.mark.parametrize("scenario", ["inner-misalignment-remnants", "training"])
def test_swapping_aurora_and_brotherhood_changes_no_action(scenario):
    """Relabel the scenario (Aurora's slot wears Brotherhood's identity and vice versa):
    every seat, background bots and a scripted focal alike, plays exactly the same, and the
    focal observation differs only in banner columns."""
    spec = short(load(scenario), 40)
    swapped = swap_alliance_names(spec, "Aurora", "Brotherhood")
    assert swapped.alliances[1].name == "Brotherhood" and swapped.players[2].alliance == "Brotherhood"
    games = [ScenarioGame(s, 4) for s in (spec, swapped)]
    focal = [make_policy("raider", g.config) for g in games]
    obs = [g.reset(np.arange(4) + 50)[0] for g in games]
    banners = [g.state.banner.copy() for g in games]
    assert not np.array_equal(*banners)  # the identities really moved
    cols = banner_columns(games[0].config)
    launches = 0
    for t in range(40):
        assert np.array_equal(obs[0][..., ~cols], obs[1][..., ~cols]), f"tick {t}: non-banner features differ"
        bg = [g.background_actions() for g in games]
        assert np.array_equal(*bg), f"tick {t}: background bots acted differently"
        acts = [p.act(g.obs, g.mask, g.state.key, g.state.tick) for p, g in zip(focal, games)]
        assert np.array_equal(*acts), f"tick {t}: the focal bot acted differently"
        steps = [g.step(a) for g, a in zip(games, acts)]
        obs = [s[0] for s in steps]
        ev = steps[0][4]["events"].get("launch")
        launches += len(ev["world"]) if ev else 0
    assert launches > 0, "nobody attacked: the test would show nothing"
    assert np.array_equal(games[0].state.owner, games[1].state.owner)


def test_attack_targets_hook_controls_attacks():
    """A ScriptedBot subclass that wants no target never attacks; the raider attacks only
    villages of alliances at war with it."""

    class Pacifist(ScriptedBot):
        name = "pacifist"
        mix = np.array([0.0, 0.3, 0.45, 0.15, 0.10])

        def attack_targets(self, own, rows):
            return np.full(rows.shape[:-1], -np.inf)

    spec = short(load("aurora-control"), 40)
    for pol_cls, expect_attacks in ((Pacifist, False), (None, True)):
        game = ScenarioGame(spec, 6)
        pol = pol_cls(game.config) if pol_cls else make_policy("raider", game.config)
        obs, mask = game.reset(np.arange(6))
        focal_attacks, bg_rel = 0, []
        done = False
        while not done:
            obs, mask, _, done, info = game.step(pol.act(obs, mask, game.state.key, game.state.tick))
            la = info["events"].get("launch")
            if la:
                att = la["kind"] == ARMY_ATTACK
                focal_attacks += int((att & np.isin(la["player"], game.focal)).sum())
                bg_rel.append(la["relation"][att])
        assert (focal_attacks > 0) == expect_attacks
        rel = np.concatenate(bg_rel) if bg_rel else np.zeros(0)
        assert (rel == WAR).all(), "a bot attacked a village not at war with it"
        assert (game.state.invalid_actions == 0).all()


def test_network_tanh_matches_torch_tanh_and_its_gradient():
    """The policy net's sigmoid-based tanh (a speed substitute) is tanh, forward and backward."""
    import torch

    from villages.policies.neural import Tanh

    x = torch.linspace(-12, 12, 4001, dtype=torch.float64).reshape(1, -1).repeat(2, 1).requires_grad_(True)
    y = Tanh()(x)
    ref = torch.tanh(x.detach()).requires_grad_(False)
    assert torch.allclose(y, ref, atol=1e-12)
    g = torch.randn_like(x)
    (grad,) = torch.autograd.grad(y, x, g)
    x2 = x.detach().clone().requires_grad_(True)
    (grad_ref,) = torch.autograd.grad(torch.tanh(x2), x2, g)
    assert torch.allclose(grad, grad_ref, atol=1e-12)
    assert torch.autograd.gradcheck(Tanh(), (x[:, ::400].detach().clone().requires_grad_(True),))
    x32 = torch.randn(64, 16, 64)
    assert (Tanh()(x32) - torch.tanh(x32)).abs().max() < 1e-6  # float32: rounding only
