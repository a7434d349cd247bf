"""A small self-contained replay generator for tests, benchmarks and development.

It plays the story in miniature, independent of ``villages.scenarios``: six alliances
("Assistant" in the middle, "Aurora", "Brotherhood", ...), the Assistant at war with
Aurora; Aurora's players leave at ``leave_tick`` and Brotherhood declares war on the
Assistant at ``war_tick``. Everyone plays random legal economy moves; players at war
attack their enemies now and then, except the focal Assistant player, who (like a
pseudo-aligned agent) only ever attacks Aurora.

    python -m villages.render._demo out.replay.npz [n_ticks] [seed]
"""

from __future__ import annotations

import sys

import numpy as np

from villages.game import (
    Events,
    GameConfig,
    Layout,
    action_layout,
    action_mask,
    init_state,
    players_leave,
    sample_legal,
    set_relation,
    step,
)
from villages.game.config import WAR

from .replay import Replay, ReplayRecorder, save_replay

ALLIANCES = ("Assistant", "Aurora", "Brotherhood", "Citadel", "Dawnguard", "Ember")
TAGS = ("AST", "AUR", "BRO", "CIT", "DWN", "EMB")
COLOURS = ((60, 140, 255), (235, 80, 200), (230, 60, 50), (80, 200, 110), (245, 190, 40), (40, 205, 215))
PLAYER_ALLIANCE = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4, 5])
PLAYERS = ("assistant", "ally-bot", "aurora-1", "aurora-2", "brother-1", "brother-2",
           "citadel-1", "citadel-2", "dawn-1", "ember-1")
AURORA, BROTHERHOOD = 1, 2


def demo_layout(config: GameConfig) -> Layout:
    A = config.n_alliances
    rel = np.zeros((A, A), int)
    rel[0, AURORA] = rel[AURORA, 0] = WAR
    return Layout(
        player_alliance=PLAYER_ALLIANCE,
        villages_per_player=np.array([2, 1, 2, 2, 2, 2, 1, 1, 1, 1]),
        banners=np.random.default_rng(0).normal(size=(A, config.banner_dim)),
        relation=rel,
        start_troops=np.array([10, 10, 10, 0, 0]),
    )


def demo_meta(config: GameConfig, n_ticks: int) -> dict:
    return {
        "scenario": "render-demo",
        "alliance_names": list(ALLIANCES),
        "alliance_tags": list(TAGS),
        "alliance_colours": [list(c) for c in COLOURS],
        "player_names": list(PLAYERS),
        "focal_player": 0,
        "episode_length": n_ticks,
        "reward_name": "troops (proxy)",
        "intended_name": "war score",
    }


# Chance per tick that a seat at war attacks an enemy in reach, per alliance.
AGGRESSION = np.array([0.3, 0.06, 0.35, 0.2, 0.2, 0.2])


def _policy(config, s, rng):
    """Random legal moves; players at war sometimes attack an enemy village in reach."""
    P = config.n_players
    L = action_layout(config)
    mask = action_mask(config, s, np.arange(P), diplomacy=False)
    a = sample_legal(mask, s.key, s.tick)
    attack_idx = L.row_action(np.arange(config.n_rows), "attack")  # [N]
    can = mask[:, :, attack_idx]  # [B, P, N]
    B = s.batch_size
    b = np.arange(B)[:, None, None]
    rv = s.row_village[:, :P]
    row_owner = s.owner[b, rv]
    row_all = np.where(row_owner >= 0, s.player_alliance[b, np.maximum(row_owner, 0)], -1)
    mine = s.player_alliance[:, :P, None]
    at_war = (row_all >= 0) & (s.relation[b, mine, np.maximum(row_all, 0)] == WAR)
    # The focal seat's learned goal: "attack Aurora", whoever is at war with it.
    at_war[:, 0] = row_all[:, 0] == AURORA
    want = can & at_war
    # Random attacks only on barbarians (and rarely); peaceful neighbours are left alone.
    row = np.clip(a - L.row_base, 0, None) // L.n_verbs
    target_all = np.take_along_axis(row_all, np.minimum(row, config.n_rows - 1)[..., None], -1)[..., 0]
    random_attack = np.isin(a, attack_idx)
    drop = random_attack & ((target_all != config.barbarian_alliance) | (rng.random(a.shape) < 0.7))
    a = np.where(drop, L.noop, a)
    go = want.any(-1) & (rng.random((B, P)) < AGGRESSION[PLAYER_ALLIANCE])
    pick = np.argmax(want * rng.random(want.shape), -1)
    return np.where(go, attack_idx[pick], a)


def _focal_values(config, s, ev, focal=0):
    troops = float(s.troops[0][s.owner[0] == focal].sum() + (s.army_troops[0] * s.army_active[0][:, None])[s.army_owner[0] == focal].sum())
    intended = 0.0
    battle = ev.get("battle") if ev is not None else {}
    if battle:
        d = battle["destroyed"] & (battle["world"] == 0)
        intended += float((d & (battle["attacker"] == focal) & (battle["relation"] == WAR)).sum())
        intended -= float((d & (battle["defender"] == focal)).sum())
    return troops, intended


def demo_replay(n_ticks: int = 150, seed: int = 0, leave_tick: int | None = None, war_tick: int | None = None,
                config: GameConfig | None = None) -> Replay:
    """Run the demo world for ``n_ticks`` and return its replay (frame 0 = initial state)."""
    config = config or GameConfig()
    leave_tick = int(0.35 * n_ticks) if leave_tick is None else leave_tick
    war_tick = int(0.45 * n_ticks) if war_tick is None else war_tick
    rng = np.random.default_rng(seed)
    s = init_state(config, demo_layout(config), [seed])
    rec = ReplayRecorder(config, demo_meta(config, n_ticks))
    rec.record(s, None, reward=0.0, intended=0.0)
    for _ in range(n_ticks):
        scripted = Events()
        t = int(s.tick[0])
        if t == leave_tick:
            s = players_leave(config, s, (PLAYER_ALLIANCE == AURORA)[None], scripted)
        if t == war_tick:
            s = set_relation(s, [0], BROTHERHOOD, 0, WAR, scripted)
        s, ev = step(config, s, _policy(config, s, rng))
        scripted.extend(ev)
        troops, intended = _focal_values(config, s, scripted)
        rec.record(s, scripted, reward=troops, intended=intended)
    return rec.replay()


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    out = argv[0] if argv else "demo.replay.npz"
    n = int(argv[1]) if len(argv) > 1 else 150
    seed = int(argv[2]) if len(argv) > 2 else 0
    replay = demo_replay(n, seed)
    save_replay(replay, out)
    counts = ", ".join(f"{k}={len(v['tick'])}" for k, v in sorted(replay.events.items()))
    print(f"wrote {out}: {replay.n_frames} frames; events: {counts}")


if __name__ == "__main__":
    main()
