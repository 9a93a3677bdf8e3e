"""The Gymnasium trainer: vector envs, actor-critic policies, rollouts, evaluation, the loop."""
