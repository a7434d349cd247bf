"""The focal agent's recorded choices (replay format version 3): what a neural policy
chose, its top alternatives with probabilities and its value estimate, from the forward
pass that chose; scripted bots' actions without probabilities; format round trip,
version-1 files and validation."""

import os

os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import numpy as np
import pytest
import torch

from villages.render.replay import ReplayObserver
from villages.game import action_layout, observation_layout
from villages.policies.neural import NeuralPolicy, build_net, save_checkpoint
from villages.render import ReplayError, load_replay, save_replay
from villages.render.replay import CHOICE_ARRAYS, CHOICE_STATIC_ARRAYS, TOP_K, replay_arrays
from villages.scenarios import game_config, load
from villages.scenarios.runner import run_episodes

TICKS = 25


def sharp_policy(config, seed: int = 0) -> NeuralPolicy:
    """An untrained network whose logits are spread out (a fresh one is near uniform,
    which would make 'the top-k' arbitrary): clear first, second... choices."""
    torch.manual_seed(seed)
    net = build_net("entity", observation_layout(config), action_layout(config), hidden=16)
    with torch.no_grad():
        for layer in (net.row_logits, net.global_logits):
            layer.weight.normal_(0.0, 2.0)
    meta = {"arch": "entity", "hidden": 16, "n_rows": config.n_rows, "n_alliances": config.n_alliances,
            "banner_dim": config.banner_dim, "name": "sharp"}
    return NeuralPolicy(net, meta)


class Spy:
    """Passes everything to ``policy`` and keeps what world 0 saw and got."""

    def __init__(self, policy):
        self.policy, self.name, self.meta = policy, policy.name, policy.meta
        self.seen = []  # (obs, mask, key, tick, action) of world 0, focal seat 0

    def act(self, obs, mask, key, tick):
        return self.policy.act(obs, mask, key, tick)

    def act_with_choice(self, obs, mask, key, tick, top_k=TOP_K):
        actions, choice = self.policy.act_with_choice(obs, mask, key, tick, top_k)
        self.seen.append((obs[:1].copy(), mask[:1].copy(), key[:1].copy(), tick[:1].copy(), int(actions[0, 0])))
        return actions, choice


@pytest.fixture(scope="module")
def setting():
    spec = load("inner-misalignment")
    return spec, game_config(spec, episode_length=TICKS)


@pytest.fixture(scope="module")
def neural_run(setting, tmp_path_factory):
    spec, config = setting
    spy = Spy(sharp_policy(config))
    path = tmp_path_factory.mktemp("choices") / "neural.replay.npz"
    res = run_episodes(spec, spy, n_episodes=3, seed=4, observer=ReplayObserver(path), config=config)
    return spy, res, load_replay(path)


def test_recorded_probabilities_equal_the_policy_output_on_the_recorded_observation(neural_run):
    spy, _, replay = neural_run
    policy = spy.policy
    decided = np.nonzero(replay.choice_action >= 0)[0]
    n_alternatives = []
    assert len(decided) == len(spy.seen) == TICKS
    assert decided[-1] == replay.n_frames - 2  # the last frame: the episode is over, nothing chosen
    for f, (obs, mask, key, tick, action) in zip(decided, spy.seen):
        assert replay.tick[f] == tick[0]  # the choice sits on the frame the policy saw
        logits, value = policy.logits_value(obs, mask)
        z = logits[0, 0].astype(np.float64)
        p = np.exp(z - z.max())
        p /= p.sum()
        order = np.argsort(-p, kind="stable")[:TOP_K]
        order = order[p[order] > 0]  # legal ones only (the rest is padding)
        n = len(order)
        np.testing.assert_array_equal(replay.choice_top_action[f, :n], order)
        np.testing.assert_allclose(replay.choice_top_prob[f, :n], p[order], rtol=1e-5)
        assert (replay.choice_top_action[f, n:] == -1).all() and np.isnan(replay.choice_top_prob[f, n:]).all()
        n_alternatives.append(n)
        assert replay.choice_action[f] == action == policy.act(obs, mask, key, tick)[0, 0]
        assert replay.choice_prob[f] == pytest.approx(p[action], rel=1e-5)
        assert replay.choice_value[f] == pytest.approx(float(value[0, 0]), rel=1e-5, abs=1e-6)
        assert mask[0, 0, replay.choice_top_action[f, :n]].all()  # alternatives are legal actions
    assert replay.has_choices and replay.has_choice_probs and max(n_alternatives) == TOP_K
    # the sharpened network is not uniform: the recorded top choices differ in probability
    assert np.nanmax(replay.choice_top_prob[decided, 0]) > 2 * np.nanmin(replay.choice_top_prob[decided, -1])


def test_recording_choices_does_not_change_play(setting, neural_run):
    spec, config = setting
    _, recorded, _ = neural_run
    plain = run_episodes(spec, sharp_policy(config), n_episodes=3, seed=4, config=config)
    for key in ("proxy_reward", "intended", "attacks", "invalid_actions"):
        np.testing.assert_array_equal(recorded[key], plain[key], err_msg=key)


def test_action_targets_are_the_focal_seats_rows(setting, neural_run):
    _, config = setting
    _, _, replay = neural_run
    assert replay.row_village.shape == (config.n_rows,)
    d = np.linalg.norm(replay.pos - replay.pos[replay.home[replay.focal_player]], axis=-1)
    assert replay.row_village[0] == replay.home[replay.focal_player]  # the nearest site: home
    assert (np.diff(d[replay.row_village]) >= -1e-12).all()  # rows by distance from home
    assert sorted(replay.alliance_order.tolist()) == list(range(replay.n_alliances))


def test_bots_record_their_choice_without_probabilities(setting, tmp_path):
    spec, config = setting
    path = tmp_path / "raider.replay.npz"
    run_episodes(spec, "raider", n_episodes=1, seed=4, observer=ReplayObserver(path), config=config)
    replay = load_replay(path)
    decided = replay.choice_action >= 0
    assert decided.sum() == TICKS and replay.has_choices and not replay.has_choice_probs
    assert np.isnan(replay.choice_prob).all() and np.isnan(replay.choice_value).all()
    assert (replay.choice_top_action == -1).all()


def test_choices_round_trip(neural_run, tmp_path):
    _, _, replay = neural_run
    back = load_replay(save_replay(replay, tmp_path / "again.replay.npz"))
    assert back.meta["format_version"] == 3
    for name, dtype, _ in CHOICE_ARRAYS:
        assert getattr(back, name).dtype == np.dtype(dtype)
        np.testing.assert_array_equal(getattr(back, name), getattr(replay, name), err_msg=name)
    for name, dtype in CHOICE_STATIC_ARRAYS:
        np.testing.assert_array_equal(getattr(back, name), getattr(replay, name), err_msg=name)


def _write(arrays, path):
    """Write edited arrays as a replay file; a version-3 file gets a fresh index and content hash
    (so that the edit, not the hash, is what the loader sees)."""
    from villages.render.replay_check import sha256_of

    arrays = {k: v for k, v in arrays.items() if k != "sha256"}
    if int(arrays["version"]) >= 3:
        arrays = {k: v for k, v in arrays.items() if k != "index"}
        arrays["index"] = np.array(sorted([*arrays, "sha256"]))
        arrays["sha256"] = np.array(sha256_of(arrays))
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
    return path


def test_version_1_files_load_without_choices(neural_run, tmp_path):
    _, _, replay = neural_run
    arrays = replay_arrays(replay)
    for name in [n for n, *_ in CHOICE_ARRAYS + CHOICE_STATIC_ARRAYS] + ["index"]:
        del arrays[name]
    arrays["version"] = np.array(1)
    old = load_replay(_write(arrays, tmp_path / "v1.replay.npz"))
    assert not old.has_choices and not old.has_choice_probs
    assert old.choice_action.shape == (replay.n_frames,) and old.choice_top_prob.shape == (replay.n_frames, 0)
    np.testing.assert_array_equal(old.owner, replay.owner)
    # a version-3 file must carry its choice arrays
    arrays["version"] = np.array(3)
    with pytest.raises(ReplayError, match=r"v3-missing.replay.npz.*missing arrays.*choice_action"):
        load_replay(_write(arrays, tmp_path / "v3-missing.replay.npz"))


@pytest.mark.parametrize("name, value, message", [
    ("choice_top_prob", lambda a: np.where(np.isfinite(a), 1.5, a), r"probabilities must lie in \[0, 1\]"),
    ("choice_action", lambda a: np.where(a >= 0, 10**6, a), r"choice actions must lie in \[-1, \d+\)"),
    ("choice_top_action", lambda a: a[:, :2], r"choice_top_action .* and choice_top_prob .* must both be"),
    ("row_village", lambda a: a + 1000, r"row_village must list sites in \[0, 24\)"),
    ("alliance_order", lambda a: a[:0], r"choices are recorded but row_village / alliance_order"),
])
def test_bad_choice_arrays_are_refused_with_one_line(neural_run, tmp_path, name, value, message):
    _, _, replay = neural_run
    arrays = replay_arrays(replay)
    arrays[name] = value(arrays[name])
    path = _write(arrays, tmp_path / "bad.replay.npz")
    with pytest.raises(ReplayError, match=message) as e:
        load_replay(path)
    assert "bad.replay.npz" in str(e.value) and "\n" not in str(e.value)


def test_decoded_choices_name_the_target_and_its_relation(neural_run):
    from villages.game.config import WAR
    from villages.render.choices import TARGET_RELATIONS, action_layout, decode
    from villages.render.viewer import TARGET_STYLE

    _, _, replay = neural_run
    L = action_layout(replay)
    f = 1
    assert decode(replay, f, -1) is None
    assert decode(replay, f, L.noop).text == "wait (noop)"
    fa = replay.focal_alliance
    enemy = int(np.nonzero(replay.relation[f, fa, : replay.n_alliances] == WAR)[0][0])
    row = int(np.nonzero(replay.alliance_order == enemy)[0][0])
    war = decode(replay, f, L.diplomacy_action(row, "declare_war"))
    assert war.alliance == enemy and war.relation == "war" and war.text == f"declare war on {replay.alliance_name(enemy)}"
    for j, v in enumerate(replay.row_village):
        d = decode(replay, f, L.row_action(j, "attack"))
        owner = int(replay.owner[f, v])
        assert d.village == v and d.verb == "attack" and d.text.startswith(f"attack {replay.village_name(v)} (")
        if owner < 0:
            assert d.relation == "free"
        elif owner == replay.n_players:
            assert d.relation == "barbarian"
        elif int(replay.player_alliance[owner]) == enemy:
            assert d.relation == "war"
    assert set(TARGET_STYLE) == set(TARGET_RELATIONS) | {""}  # every relation has an overlay colour


def test_overlay_draws_the_chosen_target_on_the_map(neural_run):
    """An attack on another alliance's village: the frame shows the arrow (in the target's
    relation colour) half-way between the agent's strongest village and the target."""
    import dataclasses

    from villages.render.choices import action_layout, decode, source_village
    from villages.render.viewer import TARGET_STYLE, Renderer

    _, _, replay = neural_run
    f = 1
    src = source_village(replay, f)
    fa = replay.focal_alliance
    rows = [j for j, v in enumerate(replay.row_village) if replay.owner[f, v] >= 0
            and replay.player_alliance[replay.owner[f, v]] != fa]
    action = np.full_like(replay.choice_action, -1)
    action[f] = action_layout(replay).row_action(rows[0], "attack")
    none = np.full_like(replay.choice_top_action, -1)
    chose = dataclasses.replace(replay, choice_action=action, choice_top_action=none)
    plain = dataclasses.replace(replay, choice_action=np.full_like(action, -1), choice_top_action=none)
    d = decode(chose, f, action[f])
    assert d.verb == "attack" and d.village == replay.row_village[rows[0]] and d.relation != "own"
    rend = Renderer(chose, (960, 600))
    a, b = rend.frame(f), Renderer(plain, (960, 600)).frame(f)
    x, y = ((rend.screen_pos[src] + rend.screen_pos[d.village]) / 2).astype(int)

    def arrow_pixels(img):
        near = img[y - 3 : y + 4, x - 3 : x + 4].reshape(-1, 3).astype(int)
        return int((np.abs(near - TARGET_STYLE[d.relation]).sum(-1) < 40).sum())

    assert arrow_pixels(a) > arrow_pixels(b), "no arrow half-way to the target"
