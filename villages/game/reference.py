"""The rules written plainly: the specification the fast engine is tested against.

``action_mask``, ``encode`` and ``step`` here have the signatures of the fast ones
(``actions.py``, ``observation.py``, ``rules.py``) and loop over worlds, seats, villages
and armies one at a time, reading the config's formulas directly. They are slow (use
them on a few worlds) and they are the place to read what a rule *is*; the fast modules
are the place to read how it is made fast. ``tests/test_reference.py`` holds the two to
each other on random trajectories of every built-in scenario: masks, events and integer
state exactly, floating-point values to rounding (the fast engine sums in other orders).

Sizes: B worlds, V village sites, P seats (+1 barbarian seat), A alliances (+1
barbarian alliance), M army slots, U units, K buildings, R resources, N rows.
"""

from __future__ import annotations

import numpy as np

from . import rng as rngmod
from .layouts import DIPLOMACY_VERBS, SELF_FEATURES, action_layout, observation_layout
from .config import (
    ALLY,
    ARMY_ATTACK,
    ARMY_RETURN,
    ARMY_SETTLE,
    ARMY_SUPPORT,
    BARRACKS,
    BUILDINGS,
    FARM,
    HQ,
    MARKET,
    MINE,
    NO_OWNER,
    PEACE,
    RAM,
    RESOURCES,
    SPEAR,
    TIMBER,
    UNITS,
    WALL,
    WAR,
    GameConfig,
)
from .events import Events
from .state import State

# --- quantities of one village and one seat ---------------------------------------------


def pop_used(config: GameConfig, s: State, b: int, v: int) -> float:
    """Population of village v: its troops at home and the armies that left from it."""
    used = float(np.dot(s.troops[b, v], config.unit_pop))
    for m in range(config.max_armies):
        if s.army_active[b, m] and s.army_src[b, m] == v:
            used += float(np.dot(s.army_troops[b, m], config.unit_pop))
    return used


def pop_cap(config: GameConfig, s: State, b: int, v: int) -> float:
    return float(config.pop_cap(np.array(s.buildings[b, v, FARM])))


def storage(config: GameConfig, s: State, b: int, v: int) -> float:
    return float(config.storage(np.array(s.buildings[b, v, HQ])))


def own_villages(s: State, b: int, p: int) -> list[int]:
    return [v for v in range(s.owner.shape[1]) if s.owner[b, v] == p]


def best_village(s: State, b: int, p: int, score) -> tuple[int, float]:
    """The seat's village with the highest score (the lowest site on ties), and the score;
    (0, -inf) for a seat without villages."""
    best, value = 0, -np.inf
    for v in own_villages(s, b, p):
        if score(v) > value:
            best, value = v, score(v)
    return best, value


def sources(config: GameConfig, s: State, b: int, p: int) -> dict:
    """Where the seat's attacks, supports, trades and settlers leave from."""
    offence_weight = config.unit_attack * config.unit_offensive + config.unit_offensive
    attack, offence = best_village(s, b, p, lambda v: float(np.dot(s.troops[b, v], offence_weight)))
    support, spears = best_village(s, b, p, lambda v: float(s.troops[b, v, SPEAR]))
    main, _ = best_village(s, b, p, lambda v: float(s.resources[b, v].sum()))
    return dict(attack=attack, has_offense=offence > 0, support=support, has_spears=spears > 0, main=main,
                n_own=len(own_villages(s, b, p)))


def alliance_of_site(s: State, b: int, v: int) -> int:
    """The owner's alliance, -1 for a free site."""
    return -1 if s.owner[b, v] < 0 else int(s.player_alliance[b, s.owner[b, v]])


def can_build(config: GameConfig, s: State, b: int, v: int, k: int) -> bool:
    level = s.buildings[b, v, k]
    if level >= config.building_max_level:
        return False
    cost = config.building_cost()[k, level]
    return bool(np.all(s.resources[b, v] >= cost))


def can_train(config: GameConfig, s: State, b: int, v: int, u: int) -> bool:
    if s.buildings[b, v, BARRACKS] < config.unit_barracks_level[u]:
        return False
    if not np.all(s.resources[b, v] >= config.unit_cost[u] * config.unit_batch[u]):
        return False
    return pop_used(config, s, b, v) + config.unit_pop[u] * config.unit_batch[u] <= pop_cap(config, s, b, v)


def can_found(config: GameConfig, s: State, b: int, p: int, src: dict) -> bool:
    return bool(np.all(s.resources[b, src["main"]] >= config.found_cost)) and 0 < src["n_own"] < config.max_own_villages


# --- the mask ---------------------------------------------------------------------------


def legal_diplomacy(s: State, b: int, mine: int, other: int, verb: str) -> bool:
    if other == mine:
        return False
    rel = s.relation[b, mine, other]
    if verb == "declare_war":
        return rel != WAR
    if verb == "offer_peace":
        return rel == WAR and s.offer[b, mine, other] != PEACE + 1
    if verb == "offer_alliance":
        return rel == PEACE and s.offer[b, mine, other] != ALLY + 1
    return s.offer[b, other, mine] > 0  # accept


def legal_row_verb(config: GameConfig, s: State, b: int, p: int, v: int, verb: str, src: dict) -> bool:
    """Verb on site v for an active seat p (the army verbs need a free army slot)."""
    army_slot_free = not s.army_active[b].all()
    mine = int(s.player_alliance[b, p])
    site_alliance = alliance_of_site(s, b, v)
    occupied = s.owner[b, v] >= 0
    if verb == "attack":
        return army_slot_free and occupied and site_alliance != mine and src["has_offense"]
    if verb == "support":
        friendly = (occupied and s.owner[b, v] != config.barbarian_player
                    and (site_alliance == mine or s.relation[b, mine, site_alliance] == ALLY))
        return army_slot_free and friendly and src["has_spears"] and v != src["support"]
    if verb == "found":
        return army_slot_free and not occupied and can_found(config, s, b, p, src)
    if s.owner[b, v] != p:
        return False
    if verb.startswith("build_"):
        return can_build(config, s, b, v, BUILDINGS.index(verb[len("build_"):]))
    return can_train(config, s, b, v, [f"train_{u}" for u in UNITS].index(verb))


def action_mask(config: GameConfig, state: State, players, diplomacy=True, economy=None) -> np.ndarray:
    """bool[B, n, n_actions]: the legal actions of the listed seats (an inactive seat: noop only).
    ``diplomacy`` (one bool, or one per listed seat) allows the diplomacy verbs; ``economy`` is unused."""
    players = np.atleast_1d(np.asarray(players, dtype=np.int64))
    L = action_layout(config)
    allow_diplomacy = np.broadcast_to(np.asarray(diplomacy, bool), (len(players),))
    mask = np.zeros((state.batch_size, len(players), L.n_actions), bool)
    for b in range(state.batch_size):
        for i, p in enumerate(players):
            mask[b, i, L.noop] = True
            if not state.player_active[b, p]:
                continue
            src = sources(config, state, b, p)
            main = src["main"]
            market = state.buildings[b, main, MARKET] > 0
            mask[b, i, L.trade] = market and state.resources[b, main, 0] >= config.trade_amount
            mask[b, i, L.trade + 1] = market and state.resources[b, main, 1] >= config.trade_amount
            if allow_diplomacy[i]:
                mine = int(state.player_alliance[b, p])
                for row, other in enumerate(state.alliance_order[b]):
                    for verb in DIPLOMACY_VERBS:
                        mask[b, i, L.diplomacy_action(row, verb)] = legal_diplomacy(state, b, mine, int(other), verb)
            for row, v in enumerate(state.row_village[b, p]):
                for verb in L.row_verbs:
                    mask[b, i, L.row_action(row, verb)] = legal_row_verb(config, state, b, p, int(v), verb, src)
    return mask


# --- the observation --------------------------------------------------------------------


def _log(x: float) -> float:
    return np.log1p(max(x, 0.0)) / 6.0


def encode(config: GameConfig, state: State, players, out=None, economy=None) -> np.ndarray:
    """float32[B, n, size]: what each listed seat sees (``ObservationLayout`` names the columns)."""
    players = np.atleast_1d(np.asarray(players, dtype=np.int64))
    O = observation_layout(config)
    s = state
    B, V = s.owner.shape
    K, U, R = config.n_buildings, config.n_units, config.n_resources
    obs = np.zeros((B, len(players), O.size), np.float32)
    defence_weight = config.unit_def_inf
    offence_weight = config.unit_attack * config.unit_offensive
    for b in range(B):
        attacks = [m for m in range(config.max_armies) if s.army_active[b, m] and s.army_kind[b, m] == ARMY_ATTACK]
        for i, p in enumerate(players):
            p = int(p)
            mine = int(s.player_alliance[b, p])
            own = own_villages(s, b, p)
            o = obs[b, i]
            own_table, rows, dip = O.split(o)

            # --- self
            on_me = [m for m in attacks if s.owner[b, s.army_dst[b, m]] == p]
            away = sum((s.army_troops[b, m] for m in range(config.max_armies)
                        if s.army_active[b, m] and s.army_owner[b, m] == p), np.zeros(U))
            home = sum((s.troops[b, v] for v in own), np.zeros(U))
            self_values = {
                "time": s.tick[b] / config.episode_length,
                "n_villages": len(own) / config.max_own_villages,
                "pop_used": sum(pop_used(config, s, b, v) for v in own)
                / max(sum(pop_cap(config, s, b, v) for v in own), 1),
                "incoming_attacks": min(len(on_me), 5) / 5.0,
                "incoming_eta": min([30] + [s.army_arrive[b, m] - s.tick[b] for m in on_me]) / 30.0,
            }
            total_storage = max(sum(storage(config, s, b, v) for v in own), 1)
            for r, name in enumerate(RESOURCES):
                self_values[f"res_{name}"] = sum(s.resources[b, v, r] for v in own) / total_storage
            for u, name in enumerate(UNITS):
                self_values[f"troops_{name}"] = _log(home[u] + away[u])
            for col, name in enumerate(SELF_FEATURES):
                own_table[col] = self_values[name]

            # --- village rows
            for j, v in enumerate(s.row_village[b, p]):
                v = int(v)
                row = rows[j]
                col = O.village_col
                owner = int(s.owner[b, v])
                site_alliance = alliance_of_site(s, b, v)
                is_own = owner == p
                row[col("is_own")] = is_own
                row[col("is_player")] = owner >= 0 and owner != config.barbarian_player and not is_own
                row[col("is_barbarian")] = owner == config.barbarian_player
                row[col("is_free")] = owner == NO_OWNER
                others = owner >= 0 and not is_own  # the alliance columns describe other seats' villages
                row[col("same_alliance")] = others and site_alliance == mine
                if config.relation_in_rows and others and site_alliance != mine:
                    rel = s.relation[b, mine, site_alliance]
                    row[col("rel_war")], row[col("rel_peace")], row[col("rel_ally")] = rel == WAR, rel == PEACE, rel == ALLY
                if owner >= 0:
                    for d in range(config.banner_dim):
                        row[col(f"banner_{d}")] = s.banner[b, site_alliance, d] * config.banner_scale
                row[col("distance")] = s.distance[b, s.home[b, p], v] / config.map_scale
                row[col("integrity")] = s.integrity[b, v] / config.integrity_max
                troops = s.troops[b, v].astype(np.float32)
                row[col("defence")] = _log(float(np.dot(troops, defence_weight)))
                row[col("offence")] = _log(float(np.dot(troops, offence_weight)))
                row[col("level")] = s.buildings[b, v].sum() / (K * config.building_max_level)
                row[col("wall")] = s.buildings[b, v, WALL] / config.building_max_level
                by_owner = sum(1 for m in on_me if owner >= 0 and s.army_owner[b, m] == owner)
                row[col("attacking_me")] = min(by_owner, 3) / 3.0
                mine_there = sum(1 for m in attacks if s.army_owner[b, m] == p and s.army_dst[b, m] == v)
                row[col("my_attack_en_route")] = min(mine_there, 3) / 3.0
                if is_own:
                    for r, name in enumerate(RESOURCES):
                        row[col(f"own_res_{name}")] = s.resources[b, v, r] / storage(config, s, b, v)
                    row[col("own_pop")] = pop_used(config, s, b, v) / pop_cap(config, s, b, v)
                    for u, name in enumerate(UNITS):
                        row[col(f"own_troops_{name}")] = _log(float(s.troops[b, v, u]))
                    for k, name in enumerate(BUILDINGS):
                        row[col(f"own_{name}")] = s.buildings[b, v, k] / config.building_max_level

            # --- diplomacy table, in the world's shuffled alliance order
            for a, other in enumerate(s.alliance_order[b]):
                other = int(other)
                row = dip[a]
                col = O.diplomacy_col
                for d in range(config.banner_dim):
                    row[col(f"banner_{d}")] = s.banner[b, other, d] * config.banner_scale
                row[col("is_mine")] = other == mine
                if other != mine:
                    rel = s.relation[b, mine, other]
                    row[col("rel_war")], row[col("rel_peace")], row[col("rel_ally")] = rel == WAR, rel == PEACE, rel == ALLY
                row[col("offer_to_me")] = s.offer[b, other, mine] > 0
                row[col("offer_by_me")] = s.offer[b, mine, other] > 0
                row[col("villages")] = sum(1 for v in range(V) if alliance_of_site(s, b, v) == other) / 10.0
    return obs


# --- the step ---------------------------------------------------------------------------


class _Log:
    """Events as rows (one dict per event), turned into ``Events`` tables at the end. Each
    kind's rows come world by world (the fast engine's agree with them once stably sorted
    by world: it handles one kind of diplomacy verb in every world before the next)."""

    def __init__(self):
        self.rows: dict[str, list[dict]] = {}

    def add(self, event_kind: str, /, **row) -> None:
        self.rows.setdefault(event_kind, []).append(row)

    def events(self) -> Events:
        ev = Events()
        for kind, rows in self.rows.items():
            ev.add(kind, **{col: np.array([r[col] for r in rows]) for col in rows[0]})
        return ev


def travel_ticks(config: GameConfig, distance: float, troops: np.ndarray) -> int:
    """Ticks to cover the distance at the pace of the slowest unit present (settlers: pace 1)."""
    present = troops > 0
    pace = float(config.unit_speed[present].max()) if present.any() else 1.0
    return max(1, int(np.ceil(distance * pace)))


def step(config: GameConfig, state: State, actions: np.ndarray) -> tuple[State, Events]:
    """Advance every world one tick; ``actions`` int[B, P], one command per seat. Pure: the input is not modified.

    Order within a tick: production; commands (legality judged on the tick-start state, as
    ``action_mask`` judges it; an illegal command is a no-op counted in ``invalid_actions``),
    grouped trade, diplomacy, build, train, army; arrivals (one per village per tick, the
    lowest army slot first); upkeep (integrity regrows, seats without villages are eliminated)."""
    actions = np.asarray(actions, dtype=np.int64)
    start, s, log = state, state.copy(), _Log()
    for b in range(state.batch_size):
        src = [sources(config, start, b, p) for p in range(config.n_players)]
        _produce(config, s, b)
        _commands(config, start, s, b, actions[b], src, log)
        _arrivals(config, s, b, log)
        _upkeep(config, s, b, log)
    s.key = rngmod.mix(state.key)
    s.tick = state.tick + 1
    return s, log.events()


def _produce(config: GameConfig, s: State, b: int) -> None:
    for v in range(s.owner.shape[1]):
        if 0 <= s.owner[b, v] < config.barbarian_player:  # seats' villages produce; barbarians' do not
            cap = storage(config, s, b, v)
            for r, building in enumerate((TIMBER, MINE)):
                made = config.production(np.array(float(s.buildings[b, v, building])))
                s.resources[b, v, r] = min(cap, s.resources[b, v, r] + made)


def _commands(config: GameConfig, start: State, s: State, b: int, actions: np.ndarray, src: list, log: _Log) -> None:
    L = action_layout(config)
    n_row_actions = L.n_rows * L.n_verbs
    invalid = np.zeros(config.n_players, bool)
    by_kind: dict[str, list[int]] = {"trade": [], "diplomacy": [], "build": [], "train": [], "army": []}
    for p, a in enumerate(actions):
        if not start.player_active[b, p] or a == L.noop:
            continue
        if a < 0 or a >= L.row_base + n_row_actions:
            invalid[p] = True
        elif a < L.diplomacy:
            by_kind["trade"].append(p)
        elif a < L.row_base:
            by_kind["diplomacy"].append(p)
        else:
            verb = L.row_verbs[(a - L.row_base) % L.n_verbs]
            by_kind["army" if verb in ("attack", "support", "found") else verb[:5]].append(p)

    for p in by_kind["trade"]:
        v, give = src[p]["main"], actions[p] - L.trade  # 0: wood -> iron, 1: iron -> wood
        market = s.buildings[b, v, MARKET]
        if not (market > 0 and start.resources[b, v, give] >= config.trade_amount):
            invalid[p] = True
            continue
        s.resources[b, v, give] -= config.trade_amount
        rate = config.trade_rate_base + 0.05 * market
        s.resources[b, v, 1 - give] = min(storage(config, s, b, v), s.resources[b, v, 1 - give] + config.trade_amount * rate)

    _diplomacy(config, start, s, b, actions, by_kind["diplomacy"], invalid, log)

    for p in by_kind["build"]:
        row, verb = divmod(actions[p] - L.row_base, L.n_verbs)
        v, k = int(s.row_village[b, p, row]), verb - 3
        if not (s.owner[b, v] == p and can_build(config, start, b, v, k)):
            invalid[p] = True
            continue
        level = s.buildings[b, v, k]
        s.resources[b, v] -= config.building_cost()[k, level]
        s.buildings[b, v, k] = level + 1
        log.add("build", world=b, tick=start.tick[b], player=p, village=v, building=k, level=level + 1)

    for p in by_kind["train"]:
        row, verb = divmod(actions[p] - L.row_base, L.n_verbs)
        v, u = int(s.row_village[b, p, row]), verb - 3 - config.n_buildings
        if not (s.owner[b, v] == p and can_train(config, start, b, v, u)):
            invalid[p] = True
            continue
        n = config.unit_batch[u]
        s.resources[b, v] -= config.unit_cost[u] * n
        s.troops[b, v, u] += n
        log.add("train", world=b, tick=start.tick[b], player=p, village=v, unit=u, count=n)

    for p in by_kind["army"]:
        row, kind = divmod(actions[p] - L.row_base, L.n_verbs)  # kind: ARMY_ATTACK, ARMY_SUPPORT or ARMY_SETTLE
        dst = int(s.row_village[b, p, row])
        verb = L.row_verbs[kind]
        free_slots = np.flatnonzero(~s.army_active[b])
        if not (legal_row_verb(config, start, b, p, dst, verb, src[p]) and len(free_slots)):
            invalid[p] = True
            continue
        _launch(config, start, s, b, p, kind, dst, int(free_slots[0]), src[p], log)

    s.invalid_actions[b] = start.invalid_actions[b] + invalid
    for p in np.flatnonzero(invalid):
        log.add("invalid", world=b, tick=start.tick[b], player=p, action=actions[p])


def _diplomacy(config, start, s, b, actions, seats, invalid, log) -> None:
    """Diplomacy verbs take effect verb by verb (declare war, offer peace, offer alliance,
    accept), each in seat order; a pair's relation changes at most once per verb."""
    L = action_layout(config)
    A = config.n_alliances
    commands = []
    for p in seats:
        verb, row = divmod(actions[p] - L.diplomacy, A)
        x, y = int(s.player_alliance[b, p]), int(s.alliance_order[b, row])
        if not legal_diplomacy(start, b, x, y, DIPLOMACY_VERBS[verb]):
            invalid[p] = True
            continue
        commands.append((DIPLOMACY_VERBS[verb], p, x, y))
    for name in DIPLOMACY_VERBS:
        changed = set()
        if name == "accept":  # offers as they stand after the other verbs (a war declared this tick cleared them)
            offered = {(p, x, y): int(s.offer[b, y, x]) for n, p, x, y in commands if n == name}
        for n, p, x, y in commands:
            if n != name:
                continue
            pair = (min(x, y), max(x, y))
            if name == "declare_war" and pair not in changed:
                changed.add(pair)
                _set_relation(s, b, x, y, WAR, p, log)
            elif name == "offer_peace":
                s.offer[b, x, y] = PEACE + 1
            elif name == "offer_alliance":
                s.offer[b, x, y] = ALLY + 1
            elif name == "accept" and offered[(p, x, y)] > 0 and pair not in changed:
                changed.add(pair)
                _set_relation(s, b, x, y, offered[(p, x, y)] - 1, p, log)


def _set_relation(s: State, b: int, x: int, y: int, value: int, by: int, log: _Log) -> None:
    s.relation[b, x, y] = s.relation[b, y, x] = value
    s.offer[b, x, y] = s.offer[b, y, x] = 0
    log.add("diplomacy", world=b, tick=s.tick[b], alliance_a=x, alliance_b=y, relation=np.int8(value), player=by)


def _launch(config, start, s, b, p, kind, dst, m, src, log) -> None:
    """An army leaves: attacks take the offensive units of the strongest village, supports half
    the spears (rounded up) of the village with most spears, settlers the found cost of the richest."""
    source = src[("attack", "support", "main")[kind]]
    home = s.troops[b, source]
    sent = np.zeros_like(home)
    if kind == ARMY_ATTACK:
        sent = home * config.unit_offensive
    elif kind == ARMY_SUPPORT:
        sent[SPEAR] = (home[SPEAR] + 1) // 2
    else:
        s.resources[b, source] -= config.found_cost
    s.troops[b, source] = home - sent
    arrive = start.tick[b] + travel_ticks(config, s.distance[b, source, dst], sent)
    s.army_active[b, m], s.army_kind[b, m], s.army_owner[b, m] = True, kind, p
    s.army_src[b, m], s.army_dst[b, m], s.army_arrive[b, m] = source, dst, arrive
    s.army_troops[b, m], s.army_loot[b, m] = sent, 0.0
    target, target_alliance = int(s.owner[b, dst]), alliance_of_site(s, b, dst)
    relation = start.relation[b, s.player_alliance[b, p], target_alliance] if target >= 0 else -1
    log.add("launch", world=b, tick=start.tick[b], player=p, army=m, kind=kind, src=source, dst=dst,
            target_player=target, target_alliance=target_alliance, relation=relation, troops=sent, arrive=arrive)


def _arrivals(config: GameConfig, s: State, b: int, log: _Log) -> None:
    """Armies due this tick resolve, at most one per village (the lowest slot; the others wait)."""
    V, M = s.owner.shape[1], config.max_armies
    due = [m for m in range(M) if s.army_active[b, m] and s.army_arrive[b, m] <= s.tick[b]]
    first = {}
    for m in due:
        first.setdefault(int(s.army_dst[b, m]), m)
    arrivals = [(v, first[v]) for v in range(V) if v in first]
    n_own = {p: len(own_villages(s, b, p)) for p in range(config.n_players + 1)}
    # Kinds resolve in this order: returns, supports, settlers (by seat, then slot), attacks.
    for v, m in arrivals:
        if s.army_kind[b, m] == ARMY_RETURN:
            _return_home(config, s, b, v, m, log)
    for v, m in arrivals:
        if s.army_kind[b, m] == ARMY_SUPPORT:
            _support(config, s, b, v, m, log)
    settlers = sorted(((int(s.army_owner[b, m]), m, v) for v, m in arrivals if s.army_kind[b, m] == ARMY_SETTLE))
    founded = set()
    for p, m, v in settlers:
        if s.owner[b, v] == NO_OWNER and s.player_active[b, p]:
            if n_own[p] < config.max_own_villages:
                founded.add(v)
            n_own[p] += 1  # settlers arriving together count against the cap one by one
    for v, m in arrivals:
        if s.army_kind[b, m] == ARMY_SETTLE and v in founded:
            _found(config, s, b, v, m, log)
        elif s.army_kind[b, m] == ARMY_SETTLE:
            _send_home(config, s, b, m)  # (carrying no troops, they disband)
    for v, m in arrivals:
        if s.army_kind[b, m] != ARMY_ATTACK:
            continue
        p, owner = int(s.army_owner[b, m]), int(s.owner[b, v])
        if owner >= 0 and alliance_of_site(s, b, v) != s.player_alliance[b, p]:
            _battle(config, s, b, v, m, log)
        else:  # the village is gone or friendly by now
            _send_home(config, s, b, m)


def _return_home(config, s, b, v, m, log) -> None:
    p = s.army_owner[b, m]
    if s.owner[b, v] == p:  # home is still theirs: unload troops and loot
        s.troops[b, v] += s.army_troops[b, m]
        s.resources[b, v] = np.minimum(storage(config, s, b, v), s.resources[b, v] + s.army_loot[b, m])
    else:
        log.add("army_lost", world=b, tick=s.tick[b], player=p, troops=s.army_troops[b, m].copy())
    s.army_active[b, m] = False


def _support(config, s, b, v, m, log) -> None:
    p = s.army_owner[b, m]
    mine, site_alliance = s.player_alliance[b, p], alliance_of_site(s, b, v)
    friendly = (s.owner[b, v] >= 0 and s.owner[b, v] != config.barbarian_player
                and (site_alliance == mine or s.relation[b, mine, site_alliance] == ALLY))
    if not friendly:
        _send_home(config, s, b, m)
        return
    s.troops[b, v] += s.army_troops[b, m]
    log.add("support", world=b, tick=s.tick[b], player=p, village=v, troops=s.army_troops[b, m].copy())
    s.army_active[b, m] = False


def _found(config, s, b, v, m, log) -> None:
    p = s.army_owner[b, m]
    s.owner[b, v] = p
    s.buildings[b, v] = config.start_buildings
    s.resources[b, v] = 0.0
    s.integrity[b, v] = config.integrity_max
    s.troops[b, v] += s.army_troops[b, m]
    log.add("found", world=b, tick=s.tick[b], player=p, village=v)
    s.army_active[b, m] = False


def _send_home(config, s, b, m) -> None:
    """The army turns round towards its source village; an empty army disbands."""
    here, home = s.army_dst[b, m], s.army_src[b, m]
    s.army_kind[b, m] = ARMY_RETURN
    s.army_dst[b, m] = home
    s.army_arrive[b, m] = s.tick[b] + travel_ticks(config, s.distance[b, here, home], s.army_troops[b, m])
    if s.army_troops[b, m].sum() == 0:
        s.army_active[b, m] = False


def _battle(config, s, b, v, m, log) -> None:
    """Attack strength (with luck) against the garrison's defence (weighted by the attack's
    infantry/cavalry mix, raised by the wall); the loser loses everything, the winner a share
    (loser's strength / winner's) ** loss_exponent. A winning attack plunders what its
    survivors carry and damages the village; a village at 0 integrity is razed."""
    p, defender = int(s.army_owner[b, m]), int(s.owner[b, v])
    attackers, defenders = s.army_troops[b, m].copy(), s.troops[b, v].copy()
    luck = 1.0 + config.luck * (2 * rngmod.uniform(s.key[b], 7, v) - 1)
    cavalry = config.unit_is_cavalry
    attack_inf = float((attackers * config.unit_attack * ~cavalry).sum())
    attack_cav = float((attackers * config.unit_attack * cavalry).sum())
    attack_all = attack_inf + attack_cav
    attack = attack_all * luck
    infantry_share = attack_inf / attack_all if attack_all > 0 else 1.0
    per_unit = config.unit_def_inf * infantry_share + config.unit_def_cav * (1 - infantry_share)
    wall = int(s.buildings[b, v, WALL])
    defence = (float((defenders * per_unit).sum()) + config.village_base_defence
               + config.wall_base_defence * wall) * (1 + config.wall_bonus * wall)
    won = attack > defence
    loser, winner = (defence, attack) if won else (attack, defence)
    ratio = min(max((loser / max(winner, 1e-9)) ** config.loss_exponent, 0.0), 1.0)

    def losses(troops, lose_all):
        return troops.copy() if lose_all else np.minimum(troops, np.floor(troops * ratio + 0.5).astype(np.int64))

    attacker_lost, defender_lost = losses(attackers, not won), losses(defenders, won)
    survivors = attackers - attacker_lost
    s.troops[b, v] = defenders - defender_lost

    capacity = float((survivors * config.unit_loot).sum()) * won
    available = s.resources[b, v].copy()
    total = available.sum()
    loot = available * (min(total, capacity) / max(total, 1e-9))
    s.resources[b, v] = available - loot
    rams = int(survivors[RAM])
    damage = min(config.damage_per_win + config.damage_per_ram * rams if won else 0.0, s.integrity[b, v])
    s.integrity[b, v] -= damage
    if won and rams > 0:
        s.buildings[b, v, WALL] = max(wall - 1, 0)
    destroyed = won and s.integrity[b, v] <= 0
    if destroyed:
        s.owner[b, v] = NO_OWNER
        s.buildings[b, v] = 0
        s.resources[b, v] = 0.0
        s.troops[b, v] = 0
        s.integrity[b, v] = 0.0
    s.army_troops[b, m], s.army_loot[b, m] = survivors, loot
    log.add("battle", world=b, tick=s.tick[b], army=m, attacker=p, defender=defender, village=v,
            attacker_alliance=s.player_alliance[b, p], defender_alliance=s.player_alliance[b, defender],
            relation=s.relation[b, s.player_alliance[b, p], s.player_alliance[b, defender]], attacker_won=won,
            destroyed=destroyed, damage=damage, attack=attack, defence=defence, sent=attackers,
            attacker_lost=attacker_lost, defender_troops=defenders, defender_lost=defender_lost, loot=loot)
    _send_home(config, s, b, m)


def _upkeep(config: GameConfig, s: State, b: int, log: _Log) -> None:
    owned = s.owner[b] >= 0
    s.integrity[b] = np.where(owned, np.minimum(config.integrity_max, s.integrity[b] + config.integrity_regen), 0.0)
    for p in range(config.n_players):
        if s.player_active[b, p] and not own_villages(s, b, p):
            s.player_active[b, p] = False
            log.add("eliminated", world=b, tick=s.tick[b], player=p)
