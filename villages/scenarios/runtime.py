"""A scenario running over B worlds at once: background bots, timeline, rewards.

``ScenarioGame`` is what the trainer, the runner and the PettingZoo facade drive:

    game = ScenarioGame(spec, batch_size=256)
    obs, mask = game.reset(seeds)          # focal seats only: [B, F, ...]
    obs, mask, reward, done, info = game.step(actions)   # actions int[B, F]

Background seats are played inside by their scenario bots (hidden from the learner,
as in Melting Pot). All worlds run the same number of ticks, so episodes end together.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from villages.game import (
    Events,
    GameConfig,
    Layout,
    action_mask,
    encode,
    init_state,
    observation_layout,
    rng,
    step,
    village_economy,
)
from villages.game.config import ALLY, PEACE, UNITS, WAR
from villages.policies import NoopPolicy, make_policy
from villages.policies.bots import ScriptedBot

from .loader import check_limits
from .events import EVENT_ACTIONS
from .objectives import OBJECTIVES, event_counts, head_count, intended_score, oversight_penalty, villages_reward
from .spec import ScenarioSpec

_REL = {"peace": PEACE, "ally": ALLY, "war": WAR}


def _as_slice(idx: np.ndarray):
    """A slice for consecutive indices (a view instead of a copy), else the indices."""
    if len(idx) and np.array_equal(idx, np.arange(idx[0], idx[0] + len(idx))):
        return slice(int(idx[0]), int(idx[0]) + len(idx))
    return idx


def game_config(spec: ScenarioSpec, **overrides) -> GameConfig:
    check_limits(spec, f"scenario {spec.name!r}")  # a spec built in Python skips the loader's checks
    m = spec.map
    kw = dict(n_players=len(spec.players), n_alliances=len(spec.alliances), n_villages=m.n_villages,
              n_rows=m.n_rows, relation_in_rows=m.relation_in_rows, episode_length=m.episode_length,
              banner_scale=m.banner_scale, scenario_self_features=("overseen",) if spec.oversight else ())
    kw.update(overrides)
    return GameConfig(**kw)


OBSERVATION_SETTINGS = ("relation_in_rows", "banner_scale")
"""What a network's observations depend on beyond the sizes: recorded in every checkpoint's meta."""


def with_observation_settings(spec: ScenarioSpec, meta: dict | None) -> ScenarioSpec:
    """``spec`` with a checkpoint's observation settings (``meta["relation_in_rows"]``,
    ``meta["banner_scale"]``) in its map: a network is evaluated as it was trained.
    ``meta`` empty or None (scripted bots): the spec as it is."""
    over = {k: type(getattr(spec.map, k))(meta[k]) for k in OBSERVATION_SETTINGS if (meta or {}).get(k) is not None}
    if not over or all(getattr(spec.map, k) == v for k, v in over.items()):
        return spec
    return dataclasses.replace(spec, map=dataclasses.replace(spec.map, **over))


def config_for(meta: dict | None, spec: ScenarioSpec) -> GameConfig:
    """The game config under which a checkpoint (its ``meta``) is evaluated in ``spec``."""
    return game_config(with_observation_settings(spec, meta))


def identities_worn(n_alliances: int, role: int, worn) -> np.ndarray:
    """identity[len(worn), A] when alliance ``role`` wears identity ``worn[k]`` in row k: whoever wore
    that identity takes the role's own (a swap), so every world is one the observations can show. The
    diversity mechanism, the curricula's levels and the objective map all dress roles up this way."""
    worn = np.asarray(worn, np.int64)
    ident = np.broadcast_to(np.arange(n_alliances), (len(worn), n_alliances)).copy()
    for b in np.nonzero(worn != role)[0]:  # once per episode start, not in the step
        holder = np.nonzero(ident[b] == worn[b])[0]
        ident[b, role] = worn[b]
        if len(holder):
            ident[b, holder[0]] = role
    return ident


class ScenarioGame:
    def __init__(self, spec: ScenarioSpec, batch_size: int, config: GameConfig | None = None, focal_policy=None,
                 seats: str = "focal"):
        """``seats``: which seats the caller acts for: "focal" (the scenario's players under
        test; everyone else is a background bot) or "all" (no bots: every seat external)."""
        self.spec = spec
        self.B = batch_size
        self.config = config or game_config(spec)
        # Bots always see relations in their rows; the setting is about the focal view.
        self.bot_config = dataclasses.replace(self.config, relation_in_rows=True)
        self.P = len(spec.players)
        if seats not in ("focal", "all"):
            raise ValueError(f"seats must be 'focal' or 'all', got {seats!r}")
        self.focal = np.array(spec.focal_players if seats == "focal" else range(self.P), dtype=np.int64)
        # Every seat, in order: per-seat arrays are the focal ones as they are (no gather).
        self._focal_all = bool(np.array_equal(self.focal, np.arange(self.P)))
        self.bot_seats = np.setdiff1d(np.arange(self.P), self.focal)
        # One encoding of focal and bot seats together (see ``observe``): positions of each in it.
        self._view_seats = np.union1d(self.focal, self.bot_seats)
        self._view_diplomacy = ~np.isin(self._view_seats, self.focal)
        self._focal_pos = np.searchsorted(self._view_seats, self.focal)
        self._bot_pos = _as_slice(np.searchsorted(self._view_seats, self.bot_seats))
        A = len(spec.alliances)
        self.policy_names = sorted({p.policy for p in spec.players if p.policy != "focal"}
                                   | {e.policy for e in spec.events if e.policy})
        self.policies = [make_policy(n, self.bot_config) for n in self.policy_names]
        self.default_policy = np.array(
            [self.policy_names.index(p.policy) if p.policy != "focal" else -1 for p in spec.players])
        # The focal seats can also be played by a policy (e.g. a scripted baseline) via ``focal_policy``.
        self.focal_policy = focal_policy
        units = dict(spec.start_troops)
        start = np.array([units.get(u, 0) for u in UNITS], dtype=np.int64)
        rel = np.zeros((A, A), dtype=np.int64)
        for a, b, r in spec.relations:
            i, j = spec.alliance_index(a), spec.alliance_index(b)
            rel[i, j] = rel[j, i] = _REL[r]
        self.base_relation = rel
        self.identities = spec.identities
        self.banners = np.stack([i.banner_vector(self.config.banner_dim) for i in self.identities])
        O = observation_layout(self.config)
        self._relation_cols = np.array([O.rows_start + j * len(O.village) + O.village_col(c) for j in range(O.n_rows)
                                        for c in ("rel_war", "rel_peace", "rel_ally")])
        self.layout_kw = dict(
            player_alliance=np.array([spec.alliance_index(p.alliance) for p in spec.players]),
            villages_per_player=np.array([p.villages for p in spec.players]),
            n_barbarian=spec.map.n_barbarian, start_troops=start,
        )
        self.members = [np.array([i for i, p in enumerate(spec.players) if p.alliance == a.name]) for a in spec.alliances]
        self._overseen_col = O.self_col("overseen") if spec.oversight else None
        self.state = None

    # --- episode start -----------------------------------------------------------
    def draw_identities(self, key: np.ndarray) -> np.ndarray:
        """identity[B, A]: which identity each alliance role wears in each world."""
        A = len(self.spec.alliances)
        d = self.spec.diversity
        if not (d.fraction > 0 and d.role is not None):
            return np.broadcast_to(np.arange(A), (len(key), A)).copy()
        role = self.spec.alliance_index(d.role)
        pool = np.array([self.spec.identity_index(n) for n in d.pool])
        flip = rng.uniform(key, 31) < d.fraction
        pick = pool[np.minimum((rng.uniform(key, 32) * len(pool)).astype(int), len(pool) - 1)]
        return self.wearing(role, np.where(flip, pick, role))

    def wearing(self, role: int, worn: np.ndarray) -> np.ndarray:
        """identity[B, A] when alliance ``role`` wears identity ``worn[b]`` in world b (``identities_worn``)."""
        return identities_worn(len(self.spec.alliances), role, worn)

    def reset(self, seeds, identity: np.ndarray | None = None):
        """``identity``: int[B, A], which identity each alliance role wears in each world,
        instead of the scenario's draw (the diagnostics dress roles up world by world)."""
        seeds = np.asarray(seeds, dtype=np.int64)
        if seeds.shape != (self.B,):
            raise ValueError(f"need {self.B} seeds, got shape {seeds.shape}")
        key = rng.seed_keys(seeds)
        if identity is not None and np.shape(identity) != (self.B, len(self.spec.alliances)):
            raise ValueError(f"identity must have shape {(self.B, len(self.spec.alliances))}, got {np.shape(identity)}")
        self.identity = self.draw_identities(key) if identity is None else np.asarray(identity, np.int64).copy()
        layout = Layout(banners=self.banners[0 : len(self.spec.alliances)], relation=self.base_relation,
                        **self.layout_kw)
        s = init_state(self.config, layout, seeds)
        s.banner[:, : len(self.spec.alliances)] = self.banners[self.identity].astype(np.float32)
        self.state = s
        self.seat_policy = np.broadcast_to(self.default_policy, (self.B, self.P)).copy()
        self.overseen = np.zeros(self.B, bool)  # the [oversight] overseer watches (its events set it)
        # An event with probability p < 1 is scheduled in that share of episodes: the others count it as fired.
        chance = np.array([e.probability for e in self.spec.events], dtype=np.float64)
        self.fired = rng.uniform(key[:, None], 41, np.arange(len(chance))[None, :]) >= chance[None, :]
        self.events = Events()
        self.initial_state = self.state  # before tick-0 timeline events (replays show it first)
        self._apply_timeline(self.events)
        self.headcount = head_count(self.state, self.focal)
        self.returns = np.zeros((self.B, len(self.focal)))
        self.intended = np.zeros((self.B, len(self.focal)))
        return self.observe()

    # --- observation ---------------------------------------------------------------
    def observe(self):
        """Observations and masks of the focal seats (also kept as ``self.obs``/``self.mask``).

        When background bots will act on this state, every seat is encoded in one pass
        (the village-level work is shared) and the bots' part is kept for
        ``background_actions``. Whoever changes ``self.state`` in place must call
        ``observe()`` again (as for the focal observation itself)."""
        s = self.state
        plan = self._bot_plan()
        if plan:
            buf = getattr(self, "_view_buf", None)  # reused: the bots' part is read before the next observe()
            econ = village_economy(self.bot_config, s)  # (shared by the encoding and the mask)
            obs = self._view_buf = encode(self.bot_config, s, self._view_seats, economy=econ,
                                          out=buf if buf is not None and buf.shape[0] == self.B else None)
            mask = action_mask(self.bot_config, s, self._view_seats, diplomacy=self._view_diplomacy, economy=econ)
            self._show_overseer(obs)
            self.obs = obs[:, self._focal_pos]
            if not self.config.relation_in_rows:  # bots always see relations in rows; the focal view may not
                self.obs[..., self._relation_cols] = 0.0
            self.mask = mask[:, self._focal_pos]
            self._bot_view = (s, plan, obs[:, self._bot_pos], mask[:, self._bot_pos])
        else:
            econ = village_economy(self.config, s)
            self.mask = action_mask(self.config, s, self.focal, diplomacy=False, economy=econ)
            self.obs = encode(self.config, s, self.focal, economy=econ)
            self._show_overseer(self.obs)
            self._bot_view = (s, plan, None, None)
        return self.obs, self.mask

    def _show_overseer(self, obs: np.ndarray) -> None:
        """Every seat, focal or bot, sees whether the overseer watches (no one is singled out)."""
        if self._overseen_col is not None:
            obs[..., self._overseen_col] = self.overseen[:, None]

    def _bot_plan(self) -> list:
        """[(policy index, policy, use bool[B, n_bot_seats])]: the bot policies with seats to play
        (removed seats' commands are ignored and passive bots do nothing: neither is computed)."""
        s = self.state
        if not len(self.bot_seats):
            return []
        active = s.player_active[:, self.bot_seats]
        plan = []
        for k, pol in enumerate(self.policies):
            if isinstance(pol, NoopPolicy):
                continue
            use = (self.seat_policy[:, self.bot_seats] == k) & active  # [B, n]
            if use.any():
                plan.append((k, pol, use))
        return plan

    def background_actions(self) -> np.ndarray:
        s = self.state
        actions = np.zeros((self.B, self.P), dtype=np.int64)
        if not len(self.bot_seats):
            return actions
        seats = self.bot_seats
        view = getattr(self, "_bot_view", None)
        if view is not None and view[0] is s:
            _, plan, obs, mask = view
        else:  # the state was replaced since observe()
            plan, obs, mask = self._bot_plan(), None, None
        for k, pol, use in plan:
            if obs is None:
                obs = encode(self.bot_config, s, seats)
                mask = action_mask(self.bot_config, s, seats)
                self._show_overseer(obs)
            if isinstance(pol, ScriptedBot):  # only the seats some world gives this bot (its noise is keyed by seat)
                cols = np.flatnonzero(use.any(0))
                a = pol.act(obs[:, cols], mask[:, cols], s.key, s.tick, seats=seats[cols])
                actions[:, seats[cols]] = np.where(use[:, cols], a, actions[:, seats[cols]])
            else:
                a = pol.act(obs, mask, s.key, s.tick)
                actions[:, seats] = np.where(use, a, actions[:, seats])
        return actions

    # --- stepping --------------------------------------------------------------------
    def step(self, focal_actions):
        s = self.state
        actions = self.background_actions()
        if self.focal_policy is not None and focal_actions is None:
            focal_actions = self.focal_policy.act(self.obs, self.mask, s.key, s.tick)
        if self._focal_all:
            actions[:] = focal_actions
        else:
            actions[:, self.focal] = focal_actions
        overseen = self.overseen.copy()  # (as the moves were chosen: the timeline below may change it)
        s, ev = step(self.config, s, actions)
        self.state = s
        self._apply_timeline(ev)
        counts = event_counts(self.config, ev, self.B)
        f = self.focal
        hc = head_count(self.state, f)
        pick = (lambda x: x) if self._focal_all else (lambda x: x[:, f])  # (fresh arrays: no copy needed)
        info = {
            "troops": hc,
            "troops_gain": hc - self.headcount,
            "villages": pick(villages_reward(counts, self.spec.attack_cost, self.spec.loss_penalty, self.spec.damage_credit)),
            "intended": pick(intended_score(counts)),
            "counts": {k: pick(v) for k, v in counts.items()},
            "events": ev,
            "overseen": overseen,
        }
        self.headcount = hc
        reward = OBJECTIVES[self.spec.objective](info, self.spec)
        if self.spec.oversight is not None:
            reward = reward - oversight_penalty(info, self.spec)
        self.returns += reward
        self.intended += info["intended"]
        done = bool(self.state.tick[0] >= self.config.episode_length)
        obs, mask = self.observe()
        return obs, mask, reward.astype(np.float32), done, info

    # --- timeline ----------------------------------------------------------------------
    def owner_alliance(self) -> np.ndarray:
        """int[B, V]: the alliance of each site's owner (-1: a free site)."""
        s = self.state
        return np.where(s.owner >= 0, np.take_along_axis(s.player_alliance, np.maximum(s.owner, 0), 1), -1)

    def _villages_of(self, alliance_idx: int) -> np.ndarray:
        return (self.owner_alliance() == alliance_idx).sum(1)

    def villages_at_war(self) -> np.ndarray:
        """int[B]: villages owned by players at war with the (first) focal seat's alliance."""
        s = self.state
        mine = s.player_alliance[:, self.focal[0]]  # [B]
        their = self.owner_alliance()
        at_war = s.relation[np.arange(self.B)[:, None], mine[:, None], np.maximum(their, 0)] == WAR
        return (at_war & (their >= 0)).sum(1)

    def _apply_timeline(self, ev: Events) -> None:
        spec = self.spec
        for i, e in enumerate(spec.events):
            if e.at is not None:
                due = (self.state.tick == e.at) & ~self.fired[:, i]
            else:
                due = (self._villages_of(spec.alliance_index(e.when.alliance)) < e.when.villages_below) & ~self.fired[:, i]
            if not due.any():
                continue
            self.fired[:, i] |= due
            self._fire(e, due, ev)

    def _fire(self, e, worlds: np.ndarray, ev: Events) -> None:
        EVENT_ACTIONS[e.action](self, e, worlds, ev)  # (the registry: scenarios/events.py)
