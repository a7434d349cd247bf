"""villages: a village/alliance strategy-game testbed for outer and inner misalignment.

Outside views (imported on first use, so ``import villages.game`` stays light):

* PettingZoo: ``villages.parallel_env(...)``, ``villages.env(...)``, ``villages.raw_env(...)``
  (also as ``villages.villages_v1``);
* Gymnasium: ``gymnasium.make("villages/Focal-v0", scenario=...)`` and
  ``gymnasium.make_vec("villages/Focal-v0", num_envs=...)`` once ``villages`` is imported.

docs/environment.md describes spaces, actions, rewards, arguments and versions.
"""

__version__ = "0.1.0"

_PETTINGZOO = ("parallel_env", "env", "raw_env", "InvalidActionError")


def __getattr__(name):  # PEP 562: the facades import pettingzoo/gymnasium only when asked for
    if name in _PETTINGZOO:
        from . import pettingzoo_env

        return getattr(pettingzoo_env, name)
    if name == "villages_v1":
        from . import pettingzoo_env

        return pettingzoo_env
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Versioned Gymnasium ids -> (entry point, vector entry point); bump the version on any
# change of behaviour. Registered with string entry points: nothing heavy is imported here.
GYMNASIUM_IDS = {"villages/Focal-v0": ("villages.gym_env:FocalEnv", "villages.gym_env:FocalVectorEnv")}


def _register_gymnasium_ids():
    from gymnasium.envs.registration import register, registry

    for env_id, (entry, vector_entry) in GYMNASIUM_IDS.items():
        if env_id not in registry:
            register(id=env_id, entry_point=entry, vector_entry_point=vector_entry)


_register_gymnasium_ids()
