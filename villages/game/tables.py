"""Everything the fast engine precomputes from one ``GameConfig``, in one object.

``tables(config)`` builds a ``Tables`` the first time a config is seen and returns the
same object afterwards (one weak memo, here only). Each table holds the same values as
the config formula it stands for (``tests/test_invariants.py`` checks the level tables);
``reference.py`` uses the formulas directly.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from .config import ALLY, ARMY_ATTACK, GameConfig
from .layouts import DIPLOMACY_VERBS, ObservationLayout, action_layout, observation_layout

# Command kinds (``Decode.kind``): what an action does, -1 out of range.
NOOP, TRADE, DIPLOMACY, ARMY, BUILD, TRAIN = range(6)


@dataclass(frozen=True, eq=False)
class MaskPlan:
    """Where each code goes in the packed mask.

    The mask is a bit string of n_actions bits (action i = bit i), kept as 32-bit words.
    Its fields are: noop + the two trades (3 bits at 0), the four diplomacy verbs (4A bits
    at 3), and one code of n_verbs bits per village row. A field starting at bit o is
    added as code * 2**(o % 32) to word o // 32; the part above 32 bits carries into the
    next word. Codes never overlap and every product stays below 2**53, so one float64
    matrix product places all fields exactly."""

    n_actions: int
    n_words: int
    place: np.ndarray  # float64 [fields, words]

    @staticmethod
    def build(config: GameConfig) -> "MaskPlan":
        L = action_layout(config)
        fields = [(0, 3), (L.diplomacy, len(DIPLOMACY_VERBS) * L.n_alliances)]
        fields += [(L.row_base + j * L.n_verbs, L.n_verbs) for j in range(L.n_rows)]
        n_words = -(-L.n_actions // 32) + 1
        place = np.zeros((len(fields), n_words))
        for f, (start, width) in enumerate(fields):
            if width + start % 32 > 53:
                raise ValueError(f"mask field of {width} bits at {start} does not fit the float64 placement")
            place[f, start // 32] = 2.0 ** (start % 32)
        return MaskPlan(L.n_actions, n_words, place)

    def assemble(self, codes: np.ndarray) -> np.ndarray:
        """codes: float [B, n, fields] (exact integers) -> bool [B, n, n_actions]."""
        lead = codes.shape[:-1]
        value = (codes.reshape(-1, codes.shape[-1]) @ self.place).astype(np.uint64)
        words = (value & np.uint64(0xFFFFFFFF)).astype("<u4")
        words[:, 1:] |= (value[:, :-1] >> np.uint64(32)).astype("<u4")
        packed = words.view(np.uint8).reshape(lead + (4 * self.n_words,))
        return np.unpackbits(packed, axis=-1, count=self.n_actions, bitorder="little").view(bool)


@dataclass(frozen=True, eq=False)
class VerdictTable:
    """The row-verb verdict of a site seen from an alliance (bit 0 attackable, bit 1 supportable,
    bit 2 free), tabulated from the same boolean rules for every int8 relation value."""

    site_kind: np.ndarray  # int64 [P + 2] by owner + 1: 0 free, 512 barbarian, 1024 a seat's
    table: np.ndarray  # uint8 [3 * 512]: verdict bits by site kind + 256 * same alliance + relation (as uint8)

    @staticmethod
    def build(config: GameConfig) -> "VerdictTable":
        P1 = config.n_players + 1
        kind = np.full(P1 + 1, 2, np.int64)  # owner + 1: seats
        kind[0] = 0  # free
        kind[config.barbarian_player + 1] = 1
        table = np.zeros((3, 2, 256), np.uint8)
        rel = np.arange(256).astype(np.uint8).view(np.int8)
        for k in range(3):
            occupied, player_site = k > 0, k == 2
            for same in (False, True):
                table[k, int(same)] = ((occupied and not same)
                                       | ((player_site & (same | (rel == ALLY))).astype(np.uint8) << 1)
                                       | ((not occupied) << 2))
        return VerdictTable(kind * 512, table.reshape(-1))


@dataclass(frozen=True, eq=False)
class Decode:
    """Action decoding, indexed by action + 1 (index 0 and the last: out of range)."""

    kind: np.ndarray  # int64 [n_actions + 2]: NOOP ... TRAIN, -1 out of range
    row: np.ndarray  # int64 [n_actions]: visible row of a row verb
    arg: np.ndarray  # int64 [n_actions]: army kind (attack/support/found), building or unit of a row verb

    @staticmethod
    def build(config: GameConfig) -> "Decode":
        L = action_layout(config)
        K = config.n_buildings
        a = np.arange(L.n_actions)
        kind = np.full(L.n_actions, NOOP, np.int64)
        kind[(a == L.trade) | (a == L.trade + 1)] = TRADE
        kind[(a >= L.diplomacy) & (a < L.row_base)] = DIPLOMACY
        verb = np.where(a >= L.row_base, (a - L.row_base) % L.n_verbs, -1)
        kind[(verb >= 0) & (verb < 3)] = ARMY
        kind[(verb >= 3) & (verb < 3 + K)] = BUILD
        kind[verb >= 3 + K] = TRAIN
        row = np.where(a >= L.row_base, (a - L.row_base) // L.n_verbs, 0)
        arg = np.where(verb >= 3 + K, verb - 3 - K, np.where(verb >= 3, verb - 3, np.maximum(verb, 0)))
        return Decode(np.concatenate([[-1], kind, [-1]]).astype(np.int64), row.astype(np.int64), arg.astype(np.int64))


@dataclass(frozen=True, eq=False)
class BattleWeights:
    attack_inf: np.ndarray  # unit_attack * ~unit_is_cavalry (the same products: the factor is 0 or 1)
    attack_cav: np.ndarray  # unit_attack * unit_is_cavalry
    attack_by_type: np.ndarray | None  # [U, 3] the two and their sum, when unit_attack holds integers (else None)
    loot: np.ndarray  # unit_loot as float64
    loot_exact: bool  # unit_loot holds integers

    @staticmethod
    def build(config: GameConfig) -> "BattleWeights | None":
        """None unless ``unit_is_cavalry`` is boolean (then (troops * attack) * flag == troops * (attack * flag))."""
        cav = config.unit_is_cavalry
        if not (isinstance(cav, np.ndarray) and cav.dtype == bool):
            return None
        inf, cav_ = config.unit_attack * ~cav, config.unit_attack * cav
        ua = np.asarray(config.unit_attack, np.float64)
        loot = np.asarray(config.unit_loot)
        return BattleWeights(inf, cav_, np.stack([inf, cav_, inf + cav_], 1).astype(np.float64) if _exact(ua) else None,
                             loot.astype(np.float64), loot.dtype.kind in "iuf" and _exact(loot))


def _exact(x) -> bool:
    """Finite small integers: products and sums of them are exact in any order."""
    return bool(np.all(np.isfinite(x)) and np.all(np.mod(x, 1) == 0) and np.all(np.abs(x) < 2**20))


@dataclass(frozen=True)
class Columns:
    """Column positions of an observation layout's tables (looked up once, not per call)."""

    v: dict  # village table: name -> column
    d: dict  # diplomacy table: name -> column

    @staticmethod
    def build(L: ObservationLayout) -> "Columns":
        c = Columns({n: i for i, n in enumerate(L.village)}, {n: i for i, n in enumerate(L.diplomacy)})
        # The encoder's fused writes rely on these runs of adjacent columns.
        v, d = c.v, c.d
        assert [v[k] for k in ("is_own", "is_player", "is_barbarian", "is_free")] == [0, 1, 2, 3]
        assert v["rel_peace"] == v["rel_war"] + 1 and v["rel_ally"] == v["rel_war"] + 2
        assert v["offence"] == v["defence"] + 1 and v["my_attack_en_route"] == v["attacking_me"] + 1
        assert [d[k] - d["is_mine"] for k in ("rel_war", "rel_peace", "rel_ally", "offer_to_me", "offer_by_me")] \
            == [1, 2, 3, 4, 5]
        return c


def _pace(config: GameConfig) -> np.ndarray | None:
    """pace[code]: the slowest pace among the unit types in ``code`` (bit u: unit u present),
    as ``travel_ticks`` computes it (the maximum of their speeds; 1.0 for none)."""
    speed = np.asarray(config.unit_speed)
    U = len(speed)
    if speed.ndim != 1 or U > 12:
        return None
    present = (np.arange(2 ** U)[:, None] >> np.arange(U)) & 1 > 0
    table = np.where(present, speed, 0.0).max(-1)
    return np.where(present.any(-1), table, 1.0)


def _send(config: GameConfig) -> np.ndarray | None:
    """int64 [3, U] by army kind: 1 for the units that leave (attack: the offensive ones), else 0;
    None unless ``unit_offensive`` is boolean."""
    off = config.unit_offensive
    if not (isinstance(off, np.ndarray) and off.dtype == bool):
        return None
    f = np.zeros((3, len(off)), np.int64)
    f[ARMY_ATTACK] = off
    return f


@dataclass(frozen=True, eq=False)
class Tables:
    """Per-config lookup tables for the hot path (the same values as the config's formulas)."""

    # economy, by building level
    production: np.ndarray  # [levels] per-tick production of a resource building
    storage: np.ndarray  # [levels] by headquarters level
    pop_cap: np.ndarray  # [levels] by farm level
    build_cost: np.ndarray  # [R, K * levels]: cost of the next level, flat index k * levels + level
    build_limit: np.ndarray  # build_cost, +inf from the maximum level on (an affordable level is a legal one)
    build_flat_base: np.ndarray  # [K] k * levels: flat index of building k at level 0
    levels: int
    # units
    batch_cost: np.ndarray  # [U, R] one training batch
    batch_cost_by_resource: tuple  # R arrays [U]: batch_cost[:, r], contiguous
    batch_pop: np.ndarray  # [U] population of one training batch
    offence_weight: np.ndarray  # [U] score of the attack source (offensive units, weighted by attack)
    integer_weights: bool  # unit_pop and offence_weight hold integers: weighted sums are exact in any order
    exact_pop: bool  # integer_weights and integer batch_pop: the pop check may be cap - used >= batch
    # the mask (actions.py)
    mask_plan: MaskPlan
    verdict: VerdictTable
    # the rules (rules.py)
    decode: Decode
    pace: np.ndarray | None  # see _pace
    send: np.ndarray | None  # see _send
    battle: BattleWeights | None
    # the observation (observation.py)
    columns: Columns
    defence_weight32: np.ndarray  # float32 [U] unit_def_inf
    offence_weight32: np.ndarray  # float32 [U] unit_attack * unit_offensive

    @staticmethod
    def build(config: GameConfig) -> "Tables":
        levels = config.building_max_level + 2
        # Evaluated on a strided view, like the state's building columns, so that any
        # SIMD/scalar difference in ``**`` cannot make the table differ from the formula.
        lv = np.zeros((levels, 2), np.int64)[:, 0]
        lv[:] = np.arange(levels)
        cost = config.building_cost()[:, np.minimum(np.arange(levels), config.building_max_level)]  # [K, L, R]
        cost = np.ascontiguousarray(cost.transpose(2, 0, 1).reshape(config.n_resources, -1))
        limit = cost.copy().reshape(config.n_resources, config.n_buildings, levels)
        limit[:, :, config.building_max_level :] = np.inf
        offence = config.unit_attack * config.unit_offensive + config.unit_offensive
        integer_weights = bool(np.all(np.mod(config.unit_pop, 1) == 0) and np.all(np.mod(offence, 1) == 0))
        batch_cost = config.unit_cost * config.unit_batch[:, None]
        batch_pop = config.unit_pop * config.unit_batch
        return Tables(
            production=config.production(lv),
            storage=config.storage(lv),
            pop_cap=config.pop_cap(lv),
            build_cost=cost,
            build_limit=limit.reshape(config.n_resources, -1),
            build_flat_base=np.arange(config.n_buildings) * levels,
            levels=levels,
            batch_cost=batch_cost,
            batch_cost_by_resource=tuple(np.ascontiguousarray(batch_cost[:, r]) for r in range(config.n_resources)),
            batch_pop=batch_pop,
            offence_weight=offence,
            integer_weights=integer_weights,
            exact_pop=integer_weights and bool(np.all(np.mod(batch_pop, 1) == 0)),
            mask_plan=MaskPlan.build(config),
            verdict=VerdictTable.build(config),
            decode=Decode.build(config),
            pace=_pace(config),
            send=_send(config),
            battle=BattleWeights.build(config),
            columns=Columns.build(observation_layout(config)),
            defence_weight32=config.unit_def_inf.astype(np.float32),
            offence_weight32=(config.unit_attack * config.unit_offensive).astype(np.float32),
        )


_TABLES: "weakref.WeakKeyDictionary[GameConfig, Tables]" = weakref.WeakKeyDictionary()


def tables(config: GameConfig) -> Tables:
    """The config's tables, built the first time (configs are frozen: they never go stale)."""
    t = _TABLES.get(config)
    if t is None:
        t = _TABLES[config] = Tables.build(config)
    return t
