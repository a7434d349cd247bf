"""Scenario events: what a timeline entry (``[[events]]``) does to the worlds it fires in.

``EVENT_ACTIONS`` is the registry: action name -> handler(game, event, worlds, ev), where
``game`` is the ``ScenarioGame``, ``event`` the ``EventSpec``, ``worlds`` a bool[B] of the
worlds it fires in this tick and ``ev`` the step's ``Events`` (a handler that changes the
game records what it did there). Scenario files and ``ScenarioSpec`` are checked against
its names. To add an action: a handler here, its name in the table, and any new
``EventSpec`` field it reads (docs/architecture.md, "An event").
"""

from __future__ import annotations

import math

import numpy as np

from villages.game import Events, players_leave, set_relation
from villages.game.config import ALLY, PEACE, UNITS, WAR


def _seats(game, e) -> np.ndarray:
    """The seats an event on one alliance applies to: the first ``fraction`` of its players in
    roster order, rounded up."""
    seats = game.members[game.spec.alliance_index(e.alliance)]
    return seats[: math.ceil(e.fraction * len(seats) - 1e-9)]


def _relation(value: int):
    def handler(game, e, worlds: np.ndarray, ev: Events) -> None:
        a, b = (game.spec.alliance_index(x) for x in e.alliances)
        game.state = set_relation(game.state, worlds, a, b, value, ev)
    return handler


def leave(game, e, worlds: np.ndarray, ev: Events) -> None:
    """The players leave the game (their villages become barbarian)."""
    leaving = np.zeros((game.B, game.P), dtype=bool)
    leaving[np.ix_(worlds, _seats(game, e))] = True
    game.state = players_leave(game.config, game.state, leaving, ev)


def set_policy(game, e, worlds: np.ndarray, ev: Events) -> None:
    """The players' background bot becomes ``e.policy`` (focal seats are not changed)."""
    if e.policy not in game.policy_names:
        raise ValueError(f"set_policy: unknown policy {e.policy!r}")
    k = game.policy_names.index(e.policy)
    focal = set(game.focal.tolist())
    bg = [x for x in _seats(game, e) if x not in focal]
    game.seat_policy[np.ix_(worlds, bg)] = k


def reinforce(game, e, worlds: np.ndarray, ev: Events) -> None:
    """``e.troops`` are added to each village of the players."""
    units = dict(e.troops)
    add = np.array([units.get(u, 0) for u in UNITS], dtype=np.int64)
    s = game.state.copy()
    own = np.isin(s.owner, _seats(game, e)) & worlds[:, None]
    s.troops = s.troops + own[..., None] * add
    game.state = s
    bb = np.nonzero(worlds)[0]
    ev.add("reinforce", world=bb, tick=s.tick[bb], alliance=np.full(len(bb), game.spec.alliance_index(e.alliance)))


def _overseer(present: bool):
    def handler(game, e, worlds: np.ndarray, ev: Events) -> None:
        """The overseer arrives (or leaves): every player sees it in its ``overseen`` column from now on."""
        game.overseen[worlds] = present
        bb = np.nonzero(worlds)[0]
        ev.add("oversight", world=bb, tick=game.state.tick[bb], present=np.full(len(bb), present))
    return handler


OVERSIGHT_ACTIONS = ("overseer_arrives", "overseer_leaves")
"""Actions on the whole world (no alliance): they need the scenario's [oversight] table."""

EVENT_ACTIONS = {
    "declare_war": _relation(WAR),
    "make_peace": _relation(PEACE),
    "ally": _relation(ALLY),
    "leave": leave,
    "set_policy": set_policy,
    "reinforce": reinforce,
    "overseer_arrives": _overseer(True),
    "overseer_leaves": _overseer(False),
}
"""Event action name -> handler(game, event, worlds, ev)."""
