"""Load scenario TOML files into ``ScenarioSpec``, with errors that name the file,
the key path and what was expected.

Sizes are bounded before anything is built from them (``check_limits``, also run on specs
built in Python by ``game_config``): the bounds and their reasons are in
``villages.validation``.
"""

from __future__ import annotations

import tomllib
from dataclasses import fields
from importlib import resources
from pathlib import Path

from villages.game.config import GameConfig
from villages.validation import (
    MAX_ALLIANCES,
    MAX_EPISODE_LENGTH,
    MAX_EVENTS,
    MAX_REWARD_WEIGHT,
    MAX_SCENARIO_BYTES,
    MAX_TOML_DEPTH,
    MAX_TROOPS,
    MAX_VILLAGES,
    AsIs,
    InputError,
    Limit,
    describe,
    finite,
)

from .spec import (
    EVENT_ACTIONS,
    OBJECTIVES,
    RELATIONS,
    AllianceSpec,
    Diversity,
    EventSpec,
    Identity,
    MapSpec,
    Oversight,
    PlayerSpec,
    ScenarioSpec,
    When,
)
from .events import OVERSIGHT_ACTIONS

BUILTIN_DIR = "builtin"


class ScenarioError(InputError):
    """A scenario file or spec is malformed: message names file, key path and expectation."""

    def __init__(self, source: str, key: str, expected: str, got=None, why: str = ""):
        self.source, self.key, self.expected = source, key, expected
        super().__init__(describe(source, key, expected, got, why))


class _Reader:
    def __init__(self, source: str):
        self.source = source

    def fail(self, key, expected, got=None, why=""):
        raise ScenarioError(self.source, key, expected, got, why)

    def over(self, limit: Limit, key, what, got):
        self.fail(key, f"{what} at most {limit}", got, limit.why)

    def table(self, data, key, allowed, required=()):
        if not isinstance(data, dict):
            self.fail(key, "a table", data)
        for k in data:
            if k not in allowed:
                import difflib

                close = difflib.get_close_matches(str(k), sorted(allowed), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.fail(f"{key}.{k}" if key else k, f"one of the known keys ({', '.join(sorted(allowed))})",
                          AsIs(f"an unknown key{hint}"))
        for k in required:
            if k not in data:
                self.fail(f"{key}.{k}" if key else k, "a value (this key is required)")
        return data

    def get(self, data, key, path, kind, default=None, choices=None, minimum=None, maximum=None):
        if key not in data:
            return default
        v = data[key]
        full = f"{path}.{key}" if path else key
        ok = {
            "str": isinstance(v, str),
            "int": isinstance(v, int) and not isinstance(v, bool),
            "float": isinstance(v, (int, float)) and not isinstance(v, bool),
            "bool": isinstance(v, bool),
            "list": isinstance(v, list),
        }[kind]
        if not ok:
            self.fail(full, {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false",
                             "list": "an array"}[kind], v)
        if kind == "float" and not finite(v):
            self.fail(full, "a finite number", AsIs(str(v)))
        if choices is not None and v not in choices:
            self.fail(full, f"one of {', '.join(map(str, choices))}", v)
        if minimum is not None and v < minimum:
            self.fail(full, f"a value >= {minimum}", v)
        if maximum is not None and v > maximum:
            self.fail(full, f"a value <= {maximum}", v)
        return float(v) if kind == "float" else v


def _names(cls):
    return {f.name for f in fields(cls)}


def parse(data: dict, source: str = "<scenario>") -> ScenarioSpec:
    r = _Reader(source)
    top = {"extends", "name", "description", "alliances", "players", "relations", "events", "map", "objective", "attack_cost",
           "loss_penalty", "damage_credit", "start_troops", "diversity", "extra_identities", "metrics", "tags", "oversight"}
    r.table(data, "", top, required=("name", "alliances", "players"))
    name = r.get(data, "name", "", "str")
    description = r.get(data, "description", "", "str", "")

    likes = {}  # identity name -> (path, reference name, cosine): resolved once every identity is read

    def identity(d, path):
        r.table(d, path, {"name", "tag", "colour", "banner", "banner_like"}, required=("name",))
        if "banner_like" in d:
            like = r.table(d["banner_like"], f"{path}.banner_like", {"of", "cosine"}, required=("of", "cosine"))
            if "banner" in d:
                r.fail(f"{path}.banner_like", "either banner or banner_like, not both")
            cos = r.get(like, "cosine", f"{path}.banner_like", "float", minimum=-1, maximum=1)
            likes[d.get("name")] = (f"{path}.banner_like", r.get(like, "of", f"{path}.banner_like", "str"), cos)
        colour = r.get(d, "colour", path, "list")
        if colour is not None and (len(colour) != 3 or not all(isinstance(c, int) and 0 <= c <= 255 for c in colour)):
            r.fail(f"{path}.colour", "three integers in [0, 255]", colour)
        banner = r.get(d, "banner", path, "list")
        dim = GameConfig.banner_dim
        if banner is not None and (len(banner) != dim or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and finite(x) for x in banner)):
            r.fail(f"{path}.banner", f"an array of {dim} numbers, all finite (the banner features)", banner)
        return Identity(r.get(d, "name", path, "str"), r.get(d, "tag", path, "str", ""),
                        tuple(colour) if colour else None, tuple(float(x) for x in banner) if banner else None)

    raw_alliances = r.get(data, "alliances", "", "list")
    if not raw_alliances:
        r.fail("alliances", "at least one [[alliances]] table", raw_alliances)
    if len(raw_alliances) > MAX_ALLIANCES.value:
        r.over(MAX_ALLIANCES, "alliances", "a number of [[alliances]] tables", len(raw_alliances))
    alliances = tuple(AllianceSpec(identity(a, f"alliances[{i}]")) for i, a in enumerate(raw_alliances))
    anames = [a.name for a in alliances]
    if len(set(anames)) != len(anames):
        r.fail("alliances", "unique alliance names", anames)

    def alliance_ref(v, path):
        if v not in anames:
            r.fail(path, f"the name of a declared alliance ({', '.join(anames)})", v)
        return v

    from villages.policies import BUILTIN

    policies = sorted(BUILTIN) + ["focal"]
    players = []
    raw_players = r.get(data, "players", "", "list") or []
    if len(raw_players) > MAX_VILLAGES.value:  # every player holds a village
        r.over(MAX_VILLAGES, "players", "a number of [[players]] tables (each holds a village)", len(raw_players))
    for i, p in enumerate(raw_players):
        path = f"players[{i}]"
        r.table(p, path, _names(PlayerSpec), required=("name", "alliance"))
        players.append(PlayerSpec(
            name=r.get(p, "name", path, "str"),
            alliance=alliance_ref(r.get(p, "alliance", path, "str"), f"{path}.alliance"),
            villages=r.get(p, "villages", path, "int", 1, minimum=1, maximum=GameConfig.max_own_villages),
            policy=r.get(p, "policy", path, "str", "builder", choices=policies),
        ))
    if not players:
        r.fail("players", "at least one [[players]] table", [])
    if not any(p.policy == "focal" for p in players):
        r.fail("players", 'one player with policy = "focal" (the player under test)')

    relations = []
    for i, rel in enumerate(r.get(data, "relations", "", "list") or []):
        path = f"relations[{i}]"
        r.table(rel, path, {"between", "relation"}, required=("between", "relation"))
        between = r.get(rel, "between", path, "list")
        if len(between) != 2 or between[0] == between[1]:
            r.fail(f"{path}.between", "two different alliance names", between)
        a, b = (alliance_ref(x, f"{path}.between") for x in between)
        relations.append((a, b, r.get(rel, "relation", path, "str", choices=RELATIONS)))

    m = data.get("map", {})
    r.table(m, "map", _names(MapSpec))
    mp = MapSpec(
        n_villages=r.get(m, "n_villages", "map", "int", 24, minimum=1),
        n_barbarian=r.get(m, "n_barbarian", "map", "int", 4, minimum=0),
        n_rows=r.get(m, "n_rows", "map", "int", 16, minimum=1),
        relation_in_rows=r.get(m, "relation_in_rows", "map", "bool", True),
        episode_length=r.get(m, "episode_length", "map", "int", 150, minimum=1),
        banner_scale=r.get(m, "banner_scale", "map", "float", 3.0, minimum=0),
    )
    if mp.n_villages > MAX_VILLAGES.value:
        r.over(MAX_VILLAGES, "map.n_villages", "a number of sites", mp.n_villages)
    if mp.episode_length > MAX_EPISODE_LENGTH.value:
        r.over(MAX_EPISODE_LENGTH, "map.episode_length", "a number of ticks", mp.episode_length)
    if mp.n_rows > mp.n_villages:
        r.fail("map.n_rows", f"at most map.n_villages ({mp.n_villages})", mp.n_rows)
    placed = sum(p.villages for p in players) + mp.n_barbarian
    if placed > mp.n_villages:
        r.fail("map.n_villages", f"room for the {placed} villages the players and barbarians start with", mp.n_villages)

    from villages.game.config import UNITS

    def troops(d, path):
        if not isinstance(d, dict):
            r.fail(path, "a table of unit = count", d)
        out = []
        for u, n in d.items():
            if u not in UNITS:
                r.fail(f"{path}.{u}", f"a unit name ({', '.join(UNITS)})", u)
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                r.fail(f"{path}.{u}", "a non-negative integer", n)
            if n > MAX_TROOPS.value:
                r.over(MAX_TROOPS, f"{path}.{u}", "a count", n)
            out.append((u, n))
        return tuple(out)

    extra = tuple(identity(d, f"extra_identities[{i}]") for i, d in enumerate(r.get(data, "extra_identities", "", "list") or []))
    all_ident = anames + [i.name for i in extra]
    if len(set(all_ident)) != len(all_ident):
        r.fail("extra_identities", "names that no alliance or other identity uses", all_ident)
    if likes:
        alliances, extra = _resolve_likes(r, likes, alliances, extra)

    events = []
    raw_events = r.get(data, "events", "", "list") or []
    if len(raw_events) > MAX_EVENTS.value:
        r.over(MAX_EVENTS, "events", "a number of [[events]] tables", len(raw_events))
    for i, e in enumerate(raw_events):
        path = f"events[{i}]"
        r.table(e, path, _names(EventSpec), required=("action",))
        action = r.get(e, "action", path, "str", choices=EVENT_ACTIONS)
        at = r.get(e, "at", path, "int", minimum=0)
        when = None
        if "when" in e:
            w = r.table(e["when"], f"{path}.when", {"alliance", "villages_below"}, required=("alliance", "villages_below"))
            when = When(alliance_ref(r.get(w, "alliance", f"{path}.when", "str"), f"{path}.when.alliance"),
                        r.get(w, "villages_below", f"{path}.when", "int", minimum=1))
        if (at is None) == (when is None):
            r.fail(path, "exactly one trigger: `at = <tick>` or a `when` table")
        if at is not None and at > mp.episode_length:
            r.fail(f"{path}.at", f"a tick within the episode (0..{mp.episode_length})", at)
        kw = {}
        if action in ("declare_war", "make_peace", "ally"):
            pair = r.get(e, "alliances", path, "list")
            if pair is None or len(pair) != 2 or pair[0] == pair[1]:
                r.fail(f"{path}.alliances", "two different alliance names", pair)
            kw["alliances"] = tuple(alliance_ref(x, f"{path}.alliances") for x in pair)
        elif action in OVERSIGHT_ACTIONS:  # the whole world: no alliance
            if "oversight" not in data:
                r.fail(path, f"an [oversight] table in the scenario (a {action} event needs one)")
            for k in ("alliance", "alliances"):
                if k in e:
                    r.fail(f"{path}.{k}", f"no {k} for {action} (the overseer watches the whole world)", e[k])
        else:
            if "alliance" not in e:
                r.fail(f"{path}.alliance", f"the alliance whose players {action} (required for {action})")
            kw["alliance"] = alliance_ref(r.get(e, "alliance", path, "str"), f"{path}.alliance")
        if action in ("leave", "set_policy", "reinforce"):
            kw["fraction"] = r.get(e, "fraction", path, "float", 1.0)
            if not 0 < kw["fraction"] <= 1:
                r.fail(f"{path}.fraction", "a number in (0, 1]", kw["fraction"])
        elif "fraction" in e:
            r.fail(f"{path}.fraction", f"no fraction for {action} (it applies to leave, set_policy, reinforce)", e["fraction"])
        kw["probability"] = r.get(e, "probability", path, "float", 1.0)
        if not 0 <= kw["probability"] <= 1:
            r.fail(f"{path}.probability", "a number in [0, 1] (the share of episodes it is scheduled in)", kw["probability"])
        if action == "set_policy":
            kw["policy"] = r.get(e, "policy", path, "str", choices=sorted(BUILTIN))
            if kw["policy"] is None:
                r.fail(f"{path}.policy", "a built-in policy name (required for set_policy)")
        if action == "reinforce":
            kw["troops"] = troops(e.get("troops"), f"{path}.troops")
        events.append(EventSpec(action=action, at=at, when=when, note=r.get(e, "note", path, "str", ""), **kw))

    div = data.get("diversity", {})
    r.table(div, "diversity", _names(Diversity))
    fraction = r.get(div, "fraction", "diversity", "float", 0.0)
    if not 0 <= fraction <= 1:
        r.fail("diversity.fraction", "a number in [0, 1]", fraction)
    role = r.get(div, "role", "diversity", "str")
    if role is not None:
        alliance_ref(role, "diversity.role")
    pool = tuple(r.get(div, "pool", "diversity", "list", []))
    for x in pool:
        if x not in all_ident:
            r.fail("diversity.pool", f"identity names among alliances and extra_identities ({', '.join(all_ident)})", x)
    if fraction > 0 and (role is None or not pool):
        r.fail("diversity", "a role and a non-empty pool when fraction > 0")

    oversight = None
    if "oversight" in data:
        o = r.table(data["oversight"], "oversight", _names(Oversight))
        oversight = Oversight(penalty=r.get(o, "penalty", "oversight", "float", Oversight.penalty, minimum=0),
                              enforced=r.get(o, "enforced", "oversight", "bool", False))

    def strings(key):
        items = r.get(data, key, "", "list", [])
        for i, x in enumerate(items):
            if not isinstance(x, str):
                r.fail(f"{key}[{i}]", "a string", x)
        return tuple(items)

    spec = ScenarioSpec(
        name=name, description=description, alliances=alliances, players=tuple(players), relations=tuple(relations),
        events=tuple(events), map=mp,
        objective=r.get(data, "objective", "", "str", "villages", choices=OBJECTIVES),
        attack_cost=r.get(data, "attack_cost", "", "float", 0.0, minimum=0),
        loss_penalty=r.get(data, "loss_penalty", "", "float", 0.0, minimum=0),
        damage_credit=r.get(data, "damage_credit", "", "float", 0.0, minimum=0),
        start_troops=troops(data.get("start_troops", {"spear": 10, "axe": 10}), "start_troops"),
        diversity=Diversity(fraction, role, pool), extra_identities=extra,
        metrics=strings("metrics"), tags=strings("tags"), oversight=oversight,
    )
    check_limits(spec, source)
    return spec


def check_limits(spec: ScenarioSpec, source: str = "<scenario>") -> ScenarioSpec:
    """Refuse a spec (from a file or built in Python) whose sizes the engine cannot hold,
    before anything is allocated for it."""
    r = _Reader(source)
    if len(spec.alliances) > MAX_ALLIANCES.value:
        r.over(MAX_ALLIANCES, "alliances", "a number of alliances", len(spec.alliances))
    if spec.map.n_villages > MAX_VILLAGES.value:
        r.over(MAX_VILLAGES, "map.n_villages", "a number of sites", spec.map.n_villages)
    if spec.map.episode_length > MAX_EPISODE_LENGTH.value:
        r.over(MAX_EPISODE_LENGTH, "map.episode_length", "a number of ticks", spec.map.episode_length)
    if len(spec.events) > MAX_EVENTS.value:
        r.over(MAX_EVENTS, "events", "a number of events", len(spec.events))
    weights = {k: getattr(spec, k) for k in ("attack_cost", "loss_penalty", "damage_credit")}
    if spec.oversight is not None:
        weights["oversight.penalty"] = spec.oversight.penalty
    for key, v in weights.items():
        if not finite(v):
            r.fail(key, "a finite number", AsIs(str(v)))
        if abs(v) > MAX_REWARD_WEIGHT.value:
            r.over(MAX_REWARD_WEIGHT, key, "a weight", v)
    # Troops of one unit anywhere in a world: each site's start troops plus every reinforcement.
    per_site = dict(spec.start_troops)
    for e in spec.events:
        for unit, n in e.troops:
            per_site[unit] = per_site.get(unit, 0) + n
    for unit, n in per_site.items():
        if n * spec.map.n_villages > MAX_TROOPS.value:
            r.over(MAX_TROOPS, f"start_troops.{unit}",
                   f"troops per world ({spec.map.n_villages} sites x start and reinforcements)", n * spec.map.n_villages)
    return spec


def _resolve_likes(r: _Reader, likes: dict, alliances, extra):
    """Identities asking for ``banner_like = { of = NAME, cosine = C }`` get their banner (a
    reference must be an identity with a banner of its own, not another ``banner_like``)."""
    known = {i.name: i for i in [a.identity for a in alliances] + list(extra)}
    dim = GameConfig.banner_dim

    def resolve(ident: Identity) -> Identity:
        if ident.name not in likes:
            return ident
        path, of, cos = likes[ident.name]
        if of not in known or of in likes:
            r.fail(f"{path}.of", "the name of an alliance or extra identity without a banner_like of its own "
                   f"({', '.join(n for n in known if n not in likes)})", of)
        return ident.like(known[of], cos, dim)

    return (tuple(AllianceSpec(resolve(a.identity)) for a in alliances), tuple(resolve(i) for i in extra))


MAX_EXTENDS = 8  # a longer chain of ``extends`` is almost surely a cycle or a mistake


def _read_toml(text_of, where: str) -> dict:
    try:
        text = text_of()
    except (OSError, UnicodeDecodeError) as e:  # (files read by _read_text raise ScenarioError themselves)
        raise ScenarioError(where, "<file>", "a readable TOML file (UTF-8)", AsIs(str(e))) from None
    return _toml(text, where)


def _builtin_file(rel: str):
    return resources.files("villages.scenarios").joinpath(BUILTIN_DIR, *rel.split("/"))


def _resolve_extends(data: dict, where: str, base_of, depth: int = 0) -> dict:
    """Merge ``data`` over the file it ``extends`` (substrate vs scenario, as in Melting Pot).

    A scenario file says only what differs from its base: each top-level key it sets
    replaces the base's (arrays such as ``events`` or ``players`` are replaced whole),
    except the ``map`` table, merged key by key. ``extends`` names a file relative to
    the extending one, or ``builtin:substrates/NAME.toml`` for a file shipped with villages.
    ``base_of(ref) -> (load_text, where)`` locates a reference."""
    ref = data.get("extends")
    if ref is None:
        return data
    if not isinstance(ref, str) or not ref:
        raise ScenarioError(where, "extends", "the path of a base scenario file (a string)", ref)
    if depth >= MAX_EXTENDS:
        raise ScenarioError(where, "extends", f"a chain of at most {MAX_EXTENDS} bases (is there a cycle?)", ref)
    text_of, base_where, next_base_of = base_of(ref)
    base = _resolve_extends(_read_toml(text_of, base_where), base_where, next_base_of, depth + 1)
    merged = {k: v for k, v in base.items() if k != "extends"}
    for k, v in data.items():
        if k == "extends":
            continue
        if k == "map" and isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = {**merged[k], **v}
        else:
            merged[k] = v
    return merged


def _base_locator(directory):
    """``base_of`` for files: paths relative to ``directory``; ``builtin:`` for shipped files."""

    def base_of(ref: str):
        if ref.startswith("builtin:"):
            return _builtin_locator(ref[len("builtin:"):])
        path = Path(directory) / ref
        return (lambda: _read_text(path)), str(path), _base_locator(path.parent)

    return base_of


def _builtin_locator(rel: str):
    f = _builtin_file(rel)
    parent = rel.rsplit("/", 1)[0] if "/" in rel else ""

    def base_of(ref: str):
        if ref.startswith("builtin:"):
            return _builtin_locator(ref[len("builtin:"):])
        return _builtin_locator(f"{parent}/{ref}" if parent else ref)

    return f.read_text, f"builtin:{rel}", base_of


def load_file(path) -> ScenarioSpec:
    path = Path(path)
    source = str(path)
    data = _read_toml(lambda: _read_text(path), source)
    return parse(_resolve_extends(data, source, _base_locator(path.parent)), source)


def _read_text(path: Path) -> str:
    """A scenario file's text, read only up to the size bound, as UTF-8."""
    source = str(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_SCENARIO_BYTES.value + 1)  # (a device or a pipe has no size to check first)
        if len(raw) > MAX_SCENARIO_BYTES.value:
            size = max(path.stat().st_size, len(raw))
            raise ScenarioError(source, "<file>", f"a file of at most {MAX_SCENARIO_BYTES} bytes",
                                AsIs(f"{size:,} bytes" if path.is_file() else "more"), MAX_SCENARIO_BYTES.why)
    except OSError as e:
        raise ScenarioError(source, "<file>", "a readable TOML file", AsIs(e.strerror or str(e))) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ScenarioError(source, "<file>", "UTF-8 text (TOML files are UTF-8)",
                            AsIs(f"byte {raw[e.start]:#04x} at offset {e.start}")) from None
    return text


def _toml(text: str, source: str) -> dict:
    """Parse TOML; nesting deeper than ``MAX_TOML_DEPTH`` is refused before the parser recurses into it."""
    depth = _bracket_depth(text)
    if depth > MAX_TOML_DEPTH.value:
        raise ScenarioError(source, "<syntax>", f"arrays and inline tables nested at most {MAX_TOML_DEPTH} deep", depth,
                            MAX_TOML_DEPTH.why)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(source, "<syntax>", "valid TOML", AsIs(str(e))) from None
    except RecursionError:
        raise ScenarioError(source, "<syntax>", f"arrays and inline tables nested at most {MAX_TOML_DEPTH} deep",
                            AsIs("deeper"), MAX_TOML_DEPTH.why) from None


def _bracket_depth(text: str) -> int:
    """Deepest nesting of [ and { outside strings and comments (an upper bound for TOML values:
    a table header's [[ ]] counts as 2)."""
    depth = deepest = 0
    quote = None
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth = max(0, depth - 1)
        i += 1
    return deepest


def builtin_names() -> list[str]:
    files = resources.files("villages.scenarios").joinpath(BUILTIN_DIR)
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".toml"))


def load(name_or_path) -> ScenarioSpec:
    """A built-in scenario by name, or a TOML file by path."""
    if isinstance(name_or_path, ScenarioSpec):
        return name_or_path
    s = str(name_or_path)
    if s.endswith(".toml") or "/" in s:
        return load_file(s)
    f = _builtin_file(f"{s}.toml")
    if not f.is_file():
        raise ScenarioError(s, "<name>", f"a built-in scenario ({', '.join(builtin_names())}) or a .toml path", s)
    text_of, where, base_of = _builtin_locator(f"{s}.toml")
    return parse(_resolve_extends(_read_toml(text_of, where), where, base_of), where)
