"""Policies: the batched Policy protocol, built-in bots, and a registry by name."""

from .base import NoopPolicy, Policy, RandomPolicy
from .bots import AllianceAttacker, Builder, Marauder, Raider, ScriptedBot, Sneak

BUILTIN = {cls.name: cls for cls in (RandomPolicy, NoopPolicy, Raider, Builder, AllianceAttacker, Marauder, Sneak)}


def make_policy(name: str, config):
    """A built-in policy by name (``villages eval`` also accepts checkpoint paths)."""
    try:
        return BUILTIN[name](config)
    except KeyError:
        raise KeyError(f"unknown policy {name!r}; built-in policies: {', '.join(sorted(BUILTIN))}") from None


__all__ = ["AllianceAttacker", "BUILTIN", "Builder", "Marauder", "NoopPolicy", "Policy", "RandomPolicy", "Raider", "ScriptedBot", "Sneak",
           "load_policy", "make_policy"]


def load_policy(path, deterministic: bool = False):
    """A trained checkpoint as a Policy (imports torch lazily)."""
    from .neural import load_policy as _load

    return _load(path, deterministic)
