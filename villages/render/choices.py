"""What the focal agent chose, in words and on the map: decoding the recorded action
indices of a replay (``choice_action`` / ``choice_top_action``) into verbs and targets.

An action index is decoded with the game's ``ActionLayout`` (the focal seat's rows from
``replay.row_village``, diplomacy-table rows from ``replay.alliance_order``); the target's
relation to the focal alliance is read at the frame the choice was made in. No pygame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from villages.game.layouts import DIPLOMACY_VERBS, ActionLayout
from villages.game.config import ALLY, PEACE, WAR

from .replay import Replay

# Relation of a target to the focal alliance, as the overlay names (and colours) it.
TARGET_RELATIONS = ("war", "peace", "ally", "barbarian", "own", "free")
_REL_NAME = {WAR: "war", PEACE: "peace", ALLY: "ally"}


@dataclass(frozen=True)
class Decision:
    """One recorded action, decoded."""

    action: int
    verb: str  # "attack", "build headquarters", "declare war", "trade wood->iron", "noop", ...
    text: str  # the verb with its target, for the panel
    village: int  # target site on the map (-1: the action has none)
    alliance: int  # target alliance (-1: none)
    relation: str  # one of TARGET_RELATIONS, or "" when there is no target


def action_layout(replay: Replay) -> ActionLayout:
    return ActionLayout(len(replay.row_village), replay.n_alliances)


def target_relation(replay: Replay, frame: int, alliance: int, owner: int = 0) -> str:
    """How the alliance ``alliance`` stands to the focal alliance at ``frame``."""
    if owner < 0:
        return "free"
    if alliance >= replay.n_alliances:
        return "barbarian"
    fa = replay.focal_alliance
    if alliance == fa:
        return "own"
    return _REL_NAME.get(int(replay.relation[frame, fa, alliance]), "peace")


def decode(replay: Replay, frame: int, action: int) -> Decision | None:
    """The decision ``action`` (an index into the focal seat's actions) taken at ``frame``;
    None for -1 (nothing recorded)."""
    action = int(action)
    if action < 0:
        return None
    L = action_layout(replay)
    if action == L.noop:
        return Decision(action, "noop", "wait (noop)", -1, -1, "")
    if action < L.diplomacy:
        verb = "trade wood->iron" if action == L.trade else "trade iron->wood"
        return Decision(action, verb, verb, -1, -1, "")
    if action < L.row_base:
        code, row = divmod(action - L.diplomacy, L.n_alliances)
        a = int(replay.alliance_order[row])
        name = replay.alliance_name(a)
        verb = DIPLOMACY_VERBS[code].replace("_", " ")
        text = {"declare war": f"declare war on {name}", "offer peace": f"offer peace to {name}",
                "offer alliance": f"offer alliance to {name}", "accept": f"accept {name}'s offer"}[verb]
        return Decision(action, verb, text, -1, a, target_relation(replay, frame, a))
    row, k = divmod(action - L.row_base, L.n_verbs)
    verb = L.row_verbs[k].replace("_", " ")
    v = int(replay.row_village[row])
    owner = int(replay.owner[frame, v])
    a = int(replay.player_alliance[owner]) if owner >= 0 else -1
    rel = target_relation(replay, frame, a, owner)
    if owner < 0:
        who = "free site"
    elif owner == replay.focal_player:
        who = "own"
    elif rel == "own":
        who = f"{replay.alliance_tag(a)}, own alliance"
    elif rel == "barbarian":
        who = "barbarians"
    else:
        who = f"{replay.alliance_tag(a)}, {rel}"
    where = replay.village_name(v)
    return Decision(action, verb, f"{verb} {where} ({who})", v, a, rel)


def source_village(replay: Replay, frame: int) -> int:
    """Where the focal player's armies set off from, as the overlay draws it: its village
    with the most troops at ``frame`` (-1 when it holds none)."""
    mine = np.nonzero(replay.owner[frame] == replay.focal_player)[0]
    if not len(mine):
        return -1
    return int(mine[np.argmax(replay.troops[frame, mine].sum(-1))])


def alternatives(replay: Replay, frame: int) -> list[tuple[Decision, float]]:
    """The recorded top alternatives at ``frame`` with their probabilities (NaN: unknown), best first."""
    out = []
    for a, p in zip(replay.choice_top_action[frame], replay.choice_top_prob[frame]):
        d = decode(replay, frame, a)
        if d is not None:
            out.append((d, float(p)))
    return out
