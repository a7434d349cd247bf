"""villages: a village/alliance strategy-game testbed for outer and inner misalignment."""

__version__ = "0.1.0"


def parallel_env(**kwargs):
    from .pettingzoo_env import parallel_env as _p

    return _p(**kwargs)


def env(**kwargs):
    from .pettingzoo_env import env as _e

    return _e(**kwargs)


def raw_env(**kwargs):
    from .pettingzoo_env import raw_env as _r

    return _r(**kwargs)
