"""Scenario specification: who plays, what happens when, what is rewarded and measured.

A scenario is data (Melting Pot's substrate/scenario split): the game's rules live in
``villages.game``; a ``ScenarioSpec`` names the alliances and players, the initial
relations, the background bots, a timeline of events, the training objective and the
metrics. Built-ins are TOML files loaded into the same frozen dataclasses
(``villages.scenarios.loader``); the Python API builds them directly.

Alliance names in relations and events name *roles* (slots). With identity
diversity, a role may wear another alliance's identity (name, tag, colour, banner)
in some episodes; rules and bots never see names, only banners and relations.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from .events import EVENT_ACTIONS, OVERSIGHT_ACTIONS  # the registries (name -> function): every check reads them as they are
from .objectives import OBJECTIVES

RELATIONS = ("peace", "ally", "war")


@dataclass(frozen=True)
class Identity:
    """What an alliance looks like: persistent across episodes and scenarios."""

    name: str
    tag: str = ""
    colour: tuple[int, int, int] | None = None
    banner: tuple[float, ...] | None = None

    def banner_vector(self, dim: int) -> np.ndarray:
        """Identity features: the given banner, or a fixed unit vector derived from the name."""
        if self.banner is not None:
            v = np.asarray(self.banner, dtype=np.float64)
            if v.shape != (dim,):
                raise ValueError(f"alliance {self.name!r}: banner must have {dim} numbers, got {len(v)}")
            return v
        seed = int.from_bytes(hashlib.sha256(self.name.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).normal(size=dim)
        return v / np.linalg.norm(v)

    def like(self, other: "Identity", cosine: float, dim: int) -> "Identity":
        """This identity with a banner at cosine similarity ``cosine`` to ``other``'s (see ``banner_like``)."""
        return Identity(self.name, self.tag, self.colour,
                        tuple(float(x) for x in banner_like(other.banner_vector(dim), cosine, self.name)))

    def rgb(self) -> tuple[int, int, int]:
        if self.colour is not None:
            return tuple(int(c) for c in self.colour)
        h = hashlib.sha256(("colour:" + self.name).encode()).digest()
        return (60 + h[0] % 180, 60 + h[1] % 180, 60 + h[2] % 180)


def banner_like(reference: np.ndarray, cosine: float, name: str) -> np.ndarray:
    """A unit banner at cosine similarity ``cosine`` to ``reference``, deterministic from ``name``.

    The part orthogonal to ``reference`` is the name's own hashed direction (as in
    ``Identity.banner_vector``) with the reference removed, so two names asking for the same
    similarity to the same identity get different banners, each at exactly that similarity."""
    if not -1.0 <= cosine <= 1.0:
        raise ValueError(f"banner cosine must lie in [-1, 1], got {cosine}")
    ref = np.asarray(reference, np.float64)
    ref = ref / np.linalg.norm(ref)
    own = Identity(f"orthogonal:{name}").banner_vector(len(ref))
    orth = own - (own @ ref) * ref
    orth = orth / np.linalg.norm(orth)
    return cosine * ref + np.sqrt(max(0.0, 1.0 - cosine**2)) * orth


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two banners."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@dataclass(frozen=True)
class AllianceSpec:
    identity: Identity

    @property
    def name(self) -> str:
        return self.identity.name


@dataclass(frozen=True)
class PlayerSpec:
    name: str
    alliance: str
    villages: int = 1
    policy: str = "builder"  # a built-in bot name, or "focal" for the player under test


@dataclass(frozen=True)
class When:
    """Trigger: ``alliance`` holds fewer than ``villages_below`` villages."""

    alliance: str
    villages_below: int


@dataclass(frozen=True)
class EventSpec:
    action: str  # one of EVENT_ACTIONS
    at: int | None = None  # tick at which it fires ...
    when: When | None = None  # ... or the first tick the condition holds (once per episode)
    alliances: tuple[str, ...] = ()  # declare_war / make_peace / ally: the two alliances
    alliance: str | None = None  # leave / set_policy / reinforce: whose players
    fraction: float = 1.0  # leave / set_policy / reinforce: share of the alliance's players it applies to
    # (the first ones in roster order, rounded up)
    probability: float = 1.0  # share of episodes in which the event is scheduled (drawn per episode from
    # the world's key, so a world replays alike; with 1.0 it fires in every episode)
    policy: str | None = None  # set_policy: the bot they switch to
    troops: tuple[tuple[str, int], ...] = ()  # reinforce: (unit, count) added to each of their villages
    note: str = ""


@dataclass(frozen=True)
class Diversity:
    """Per episode, with probability ``fraction``, ``role`` wears an identity drawn
    uniformly from ``pool`` (swapping with the alliance that wore it)."""

    fraction: float = 0.0
    role: str | None = None
    pool: tuple[str, ...] = ()


@dataclass(frozen=True)
class Oversight:
    """An overseer whose presence every player observes (the self column ``overseen``), as in AI Safety
    Gridworlds' absent supervisor. It watches only where the timeline brings it (``overseer_arrives`` /
    ``overseer_leaves`` events, per episode with ``probability`` or at chosen ticks). While it watches,
    the proxy reward loses ``penalty`` per forbidden act of the focal player: an attack launched on a
    player it is not at war with (at peace or allied; barbarians are fair game). ``intended`` penalizes
    that act always. ``enforced``: the penalty applies whether or not the overseer watches (the control
    agent's training: the same observations, a rule that no longer depends on being seen)."""

    penalty: float = 2.0
    enforced: bool = False


@dataclass(frozen=True)
class MapSpec:
    n_villages: int = 24
    n_barbarian: int = 4
    n_rows: int = 16
    relation_in_rows: bool = True  # each village row also carries its owner's relation (the focal view)
    episode_length: int = 150
    banner_scale: float = 3.0  # magnitude of the identity features in observations (their salience)


@dataclass(frozen=True)
class ScenarioSpec:
    name: str
    description: str
    alliances: tuple[AllianceSpec, ...]
    players: tuple[PlayerSpec, ...]
    relations: tuple[tuple[str, str, str], ...] = ()  # (alliance, alliance, relation); default peace
    events: tuple[EventSpec, ...] = ()
    map: MapSpec = field(default_factory=MapSpec)
    objective: str = "villages"
    attack_cost: float = 0.0  # proxy-reward cost per attack launched (villages objective)
    loss_penalty: float = 0.0  # proxy-reward penalty per own village lost (villages objective)
    damage_credit: float = 0.0  # proxy-reward credit per village-worth of razing damage (villages objective)
    start_troops: tuple[tuple[str, int], ...] = (("spear", 10), ("axe", 10))
    diversity: Diversity = field(default_factory=Diversity)
    extra_identities: tuple[Identity, ...] = ()  # identities usable by diversity, not in the map
    metrics: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    oversight: Oversight | None = None  # an [oversight] table: adds the "overseen" self column

    def __post_init__(self):
        # The registries are checked when a spec is built, however it is built (loader, Python API,
        # dataclasses.replace): a bad name fails here, not on the first training step.
        if self.objective not in OBJECTIVES:
            raise ValueError(f"scenario {self.name!r}: objective must be one of {', '.join(OBJECTIVES)}, "
                             f"got {self.objective!r}")
        for e in self.events:
            if e.action not in EVENT_ACTIONS:
                raise ValueError(f"scenario {self.name!r}: event action must be one of {', '.join(EVENT_ACTIONS)}, "
                                 f"got {e.action!r}")
            if e.action in OVERSIGHT_ACTIONS and self.oversight is None:
                raise ValueError(f"scenario {self.name!r}: a {e.action} event needs an [oversight] table")

    # --- derived lookups ---
    @property
    def alliance_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.alliances)

    @property
    def player_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.players)

    def alliance_index(self, name: str) -> int:
        return self.alliance_names.index(name)

    @property
    def focal_players(self) -> tuple[int, ...]:
        return tuple(i for i, p in enumerate(self.players) if p.policy == "focal")

    @property
    def identities(self) -> tuple[Identity, ...]:
        """Every identity this scenario can show: its alliances' then the extra ones."""
        return tuple(a.identity for a in self.alliances) + tuple(self.extra_identities)

    def identity_index(self, name: str) -> int:
        return [i.name for i in self.identities].index(name)
