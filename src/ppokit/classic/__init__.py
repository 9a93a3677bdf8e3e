"""The Gymnasium trainer: vector envs, actor-critic policies, rollouts, evaluation, the loop.

Importing it registers the verification envs (ppokit/Bandit-v0, ppokit/GridWorld-v0) with Gymnasium.
"""

from ppokit.classic.verification_envs import register_envs

register_envs()
