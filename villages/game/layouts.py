"""What the engine's arrays mean: the action space and the observation columns.

``ActionLayout``: one command per seat per tick, a discrete action index:

    0                      noop
    1, 2                   trade wood->iron, iron->wood (at one's richest village)
    3 ...                  diplomacy on diplomacy-table row a: declare war, offer
                           peace, offer alliance, accept the pending offer
    row_base + j*VERBS+v   verb v on visible village row j: attack, support, found,
                           build <building>, train <unit>

Rows are the n_rows sites nearest a seat's home, so "attack row 3" means "attack the
3rd-nearest site": an entity-style policy scores each row with shared weights.

``ObservationLayout``: a flat float32 vector made of three named tables,

    [ SELF_FEATURES (+ scenario self) | n_rows x VILLAGE_FEATURES | n_alliances x DIPLOMACY_FEATURES ]

whose column names are defined once here; networks, diagnostics and renderers look
columns up by name (``ObservationLayout.village_col("rel_war")``), never by index.
Both layouts depend on a few sizes of the config only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property

import numpy as np

from .config import BUILDINGS, RESOURCES, UNITS, GameConfig

DIPLOMACY_VERBS = ("declare_war", "offer_peace", "offer_alliance", "accept")
# The mask codes its diplomacy field (one bit per verb and alliance, after the 3 global
# actions) as one exact float64 (``actions._code``: at most 53 bits): 3 + 4 * A <= 53.
MAX_ALLIANCES = (53 - 3) // len(DIPLOMACY_VERBS)
ROW_VERBS_FIXED = ("attack", "support", "found")


@dataclass(frozen=True)
class ActionLayout:
    n_rows: int
    n_alliances: int

    @property
    def row_verbs(self) -> tuple[str, ...]:
        return ROW_VERBS_FIXED + tuple(f"build_{b}" for b in BUILDINGS) + tuple(f"train_{u}" for u in UNITS)

    @property
    def n_verbs(self) -> int:
        return len(self.row_verbs)

    noop: int = 0
    trade: int = 1  # two actions: 1 wood->iron, 2 iron->wood

    @property
    def diplomacy(self) -> int:
        return 3

    @property
    def row_base(self) -> int:
        return 3 + len(DIPLOMACY_VERBS) * self.n_alliances

    @property
    def n_actions(self) -> int:
        return self.row_base + self.n_rows * self.n_verbs

    def row_action(self, row, verb: str):
        return self.row_base + np.asarray(row) * self.n_verbs + self.row_verbs.index(verb)

    def diplomacy_action(self, table_row, verb: str):
        return self.diplomacy + DIPLOMACY_VERBS.index(verb) * self.n_alliances + np.asarray(table_row)

    @cached_property
    def names(self) -> tuple[str, ...]:
        out = ["noop", "trade_wood_to_iron", "trade_iron_to_wood"]
        out += [f"{v}:{a}" for v in DIPLOMACY_VERBS for a in range(self.n_alliances)]
        out += [f"{v}:row{j}" for j in range(self.n_rows) for v in self.row_verbs]
        return tuple(out)


def action_layout(config: GameConfig) -> ActionLayout:
    return _action_layout(config.n_rows, config.n_alliances)


@cache
def _action_layout(n_rows: int, n_alliances: int) -> ActionLayout:
    return ActionLayout(n_rows, n_alliances)


SELF_FEATURES = (
    ("time",)
    + ("n_villages", "pop_used", "incoming_attacks", "incoming_eta")
    + tuple(f"res_{r}" for r in RESOURCES)
    + tuple(f"troops_{u}" for u in UNITS)
)

SCENARIO_SELF_FEATURES = {
    "overseen": "1 while an overseer watches the players' moves (a scenario's [oversight]; 0 otherwise)",
}
"""Self columns the scenario layer fills, appended after ``SELF_FEATURES`` only when a scenario
uses them (``GameConfig.scenario_self_features``): other scenarios, their golden digests and their
checkpoints keep their layout. The engine writes them as 0."""


def village_features(banner_dim: int) -> tuple[str, ...]:
    return (
        ("is_own", "is_player", "is_barbarian", "is_free", "same_alliance")
        + tuple(f"banner_{i}" for i in range(banner_dim))
        + ("rel_war", "rel_peace", "rel_ally", "distance", "integrity", "defence", "offence", "level", "wall")
        + ("attacking_me", "my_attack_en_route")
        + tuple(f"own_res_{r}" for r in RESOURCES)
        + ("own_pop",)
        + tuple(f"own_troops_{u}" for u in UNITS)
        + tuple(f"own_{b}" for b in BUILDINGS)
    )


def diplomacy_features(banner_dim: int) -> tuple[str, ...]:
    return (tuple(f"banner_{i}" for i in range(banner_dim))
            + ("is_mine", "rel_war", "rel_peace", "rel_ally", "offer_to_me", "offer_by_me", "villages"))


@dataclass(frozen=True)
class ObservationLayout:
    n_rows: int
    n_alliances: int
    banner_dim: int
    scenario_self: tuple[str, ...] = ()  # names from SCENARIO_SELF_FEATURES, after SELF_FEATURES

    @staticmethod
    def of(sizes) -> "ObservationLayout":
        """The layout a network's recorded sizes describe (a checkpoint's ``meta``, a model config)."""
        return _observation_layout(int(sizes["n_rows"]), int(sizes["n_alliances"]), int(sizes["banner_dim"]),
                                   tuple(sizes.get("scenario_self_features") or ()))

    @cached_property
    def self_features(self) -> tuple[str, ...]:
        return SELF_FEATURES + self.scenario_self

    def self_col(self, name: str) -> int:
        return self.self_features.index(name)

    @cached_property
    def village(self) -> tuple[str, ...]:
        return village_features(self.banner_dim)

    @cached_property
    def diplomacy(self) -> tuple[str, ...]:
        return diplomacy_features(self.banner_dim)

    @property
    def self_size(self) -> int:
        return len(self.self_features)

    @property
    def rows_start(self) -> int:
        return self.self_size

    @property
    def diplomacy_start(self) -> int:
        return self.rows_start + self.n_rows * len(self.village)

    @property
    def size(self) -> int:
        return self.diplomacy_start + self.n_alliances * len(self.diplomacy)

    def village_col(self, name: str) -> int:
        return self.village.index(name)

    def diplomacy_col(self, name: str) -> int:
        return self.diplomacy.index(name)

    def split(self, obs):
        """(self [.., S], rows [.., N, F], diplomacy [.., A, G]) views of a flat observation.

        Works on numpy arrays and torch tensors alike."""
        lead = obs.shape[:-1]
        own = obs[..., : self.rows_start]
        rows = obs[..., self.rows_start : self.diplomacy_start].reshape(*lead, self.n_rows, len(self.village))
        dip = obs[..., self.diplomacy_start :].reshape(*lead, self.n_alliances, len(self.diplomacy))
        return own, rows, dip


def observation_layout(config: GameConfig) -> ObservationLayout:
    return _observation_layout(config.n_rows, config.n_alliances, config.banner_dim, config.scenario_self_features)


@cache
def _observation_layout(n_rows: int, n_alliances: int, banner_dim: int, scenario_self=()) -> ObservationLayout:
    unknown = [x for x in scenario_self if x not in SCENARIO_SELF_FEATURES]
    if unknown:
        raise ValueError(f"scenario self features must be among {', '.join(SCENARIO_SELF_FEATURES)}, got {unknown}")
    return ObservationLayout(n_rows, n_alliances, banner_dim, tuple(scenario_self))
