"""Static rules of the game: unit and building tables, sizes, and rule numbers.

Everything here is data. No rule looks at an alliance's name: alliances are
indices, and what they look like (banner, tag) comes from the scenario.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

RESOURCES = ("wood", "iron")
BUILDINGS = ("headquarters", "barracks", "farm", "wall", "timber_camp", "iron_mine", "marketplace")
UNITS = ("levy", "spear", "axe", "cavalry", "ram")

# Relations between alliances (int8 codes in the state).
PEACE, ALLY, WAR = 0, 1, 2
RELATION_NAMES = ("peace", "ally", "war")

# Army kinds in transit.
ARMY_ATTACK, ARMY_SUPPORT, ARMY_SETTLE, ARMY_RETURN = 0, 1, 2, 3

NO_OWNER = -1  # a free site (never built, or razed)

HQ, BARRACKS, FARM, WALL, TIMBER, MINE, MARKET = range(len(BUILDINGS))
LEVY, SPEAR, AXE, CAVALRY, RAM = range(len(UNITS))


def _f(*rows):
    return np.array(rows, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class GameConfig:
    """Sizes and rule numbers. Frozen: one config per batch of worlds.

    Unit table columns follow ``UNITS``; building tables follow ``BUILDINGS``.
    The numbers are tuned so that head count is cheapest with levies while
    battles are won by a mix of attack, defence and siege units.
    """

    n_players: int = 10  # seats, barbarians excluded
    n_alliances: int = 6  # named alliances, barbarians excluded
    n_villages: int = 24  # village sites (owned, barbarian, or free)
    n_rows: int = 16  # visible village table size (nearest sites to one's home)
    max_own_villages: int = 3
    max_armies: int = 48  # armies in transit per world (fixed capacity)
    episode_length: int = 150
    banner_dim: int = 6  # alliance identity features (banner colour + tag code)
    banner_scale: float = 3.0  # magnitude of the identity features in observations (their salience)
    map_scale: float = 10.0  # distance units per map width
    relation_in_rows: bool = True  # each village row also carries its owner's relation
    luck: float = 0.1  # attack strength multiplier drawn in [1-luck, 1+luck]
    # Self columns a scenario adds to the observation (layouts.SCENARIO_SELF_FEATURES, e.g. "overseen").
    scenario_self_features: tuple[str, ...] = ()

    # --- units: levy, spear, axe, cavalry, ram
    unit_cost: np.ndarray = field(default_factory=lambda: _f([8, 7], [35, 30], [45, 45], [100, 100], [120, 120]))
    unit_pop: np.ndarray = field(default_factory=lambda: _f(1, 1, 1, 3, 4))
    unit_attack: np.ndarray = field(default_factory=lambda: _f(2, 10, 40, 110, 2))
    unit_def_inf: np.ndarray = field(default_factory=lambda: _f(2, 25, 10, 30, 20))
    unit_def_cav: np.ndarray = field(default_factory=lambda: _f(1, 45, 5, 40, 50))
    unit_is_cavalry: np.ndarray = field(default_factory=lambda: np.array([0, 0, 0, 1, 0], dtype=bool))
    unit_speed: np.ndarray = field(default_factory=lambda: _f(1.0, 1.2, 1.0, 0.5, 1.6))  # ticks per distance unit
    unit_loot: np.ndarray = field(default_factory=lambda: _f(5, 10, 10, 50, 0))
    unit_batch: np.ndarray = field(default_factory=lambda: np.array([8, 5, 5, 2, 1], dtype=np.int64))
    unit_barracks_level: np.ndarray = field(default_factory=lambda: np.array([1, 1, 1, 2, 2], dtype=np.int64))
    # Which units an attack sends (spears stay home to defend; support sends spears).
    unit_offensive: np.ndarray = field(default_factory=lambda: np.array([1, 0, 1, 1, 1], dtype=bool))

    # --- buildings
    building_base_cost: np.ndarray = field(
        default_factory=lambda: _f([90, 90], [140, 140], [60, 60], [70, 70], [50, 50], [50, 50], [100, 100])
    )
    building_cost_growth: float = 1.28
    building_max_level: int = 15
    start_buildings: np.ndarray = field(default_factory=lambda: np.array([1, 1, 1, 0, 1, 1, 0], dtype=np.int64))

    # --- economy
    production_base: float = 15.0  # per tick per resource at level 1
    production_growth: float = 1.25
    storage_base: float = 800.0
    storage_growth: float = 1.3  # per headquarters level
    pop_base: float = 40.0
    pop_growth: float = 1.25  # per farm level
    start_resources: float = 400.0
    trade_amount: float = 100.0
    trade_rate_base: float = 0.5  # resources received per resource given, +0.05 per market level

    # --- combat and villages
    wall_bonus: float = 0.06  # defence multiplier per wall level
    wall_base_defence: float = 15.0  # flat defence per wall level
    village_base_defence: float = 5.0
    loss_exponent: float = 1.5  # Lanchester-style loss ratio exponent
    integrity_max: float = 100.0
    damage_per_win: float = 40.0
    damage_per_ram: float = 3.0
    integrity_regen: float = 2.0
    found_cost: float = 1000.0  # of each resource, paid by the village that sends the settlers

    def __post_init__(self):
        # Cost table cached once: the mask and the rules read it every tick.
        levels = np.arange(self.building_max_level + 2)
        cost = np.floor(self.building_base_cost[:, None, :] * (self.building_cost_growth**levels)[None, :, None])
        object.__setattr__(self, "_building_cost", cost)
        if self.n_rows > self.n_villages:
            raise ValueError(f"n_rows={self.n_rows} exceeds n_villages={self.n_villages}")
        for name in ("n_players", "n_alliances", "n_villages", "n_rows", "max_armies", "episode_length"):
            if getattr(self, name) <= 0:
                raise ValueError(f"GameConfig.{name} must be positive, got {getattr(self, name)}")

    # Derived sizes -------------------------------------------------------
    @property
    def n_units(self) -> int:
        return len(UNITS)

    @property
    def n_buildings(self) -> int:
        return len(BUILDINGS)

    @property
    def n_resources(self) -> int:
        return len(RESOURCES)

    @property
    def barbarian_player(self) -> int:
        """Barbarian villages are owned by one extra seat that never acts."""
        return self.n_players

    @property
    def barbarian_alliance(self) -> int:
        return self.n_alliances

    def building_cost(self) -> np.ndarray:
        """Cost table [K, max_level + 2, R]: cost to reach level l+1 from level l."""
        return self._building_cost

    def production(self, level: np.ndarray) -> np.ndarray:
        return np.where(level > 0, self.production_base * self.production_growth ** (level - 1.0), 2.0)

    def storage(self, hq_level: np.ndarray) -> np.ndarray:
        return self.storage_base * self.storage_growth ** hq_level

    def pop_cap(self, farm_level: np.ndarray) -> np.ndarray:
        return np.floor(self.pop_base * self.pop_growth ** farm_level)
