"""Adapters for outside trainers, each importing its library only when used:

* ``sb3``: SuperSuit + Stable-Baselines3 / sb3-contrib (``masked_vec_env`` for MaskablePPO);
* ``rllib``: RLlib's own ``ParallelPettingZooEnv`` with its action-masking RLModule.

The recipes in examples/ use them; docs/environment.md has a quick start per trainer.
"""
