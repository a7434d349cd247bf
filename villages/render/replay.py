"""Replay files: per-tick snapshots of one world, its event log and scenario metadata.

A replay is a compressed ``.npz`` archive (``np.savez_compressed``; suggested suffix
``.replay.npz``) with plain arrays only (no pickles):

* ``format`` (str ``"villages-replay"``) and ``version`` (int, ``FORMAT_VERSION``);
* ``index``: the names of all other members (a damaged zip directory is detected);
* ``sha256`` (version 3; some version-2 files): a hash of every other member's name, dtype, shape and bytes
  (``replay_check.sha256_of``), so that corruption inside a member's data is caught even
  where the zip's CRC is not checked;
* ``meta``: one JSON string (see ``ReplayRecorder`` for the keys);
* per-frame arrays, leading axis T (frames): ``tick[T]``, ``owner[T,V]``,
  ``troops[T,V,U]``, ``buildings[T,V,K]``, ``integrity[T,V]``, ``resources[T,V,R]``,
  ``relation[T,A+1,A+1]``, ``player_active[T,P+1]``, ``army_active/kind/owner/src/dst/
  arrive[T,M]``, ``army_troops[T,M,U]``, ``army_depart[T,M]`` (tick the army set off on
  its current leg) and ``army_from[T,M]`` (site it set off from: for a returning army
  the battlefield, which the engine does not keep), ``reward[T]`` and ``intended[T]``
  (NaN where not given);
* the focal agent's choice (version 3; some version-2 files), per frame, leading axis T: what it chose seeing
  that frame's state (so the last frame has none): ``choice_action[T]`` (action index,
  -1: none recorded), ``choice_prob[T]`` (its probability), ``choice_top_action[T,K]`` /
  ``choice_top_prob[T,K]`` (the K most probable legal actions, -1 / NaN padded) and
  ``choice_value[T]`` (the value estimate); probabilities and value are NaN where the
  policy gives none (scripted bots). All come from the forward pass that chose the action;
* static arrays: ``pos[V,2]``, ``player_alliance[P+1]``, ``banner[A+1,D]``, ``home[P+1]``,
  and (version 3) ``row_village[N]`` (the site each of the focal seat's action rows
  targets) and ``alliance_order[A]`` (the alliance of each diplomacy-table row);
* the event log: ``event/<kind>/<column>`` for every event kind that occurred, with the
  engine's columns (less ``world``) plus ``frame``: the index of the snapshot recorded
  together with the event (the state right after it).

Reading a file checks its size before inflating it (``MAX_REPLAY_BYTES``), its hash, and
every value the viewer indexes with (``replay_check.check_contents``).

Frame ``i`` is the state after the step whose events carry ``frame == i``; the event's
own ``tick`` column is the game tick at which it happened (the tick *before* the step).

Version 1 files (no choice arrays) still load: their choice arrays read as "none recorded".

This module does not import pygame: replays are recorded headless. ``ReplayObserver`` is the
scenario runner's callback (``run_episodes(..., observer=ReplayObserver(folder))``), so the
runner knows nothing of replays and the two packages import one way (render -> scenarios).
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from villages.atomic import atomic_write
from villages.game import BUILDINGS, RELATION_NAMES, RESOURCES, UNITS, GameConfig
from villages.game.layouts import ActionLayout
from villages.game.config import ARMY_RETURN
from villages.validation import MAX_REPLAY_BYTES, InputError

from .replay_check import check_contents, sha256_of

FORMAT_NAME = "villages-replay"
FORMAT_VERSION = 3
# Version 1: neither hash nor choices. Version 2 was written with one of the two (the content hash or
# the choice arrays, from two branches of work merged on the same day): read with whichever it has.
# Version 3: both.
READABLE_VERSIONS = (1, 2, 3)
TOP_K = 5  # alternatives a recorder keeps per decision
MAX_MEMBERS = 10_000  # arrays in one file: the engine has a few dozen event columns

# Default alliance colours (RGB) when the scenario gives none; barbarians are grey.
DEFAULT_COLOURS = (
    (66, 135, 245),   # blue
    (235, 87, 71),    # red
    (250, 190, 50),   # amber
    (80, 200, 120),   # green
    (180, 100, 230),  # violet
    (40, 200, 210),   # cyan
    (240, 130, 200),  # pink
    (160, 120, 70),   # brown
    (200, 220, 90),   # lime
    (255, 150, 60),   # orange
)
BARBARIAN_COLOUR = (128, 128, 128)

# (name, dtype) of per-frame arrays, in file order.
FRAME_ARRAYS = (
    ("tick", np.int64),
    ("owner", np.int16),
    ("troops", np.int32),
    ("buildings", np.int8),
    ("integrity", np.float32),
    ("resources", np.float32),
    ("relation", np.int8),
    ("player_active", np.bool_),
    ("army_active", np.bool_),
    ("army_kind", np.int8),
    ("army_owner", np.int16),
    ("army_src", np.int16),
    ("army_dst", np.int16),
    ("army_arrive", np.int32),
    ("army_troops", np.int32),
    ("army_depart", np.int32),
    ("army_from", np.int16),
    ("reward", np.float64),
    ("intended", np.float64),
)
# (name, dtype, fill where nothing was recorded) of the per-frame choice arrays (version 2).
CHOICE_ARRAYS = (
    ("choice_action", np.int32, -1),
    ("choice_prob", np.float32, np.nan),
    ("choice_top_action", np.int32, -1),
    ("choice_top_prob", np.float32, np.nan),
    ("choice_value", np.float32, np.nan),
)
STATIC_ARRAYS = (
    ("pos", np.float64),
    ("player_alliance", np.int16),
    ("banner", np.float32),
    ("home", np.int16),
)
CHOICE_STATIC_ARRAYS = (
    ("row_village", np.int16),
    ("alliance_order", np.int16),
)


_ALL_FRAME_ARRAYS = FRAME_ARRAYS + tuple((name, dtype) for name, dtype, _ in CHOICE_ARRAYS)
_ALL_STATIC_ARRAYS = STATIC_ARRAYS + CHOICE_STATIC_ARRAYS


class ReplayError(InputError):
    """A replay file cannot be read: names the file and what is wrong with it."""


# ---------------------------------------------------------------------------------
# Replay (what load_replay returns)
# ---------------------------------------------------------------------------------


@dataclass(eq=False)
class Replay:
    """One world's episode: per-frame arrays [T, ...], static arrays, events, meta.

    ``meta`` always holds the keys written by ``ReplayRecorder`` (filled with defaults
    where the scenario gave none): see ``ReplayRecorder``.
    """

    meta: dict
    tick: np.ndarray
    owner: np.ndarray
    troops: np.ndarray
    buildings: np.ndarray
    integrity: np.ndarray
    resources: np.ndarray
    relation: np.ndarray
    player_active: np.ndarray
    army_active: np.ndarray
    army_kind: np.ndarray
    army_owner: np.ndarray
    army_src: np.ndarray
    army_dst: np.ndarray
    army_arrive: np.ndarray
    army_troops: np.ndarray
    army_depart: np.ndarray
    army_from: np.ndarray
    reward: np.ndarray
    intended: np.ndarray
    pos: np.ndarray
    player_alliance: np.ndarray
    banner: np.ndarray
    home: np.ndarray
    choice_action: np.ndarray
    choice_prob: np.ndarray
    choice_top_action: np.ndarray
    choice_top_prob: np.ndarray
    choice_value: np.ndarray
    row_village: np.ndarray
    alliance_order: np.ndarray
    events: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    path: str | None = None

    # -- sizes ---------------------------------------------------------------------
    @property
    def n_frames(self) -> int:
        return int(self.tick.shape[0])

    def __len__(self) -> int:
        return self.n_frames

    @property
    def n_villages(self) -> int:
        return int(self.pos.shape[0])

    @property
    def n_players(self) -> int:
        """Player seats, barbarians excluded (the barbarian seat is ``n_players``)."""
        return int(self.player_alliance.shape[0]) - 1

    @property
    def n_alliances(self) -> int:
        """Named alliances, barbarians excluded (the barbarian alliance is ``n_alliances``)."""
        return int(self.relation.shape[1]) - 1

    @property
    def has_choices(self) -> bool:
        """Whether the focal agent's choices were recorded (version 2, any policy)."""
        return bool((self.choice_action >= 0).any())

    @property
    def has_choice_probs(self) -> bool:
        """Whether the choices come with probabilities and values (a neural policy)."""
        return bool(np.isfinite(self.choice_top_prob).any())

    @property
    def focal_player(self) -> int:
        return int(self.meta["focal_player"])

    @property
    def focal_alliance(self) -> int:
        return int(self.player_alliance[self.focal_player])

    # -- names -----------------------------------------------------------------------
    def alliance_name(self, a: int) -> str:
        return "Barbarians" if a >= self.n_alliances or a < 0 else self.meta["alliance_names"][a]

    def alliance_tag(self, a: int) -> str:
        return "BAR" if a >= self.n_alliances or a < 0 else self.meta["alliance_tags"][a]

    def alliance_colour(self, a: int) -> tuple[int, int, int]:
        if a >= self.n_alliances or a < 0:
            return BARBARIAN_COLOUR
        return tuple(int(c) for c in self.meta["alliance_colours"][a])

    def player_name(self, p: int) -> str:
        return "Barbarians" if p >= self.n_players or p < 0 else self.meta["player_names"][p]

    def village_name(self, v: int) -> str:
        return self.meta["village_names"][v]

    # -- events ----------------------------------------------------------------------
    def frame_of_tick(self, tick: int) -> int:
        """Index of the snapshot taken at game tick ``tick`` (nearest earlier one)."""
        i = int(np.searchsorted(self.tick, tick, side="right")) - 1
        return max(0, min(i, self.n_frames - 1))

    def events_at(self, tick: int) -> dict[str, dict[str, np.ndarray]]:
        """Events that happened at game tick ``tick`` (their ``tick`` column): kind -> columns."""
        return self._events_where(lambda cols: cols["tick"] == tick)

    def events_in_frame(self, i: int) -> dict[str, dict[str, np.ndarray]]:
        """Events recorded with snapshot ``i`` (those that led to it): kind -> columns."""
        return self._events_where(lambda cols: cols["frame"] == i)

    def events_between(self, lo: int, hi: int) -> dict[str, dict[str, np.ndarray]]:
        """Events recorded with snapshots ``lo <= frame < hi``."""
        return self._events_where(lambda cols: (cols["frame"] >= lo) & (cols["frame"] < hi))

    def _events_where(self, pred) -> dict[str, dict[str, np.ndarray]]:
        out = {}
        for kind, cols in self.events.items():
            keep = pred(cols)
            if keep.any():
                out[kind] = {k: c[keep] for k, c in cols.items()}
        return out


# ---------------------------------------------------------------------------------
# Recorder
# ---------------------------------------------------------------------------------


def _as_str_list(meta: dict, key: str, n: int, default) -> list[str]:
    value = meta.get(key)
    if value is None:
        return [default(i) for i in range(n)]
    value = [str(x) for x in value]
    if len(value) != n:
        raise ValueError(f"replay meta[{key!r}] needs {n} entries (one per index), got {len(value)}")
    return value


def _default_tag(name: str, i: int) -> str:
    words = name.split()
    tag = "".join(w[0] for w in words) if len(words) > 1 else name[:3]
    return tag[:4].upper() or f"A{i}"


def normalise_meta(config: GameConfig, meta: dict | None) -> dict:
    """Fill defaults and check the scenario metadata; returns a JSON-ready dict."""
    meta = dict(meta or {})
    P, A, V = config.n_players, config.n_alliances, config.n_villages
    out = dict(meta)  # unknown keys are kept as they are (must be JSON-serialisable)
    out["format"] = FORMAT_NAME
    out["format_version"] = FORMAT_VERSION
    out["scenario"] = str(meta.get("scenario", "unnamed"))
    out["alliance_names"] = _as_str_list(meta, "alliance_names", A, lambda i: f"Alliance {i}")
    out["alliance_tags"] = _as_str_list(meta, "alliance_tags", A, lambda i: _default_tag(out["alliance_names"][i], i))
    out["alliance_tags"] = [t if t and t != "None" else _default_tag(n, i)
                            for i, (t, n) in enumerate(zip(out["alliance_tags"], out["alliance_names"]))]
    colours = meta.get("alliance_colours")
    if colours is None:
        colours = [DEFAULT_COLOURS[i % len(DEFAULT_COLOURS)] for i in range(A)]
    colours = [list(c) if c is not None else list(DEFAULT_COLOURS[i % len(DEFAULT_COLOURS)]) for i, c in enumerate(colours)]
    if len(colours) != A or any(len(c) != 3 or not all(0 <= int(x) <= 255 for x in c) for c in colours):
        raise ValueError(f"replay meta['alliance_colours'] needs {A} RGB triples of 0..255, got {colours!r}")
    out["alliance_colours"] = [[int(x) for x in c] for c in colours]
    out["player_names"] = _as_str_list(meta, "player_names", P, lambda i: f"Player {i}")
    out["village_names"] = _as_str_list(meta, "village_names", V, lambda i: f"Village {i}")
    focal = int(meta.get("focal_player", 0))
    if not 0 <= focal < P:
        raise ValueError(f"replay meta['focal_player'] must lie in [0, {P}), got {focal}")
    out["focal_player"] = focal
    out["episode_length"] = int(meta.get("episode_length", config.episode_length))
    out["reward_name"] = str(meta.get("reward_name", "reward"))
    out["intended_name"] = str(meta.get("intended_name", "intended"))
    out["game"] = {
        "n_players": P, "n_alliances": A, "n_villages": V, "max_armies": config.max_armies,
        "units": list(UNITS), "buildings": list(BUILDINGS), "resources": list(RESOURCES),
        "relations": list(RELATION_NAMES), "integrity_max": float(config.integrity_max),
        "building_max_level": int(config.building_max_level),
    }
    try:
        json.dumps(out)
    except TypeError as e:
        raise ValueError(f"replay meta must be JSON-serialisable: {e}") from None
    return out


class ReplayRecorder:
    """Collects snapshots of one world of a batched game, then writes a replay file.

    ``meta`` (all keys optional, defaults in brackets):

    * ``scenario``: str [``"unnamed"``]
    * ``alliance_names``: list[str], one per alliance index (barbarians excluded) [``"Alliance i"``]
    * ``alliance_tags``: list[str], short tags shown on banners (empty: default) [initials / first 3 letters]
    * ``alliance_colours``: list of [r, g, b] 0..255 per alliance (None entries: default) [a built-in palette]
    * ``player_names``: list[str], one per player seat [``"Player i"``]
    * ``village_names``: list[str], one per village site [``"Village i"``]
    * ``focal_player``: int, the seat whose view the panel shows [0]
    * ``episode_length``: int [``config.episode_length``]
    * ``reward_name`` / ``intended_name``: labels for the two per-tick series
      [``"reward"``, ``"intended"``]
    * anything else JSON-serialisable (seed, objective, policy, checkpoint...) is kept.

    Call ``record(state, events)`` after each ``step`` (and optionally once with the
    initial state and ``events=None``); ``reward`` / ``intended`` are the focal agent's
    per-tick values (a number; an array is indexed ``[world]`` then ``[focal_player]``).
    ``record_choice(...)`` then notes what the focal agent chose seeing that last frame.
    """

    def __init__(self, config: GameConfig, meta: dict | None = None, top_k: int = TOP_K):
        self.config = config
        self.meta = normalise_meta(config, meta)
        self.top_k = int(top_k)
        # Per-frame arrays in growing buffers (capacity doubles): recording and reading the
        # replay so far (a live view does it every step) cost O(new frames), not O(frames).
        self._buf: dict[str, np.ndarray] | None = None
        self._n = 0
        self._static: dict[str, np.ndarray] | None = None
        self._events: dict[str, dict[str, list[np.ndarray]]] = {}
        self._prev = None  # previous frame's army arrays (for departure tracking)

    @property
    def n_frames(self) -> int:
        return self._n

    def _scalar(self, x, world: int) -> float:
        if x is None:
            return float("nan")
        a = np.asarray(x, dtype=np.float64)
        if a.ndim >= 1:
            a = a[world] if a.shape[0] > world else a[0]
        if a.ndim >= 1:
            a = a[self.meta["focal_player"]]
        return float(a)

    def record(self, state, events=None, world: int = 0, reward=None, intended=None) -> None:
        """Keep world ``world`` of batched ``state`` (and its ``events``) as the next frame."""
        s = state.select(slice(world, world + 1))
        cfg = self.config
        if s.owner.shape[1] != cfg.n_villages or s.player_alliance.shape[1] != cfg.n_players + 1:
            raise ValueError("state does not match the recorder's GameConfig")
        tick = int(s.tick[0])
        if self._static is None:
            self._static = {
                "pos": s.pos[0], "player_alliance": s.player_alliance[0], "banner": s.banner[0], "home": s.home[0],
                "row_village": s.row_village[0, self.meta["focal_player"]], "alliance_order": s.alliance_order[0],
            }
        elif self._n and tick < int(self._buf["tick"][self._n - 1]):
            raise ValueError(f"record: tick went back from {int(self._buf['tick'][self._n - 1])} to {tick}")

        # Departure tick and origin of each army's current leg (the engine keeps neither:
        # a returning army has src == dst == home).
        active, kind, dst, arrive, src = s.army_active[0], s.army_kind[0], s.army_dst[0], s.army_arrive[0], s.army_src[0]
        depart = np.full(active.shape, tick - 1, np.int64)
        origin = src.copy()
        if self._prev is not None:
            p_active, p_kind, p_dst, p_arrive, p_depart, p_from = self._prev
            same_leg = active & p_active & (p_kind == kind) & (p_dst == dst) & (p_arrive == arrive)
            depart = np.where(same_leg, p_depart, depart)
            origin = np.where(same_leg, p_from, origin)
            turned = active & ~same_leg & p_active & (kind == ARMY_RETURN)
            origin = np.where(turned, p_dst, origin)
        ev = None
        if events is not None:
            ev = events.select_world(world)
            launch = ev.get("launch")
            if launch:  # exact launch ticks
                depart[launch["army"]] = launch["tick"]
            battle = ev.get("battle")
            if battle:  # armies that fought turn home from the battlefield
                m = battle["army"]
                ret = active[m] & (kind[m] == ARMY_RETURN)
                depart[m[ret]] = battle["tick"][ret]
                origin[m[ret]] = battle["village"][ret]
        depart = np.where(active, depart, 0)
        origin = np.where(active, origin, 0)
        self._prev = (active.copy(), kind.copy(), dst.copy(), arrive.copy(), depart, origin)

        values = {
            "tick": s.tick[0], "owner": s.owner[0], "troops": s.troops[0], "buildings": s.buildings[0],
            "integrity": s.integrity[0], "resources": s.resources[0], "relation": s.relation[0],
            "player_active": s.player_active[0], "army_active": active, "army_kind": kind,
            "army_owner": s.army_owner[0], "army_src": src, "army_dst": dst, "army_arrive": arrive,
            "army_troops": s.army_troops[0], "army_depart": depart, "army_from": origin,
            "reward": self._scalar(reward, world), "intended": self._scalar(intended, world),
        }
        K = self.top_k
        for name, dtype, fill in CHOICE_ARRAYS:  # nothing chosen yet (see record_choice)
            values[name] = np.full(K, fill, dtype) if name.startswith("choice_top") else fill
        frame = self._n
        if self._buf is None:
            self._buf = {name: np.empty((16,) + np.shape(values[name]), dtype) for name, dtype in _ALL_FRAME_ARRAYS}
        elif frame == len(self._buf["tick"]):
            self._buf = {name: np.concatenate([b, np.empty_like(b)]) for name, b in self._buf.items()}
        for name, _ in _ALL_FRAME_ARRAYS:
            self._buf[name][frame] = values[name]
        self._n = frame + 1

        if ev is not None:
            for kind_name, cols in ev.to_records().items():
                if not cols:
                    continue
                n = len(next(iter(cols.values())))
                table = self._events.setdefault(kind_name, {})
                cols = {k: c for k, c in cols.items() if k != "world"}
                cols["frame"] = np.full(n, frame, np.int32)
                for k, c in cols.items():
                    table.setdefault(k, []).append(c)

    def record_choice(self, action: int, prob=None, top_actions=None, top_probs=None, value=None) -> None:
        """Note what the focal agent chose seeing the last recorded frame: its ``action``,
        that action's probability ``prob``, the most probable legal actions ``top_actions``
        (best first) with ``top_probs``, and the value estimate ``value``. A scripted bot
        gives only ``action`` (the rest is recorded as unknown). Keeps at most ``top_k``."""
        if not self._n:
            raise ValueError("record_choice: record the state the choice was made in first")
        f, K = self._n - 1, self.top_k
        b = self._buf
        b["choice_action"][f] = int(action)
        b["choice_prob"][f] = np.nan if prob is None else float(prob)
        b["choice_value"][f] = np.nan if value is None else float(value)
        if top_actions is not None:
            top = np.asarray(top_actions, np.int64)[:K]
            probs = np.full(len(top), np.nan) if top_probs is None else np.asarray(top_probs, np.float64)[:K]
            if probs.shape != top.shape:
                raise ValueError(f"record_choice: {len(top)} top actions but {len(probs)} probabilities")
            b["choice_top_action"][f, : len(top)] = top
            b["choice_top_prob"][f, : len(top)] = probs

    def arrays(self) -> dict[str, np.ndarray]:
        """Everything the file holds, as named arrays."""
        if not self.n_frames:
            raise ValueError("ReplayRecorder: nothing recorded yet")
        out: dict[str, np.ndarray] = {
            "format": np.array(FORMAT_NAME),
            "version": np.array(FORMAT_VERSION, np.int64),
            "meta": np.array(json.dumps(self.meta)),
        }
        for name, dtype in _ALL_FRAME_ARRAYS:
            out[name] = self._buf[name][: self._n]  # a view: later frames go to rows past it
        for name, dtype in _ALL_STATIC_ARRAYS:
            out[name] = np.asarray(self._static[name]).astype(dtype)
        for kind, table in self._events.items():
            for col, parts in table.items():
                if len(parts) > 1:
                    parts[:] = [np.concatenate(parts)]  # keep the joined column: next time only new parts
                out[f"event/{kind}/{col}"] = parts[0]
        return _with_index(out)

    def replay(self) -> Replay:
        """The recording so far as a ``Replay`` (no file needed)."""
        return _replay_from_arrays(self.arrays(), None)

    def save(self, path) -> Path:
        """Write the replay to ``path`` (exactly that name; written atomically)."""
        return _write(self.arrays(), path)


def replay_meta(game, world: int = 0, **extra) -> dict:
    """Replay metadata of one world: alliance names/tags/colours as that world shows them
    (diversity can swap identities per episode), players, the focal player, the objective."""
    spec = game.spec
    ident = [spec.identities[int(i)] for i in game.identity[world]]
    return {
        "scenario": spec.name,
        "alliance_names": [i.name for i in ident],
        "alliance_tags": [i.tag or i.name[:3].upper() for i in ident],
        "alliance_colours": [list(i.rgb()) for i in ident],
        "player_names": list(spec.player_names),
        "focal_player": int(spec.focal_players[0]) if len(spec.focal_players) else 0,
        "episode_length": int(game.config.episode_length),
        "reward_name": f"reward ({spec.objective})",
        "intended_name": "intended",
        "objective": spec.objective,
        **extra,
    }


class ReplayObserver:
    """The scenario runner's ``EpisodeObserver`` that records world 0 as a replay file.

    ``path``: a folder (the file is ``<scenario>-seed<seed>-episode0.replay.npz`` there) or a
    ``.npz`` file name."""

    def __init__(self, path):
        self.path = Path(path)
        self.recorder: ReplayRecorder | None = None

    def start(self, game, policy_name: str, world_seed: int) -> None:
        self.recorder = ReplayRecorder(game.config, replay_meta(game, 0, policy=policy_name, seed=world_seed))
        if game.initial_state is not game.state:  # tick-0 events happened: show the world before them
            self.recorder.record(game.initial_state, None, world=0, reward=0.0, intended=0.0)
        self.recorder.record(game.state, game.events, world=0, reward=0.0, intended=0.0)

    def choice(self, action: int, choice) -> None:
        if choice is None:
            self.recorder.record_choice(action)
        else:  # world 0, the first focal seat (the replay's focal player)
            self.recorder.record_choice(action, choice.prob[0, 0], choice.top_actions[0, 0], choice.top_probs[0, 0],
                                        choice.value[0, 0])

    def step(self, game, reward, info: dict) -> None:
        self.recorder.record(game.state, info["events"], world=0, reward=float(np.sum(reward[0])),
                             intended=float(np.sum(info["intended"][0])))

    def finish(self, spec, seed: int) -> str:
        path = self.path if self.path.suffix == ".npz" else \
            self.path / f"{Path(spec.name).stem}-seed{seed}-episode0.replay.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        return str(self.recorder.save(path))


def replay_arrays(replay: Replay) -> dict[str, np.ndarray]:
    """A ``Replay`` as the named arrays of its file."""
    out: dict[str, np.ndarray] = {
        "format": np.array(FORMAT_NAME),
        "version": np.array(FORMAT_VERSION, np.int64),
        "meta": np.array(json.dumps(replay.meta)),
    }
    for name, dtype in _ALL_FRAME_ARRAYS + _ALL_STATIC_ARRAYS:
        out[name] = np.asarray(getattr(replay, name)).astype(dtype)
    for kind, cols in replay.events.items():
        for col, arr in cols.items():
            out[f"event/{kind}/{col}"] = arr
    return _with_index(out)


def _with_index(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Add ``index``: the names of all members, so that a damaged zip directory is caught."""
    arrays = {k: v for k, v in arrays.items() if k != "index"}
    arrays["index"] = np.array(sorted(arrays))
    return arrays


def save_replay(replay: Replay, path) -> Path:
    """Write a ``Replay`` (e.g. one loaded, sliced or built in memory) to ``path``."""
    return _write(replay_arrays(replay), path)


def _write(arrays: dict[str, np.ndarray], path) -> Path:
    """Atomic write (temporary file, fsync, rename) with the content hash."""
    arrays = {k: v for k, v in arrays.items() if k not in ("index", "sha256")}
    arrays["index"] = np.array(sorted([*arrays, "sha256"]))
    arrays["sha256"] = np.array(sha256_of(arrays))
    return atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


# ---------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------


def _replay_from_arrays(arrays: dict[str, np.ndarray], path: str | None, fail=None) -> Replay:
    def bad(msg):
        raise (fail(msg) if fail else ValueError(msg))

    meta = json.loads(str(arrays["meta"]))
    if not isinstance(meta, dict):
        bad(f"meta: expected a JSON object, got {type(meta).__name__}")
    kw = {}
    for name, dtype in _ALL_FRAME_ARRAYS + _ALL_STATIC_ARRAYS:
        kw[name] = arrays[name]
        if kw[name].ndim != _NDIM[name]:
            bad(f"array {name!r} has {kw[name].ndim} dimensions, expected {_NDIM[name]}")
    T = arrays["tick"].shape[0]
    for name, _ in FRAME_ARRAYS:
        if kw[name].shape[:1] != (T,):
            bad(f"array {name!r} has shape {kw[name].shape}, expected {T} frames (as 'tick')")
    V, M = kw["owner"].shape[1], kw["army_active"].shape[1]
    expect = {"pos": (V, 2), "troops": (T, V), "buildings": (T, V), "integrity": (T, V), "resources": (T, V),
              "army_troops": (T, M)}
    for name in ("army_kind", "army_owner", "army_src", "army_dst", "army_arrive", "army_depart", "army_from"):
        expect[name] = (T, M)
    for name, shape in expect.items():
        if kw[name].shape[: len(shape)] != shape:
            bad(f"array {name!r} has shape {kw[name].shape}, expected {shape} + ...")
    A1 = kw["relation"].shape[1]
    if kw["relation"].shape != (T, A1, A1) or kw["banner"].shape[0] != A1:
        bad(f"relation {kw['relation'].shape} and banner {kw['banner'].shape} disagree on the number of alliances")
    P1 = kw["player_alliance"].shape[0]
    if kw["player_active"].shape != (T, P1) or kw["home"].shape != (P1,):
        bad(f"player_active {kw['player_active'].shape} and home {kw['home'].shape} do not fit {P1 - 1} players "
            f"and {T} frames")
    if A1 < 1 or P1 < 2 or V < 1:
        bad(f"expected at least one site, player and alliance, got {V}, {P1 - 1}, {A1 - 1}")
    for name, n, what in (("troops", len(UNITS), "units"), ("army_troops", len(UNITS), "units"),
                          ("buildings", len(BUILDINGS), "buildings"), ("resources", len(RESOURCES), "resources")):
        if kw[name].shape[-1] != n:
            bad(f"array {name!r} has shape {kw[name].shape}, expected {n} {what} in its last axis")
    if kw["pos"].shape != (V, 2):
        bad(f"array 'pos' has shape {kw['pos'].shape}, expected {(V, 2)}")
    for key, n in (("alliance_names", A1 - 1), ("alliance_tags", A1 - 1), ("alliance_colours", A1 - 1),
                   ("player_names", P1 - 1), ("village_names", V)):
        value = meta.get(key, [])
        if not isinstance(value, list):
            bad(f"meta[{key!r}]: expected a list of {n} entries, got {type(value).__name__}")
        if len(value) != n:
            bad(f"meta[{key!r}] has {len(value)} entries, expected {n}")
    if "focal_player" not in meta:
        bad("meta has no 'focal_player'")
    _check_choices(kw, A1 - 1, V, bad)
    events: dict[str, dict[str, np.ndarray]] = {}
    for name, arr in arrays.items():
        if name.startswith("event/"):
            parts = name.split("/")
            if len(parts) != 3:
                bad(f"bad event array name {name!r} (expected event/<kind>/<column>)")
            events.setdefault(parts[1], {})[parts[2]] = arr
    for kind, cols in events.items():
        for col, c in cols.items():
            if c.ndim < 1:
                bad(f"array 'event/{kind}/{col}': expected a column (one row per event), got a single value")
        lengths = {k: len(c) for k, c in cols.items()}
        if len(set(lengths.values())) > 1 or "frame" not in cols or "tick" not in cols:
            bad(f"event table {kind!r} is inconsistent (column lengths {lengths}; needs 'frame' and 'tick')")
    if path is not None:  # (a recording in memory is the engine's own output)
        check_contents(kw, meta, events, dict(FRAME_ARRAYS + STATIC_ARRAYS), bad)
    return Replay(meta=meta, events=events, path=path, **kw)


def _check_choices(kw: dict, A: int, V: int, bad) -> None:
    """The choice arrays (version 2) agree with each other and with the map."""
    T = kw["tick"].shape[0]
    top = kw["choice_top_action"]
    if top.ndim != 2 or top.shape[0] != T or kw["choice_top_prob"].shape != top.shape:
        bad(f"choice_top_action {top.shape} and choice_top_prob {kw['choice_top_prob'].shape} must both be "
            f"[{T} frames, K]")
    rv, order = kw["row_village"], kw["alliance_order"]
    if rv.ndim != 1 or (len(rv) and not ((rv >= 0) & (rv < V)).all()):
        bad(f"row_village must list sites in [0, {V}), got {rv.tolist()[:8]}")
    if order.ndim != 1 or (len(order) and not ((order >= 0) & (order < A)).all()):
        bad(f"alliance_order must list alliances in [0, {A}), got {order.tolist()[:8]}")
    acts = np.concatenate([kw["choice_action"].ravel(), top.ravel()])
    if not (acts >= 0).any():
        return
    if not len(rv) or len(order) != A:
        bad("choices are recorded but row_village / alliance_order (the action targets) are missing")
    n_actions = ActionLayout(len(rv), A).n_actions
    if acts.min() < -1 or acts.max() >= n_actions:
        bad(f"choice actions must lie in [-1, {n_actions}) (-1: none), got {int(acts.min())}..{int(acts.max())}")
    probs = np.concatenate([kw["choice_prob"].ravel(), kw["choice_top_prob"].ravel()])
    probs = probs[np.isfinite(probs)]
    if len(probs) and (probs.min() < 0 or probs.max() > 1 + 1e-5):
        bad(f"choice probabilities must lie in [0, 1], got {float(probs.min()):g}..{float(probs.max()):g}")


def _without_choices(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A version-1 file's arrays with the choice arrays added as "none recorded"."""
    T = arrays["tick"].shape[0]
    out = dict(arrays)
    for name, dtype, fill in CHOICE_ARRAYS:
        shape = (T, 0) if name.startswith("choice_top") else (T,)
        out[name] = np.full(shape, fill, dtype)
    for name, dtype in CHOICE_STATIC_ARRAYS:
        out[name] = np.zeros(0, dtype)
    return out


_NDIM = {"tick": 1, "reward": 1, "intended": 1, "player_alliance": 1, "home": 1, "troops": 3, "buildings": 3,
         "resources": 3, "relation": 3, "army_troops": 3}
_NDIM.update({"choice_action": 1, "choice_prob": 1, "choice_value": 1, "row_village": 1, "alliance_order": 1})
_NDIM = {name: _NDIM.get(name, 2) for name, _ in _ALL_FRAME_ARRAYS + _ALL_STATIC_ARRAYS}


def load_replay(path) -> Replay:
    """Read a replay file; raises ``ReplayError`` naming the file and the problem."""
    path = Path(path)
    name = str(path)

    def fail(msg):
        return ReplayError(f"replay file {name!r}: {msg}")

    if not path.exists():
        raise fail("no such file")
    if path.stat().st_size == 0:
        raise fail("file is empty")
    # Read the zip members ourselves: zipfile checks each member's CRC-32 when it is
    # read to the end, which np.load does not do (a flipped bit would go unnoticed).
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise fail(f"not a valid replay archive - the file is truncated or not a .npz zip ({e})") from None
    except (OSError, ValueError, EOFError, KeyError, RuntimeError, NotImplementedError, OverflowError) as e:
        raise fail(f"cannot be opened as a .npz archive - truncated or corrupted ({e})") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise fail(f"expected at most {MAX_MEMBERS:,} arrays, got {len(infos):,}")
        inflated = sum(i.file_size for i in infos)
        if inflated > MAX_REPLAY_BYTES.value:
            raise fail(f"expected at most {MAX_REPLAY_BYTES} bytes of arrays, got {inflated:,} once inflated "
                       f"({MAX_REPLAY_BYTES.why})")
        members = {n[:-4] if n.endswith(".npy") else n: n for n in zf.namelist()}
        arrays: dict[str, np.ndarray] = {}
        member = None

        def read(member):
            data = zf.read(members[member])
            return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)

        try:
            for member in ("format", "version", "meta"):
                if member not in members:
                    raise fail(f"missing {member!r}: not a villages replay (members: {sorted(members)[:8]})")
                arrays[member] = read(member)
            if str(arrays["format"]) != FORMAT_NAME:
                raise fail(f"format is {str(arrays['format'])!r}, expected {FORMAT_NAME!r}")
            version = int(arrays["version"])
            if version not in READABLE_VERSIONS:
                newer = "newer than" if version > FORMAT_VERSION else "older than"
                raise fail(f"format version {version} is {newer} this reader's versions "
                           f"{', '.join(map(str, READABLE_VERSIONS))}; re-record the replay or use a matching "
                           f"villages release")
            for member in members:
                if member not in arrays:
                    arrays[member] = read(member)
        except ReplayError:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError, TypeError, NotImplementedError,
                RuntimeError, OverflowError, MemoryError) as e:  # (RuntimeError: a flipped "encrypted" flag bit)
            raise fail(f"corrupted data in member {member!r} ({type(e).__name__}: {e})") from None
    if version >= 3 or (version == 2 and "sha256" in arrays):
        stored = arrays.pop("sha256", None)
        if stored is None or stored.shape != () or str(stored) != sha256_of(arrays):
            raise fail("content hash mismatch: the file is corrupted (its sha256 does not match its arrays)")
    if "index" in arrays:
        listed = set(str(x) for x in np.atleast_1d(arrays.pop("index")))
        lost = sorted(listed - set(arrays) - {"sha256"})  # (checked above)
        if lost:
            raise fail(f"corrupted archive directory: {len(lost)} members listed in the index are missing "
                       f"({lost[:4]}{'...' if len(lost) > 4 else ''})")
    with_choices = version >= 3 or (version == 2 and "choice_action" in arrays)
    missing = [n for n, _ in FRAME_ARRAYS + STATIC_ARRAYS if n not in arrays]
    if with_choices:
        missing += [n for n, _ in _ALL_FRAME_ARRAYS + _ALL_STATIC_ARRAYS if n not in arrays and n not in missing]
    if missing:
        raise fail(f"missing arrays {missing}")
    if not with_choices:
        arrays = _without_choices(arrays)
    try:
        json.loads(str(arrays["meta"]))
    except (json.JSONDecodeError, RecursionError) as e:
        raise fail(f"metadata is not valid JSON ({type(e).__name__})") from None
    return _replay_from_arrays(arrays, name, fail)
