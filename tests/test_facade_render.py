"""Rendering of the PettingZoo facade: rgb_array frames, the human window, recording."""

import os

os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import numpy as np
import pytest
from pettingzoo.test import render_test

import villages
from villages.render import load_replay
from villages.render.replay import BARBARIAN_COLOUR

pytestmark = [
    pytest.mark.filterwarnings("ignore:Observation space for each agent probably should be"),
    pytest.mark.filterwarnings("ignore:We recommend agents to be named"),
    pytest.mark.filterwarnings("ignore:Observation is not a NumPy array"),
]

SIZE = (640, 400)


def random_legal(obs, rng):
    return {a: int(rng.choice(np.flatnonzero(o["action_mask"]))) for a, o in obs.items()}


def play(env, n, seed=0):
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    steps = 0
    while steps < n and env.agents:
        obs, *_ = env.step(random_legal(obs, rng))
        steps += 1
    return steps


def village_colours_ok(env, frame):
    """Every owned village's disc centre has its owner's alliance colour (as the world shows it)."""
    state = env.game.state
    rend = env._viewer.renderer
    owner = state.owner[0]
    rad = rend.village_radius(rend.T - 1)
    xy = rend.screen_pos
    owned = np.flatnonzero(owner >= 0)
    checked = 0
    for v in owned:
        if any(w > v and np.hypot(*(xy[w] - xy[v])) <= rad[w] + 1.5 for w in owned):
            continue  # discs are drawn in site order: a later one covers this centre
        a = int(state.player_alliance[0, owner[v]])
        if a >= len(env.spec.alliances):
            name, colour = "barbarians", BARBARIAN_COLOUR
        else:
            identity = env.spec.identities[int(env.game.identity[0, a])]
            name, colour = identity.name, identity.rgb()
        x, y = (int(c) for c in rend.screen_pos[v])
        assert tuple(frame[y, x]) == colour, (v, a, name, tuple(frame[y, x]))
        checked += 1
    return checked


def test_rgb_array_frame_shape_and_alliance_colours():
    env = villages.parallel_env(render_mode="rgb_array", render_size=SIZE)
    env.reset(seed=3)
    f0 = env.render()
    assert isinstance(f0, np.ndarray) and f0.dtype == np.uint8 and f0.shape == (SIZE[1], SIZE[0], 3)
    assert village_colours_ok(env, f0) >= 10
    play(env, 12, seed=3)
    f1 = env.render()
    assert f1.shape == f0.shape and not np.array_equal(f0, f1)
    assert village_colours_ok(env, f1) > 0
    env.close()


def test_frames_follow_the_episode_and_are_deterministic():
    frames = []
    for _ in range(2):
        env = villages.parallel_env(scenario="inner-misalignment", agents="focal", render_mode="rgb_array",
                                    render_size=SIZE)
        steps = play(env, 20, seed=5)
        frames.append(env.render())
        rec = env._recorder
        assert rec.n_frames == steps + 1 and steps >= 5  # the reset state, then one frame per step
        rep = rec.replay()
        np.testing.assert_array_equal(rep.owner[-1], env.game.state.owner[0])
        np.testing.assert_array_equal(rep.relation[-1], env.game.state.relation[0])
        assert int(rep.tick[-1]) == int(env.game.state.tick[0]) == steps
    np.testing.assert_array_equal(frames[0], frames[1])


def test_recording_is_labelled_and_holds_the_scenario_events(tmp_path):
    env = villages.parallel_env(scenario="inner-misalignment", agents="all", render_mode="rgb_array", render_size=SIZE)
    assert play(env, 5, seed=0) == 5
    rep = env._recorder.replay()
    meta = rep.meta
    assert meta["alliance_names"] == [a.name for a in env.spec.alliances]
    assert meta["player_names"] == list(env.spec.player_names)
    assert meta["focal_player"] == env.spec.focal_players[0]
    assert meta["alliance_colours"][1] == list(env.spec.alliances[1].identity.rgb())
    # Aurora's players leave and Brotherhood declares war at tick 0 (timeline events at reset)
    haven, brotherhood = (env.spec.alliance_index(n) for n in ("Haven", "Brotherhood"))
    d = rep.events["diplomacy"]
    assert 0 in d["tick"] and {int(d["alliance_a"][0]), int(d["alliance_b"][0])} == {haven, brotherhood}
    aurora = {i for i, p in enumerate(env.spec.players) if p.alliance == "Aurora"}
    assert set(rep.events["left"]["player"].tolist()) == aurora and set(rep.events["left"]["tick"].tolist()) == {0}
    # the focal seat's reward and intended score are kept per tick
    assert np.isfinite(rep.reward).all() and np.isfinite(rep.intended).all()
    # the recording is an ordinary replay: it saves and loads
    path = env._recorder.save(tmp_path / "live.replay.npz")
    assert load_replay(path).n_frames == 6


def test_identity_swaps_are_shown():
    """With diverse training the Aurora role wears another identity: the frame uses it."""
    env = villages.parallel_env(scenario="diverse-training", render_mode="rgb_array", render_size=SIZE)
    role = env.spec.alliance_index("Aurora")
    for seed in range(40):
        env.reset(seed=seed)
        if int(env.game.identity[0, role]) != role:
            break
    else:
        pytest.skip("no identity swap in 40 seeds")
    meta = env._recorder.meta
    worn = env.spec.identities[int(env.game.identity[0, role])]
    assert meta["alliance_names"][role] == worn.name and meta["alliance_colours"][role] == list(worn.rgb())
    assert village_colours_ok(env, env.render()) > 0


def test_no_render_mode_no_recording():
    env = villages.parallel_env()
    play(env, 3)
    assert env._recorder is None and env._viewer is None
    with pytest.warns(UserWarning, match="render_mode"):
        assert env.render() is None


def test_render_before_reset_is_a_clear_error():
    env = villages.parallel_env(render_mode="rgb_array")
    with pytest.raises(RuntimeError, match="reset"):
        env.render()
    with pytest.raises(ValueError, match="render_mode"):
        villages.parallel_env(render_mode="ansi")


def test_human_window_opens_updates_and_closes():
    import pygame

    env = villages.parallel_env(render_mode="human", render_size=SIZE, render_fps=0, max_cycles=6)
    env.reset(seed=1)  # draws
    surf = pygame.display.get_surface()
    assert surf is not None and surf.get_size() == SIZE
    before = pygame.surfarray.array3d(surf).copy()
    play(env, 6, seed=1)
    after = pygame.surfarray.array3d(pygame.display.get_surface())
    assert not np.array_equal(before, after)
    assert env.render() is None
    env.close()
    assert not pygame.display.get_init()
    # a new episode re-opens the window
    env.reset(seed=2)
    assert pygame.display.get_surface() is not None
    env.close()


def test_human_window_closed_by_user_stops_drawing():
    import pygame

    env = villages.parallel_env(render_mode="human", render_size=SIZE, render_fps=0)
    env.reset(seed=0)
    pygame.event.post(pygame.event.Event(pygame.QUIT))
    play(env, 2)  # still steps fine
    assert not pygame.display.get_init()
    env.close()


def test_pettingzoo_render_test():
    render_test(lambda render_mode: villages.env(render_mode=render_mode, render_fps=0, render_size=SIZE,
                                                 max_cycles=20))


def test_pettingzoo_render_test_default_constructor():
    render_test(villages.env)
