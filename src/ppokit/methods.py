"""The methods ppokit trains, in one table: what each one is made of.

A method is an advantage estimator and a policy loss over the same update loop, plus a few
facts the trainer and the diagnostics read (does it learn a critic, does it clip, does it take
one pass over each batch, how does it collect, which coefficient adapts). Adding a method is
one entry here plus its functions in ``ppokit.core``; nothing else branches on its name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ppokit.core import advantages as adv
from ppokit.core import losses
from ppokit.core.advantages import AdvantageSettings, Targets, Trajectories

AdvantageFn = Callable[[Trajectories, AdvantageSettings], Targets]
Collection = Literal["steps", "episodes"]


@dataclass(frozen=True)
class Method:
    help: str
    advantages: AdvantageFn
    policy_loss: losses.PolicyLossFn
    critic: bool  # learns a value function (value loss, explained variance)
    clips: bool  # the policy loss clips the ratio (clip fraction, the clip-fraction rules)
    one_pass: bool  # one epoch of one minibatch: the whole batch, one gradient step
    collects: Collection = "steps"  # "episodes": every env plays one episode from its group's start
    adapts: tuple[str, ...] = ()  # coefficients adapted after each update from its KL


METHODS: dict[str, Method] = {
    "ppo": Method(
        "PPO-Clip (Schulman et al. 2017): clipped ratio, GAE, a critic.",
        adv.gae_targets, losses.clipped_loss, critic=True, clips=True, one_pass=False,
    ),
    "ppo-kl": Method(
        "PPO with the adaptive KL penalty (Schulman et al. 2017, eq. 8), no clipping.",
        adv.gae_targets, losses.kl_penalty_loss, critic=True, clips=False, one_pass=False, adapts=("kl_coef",),
    ),
    "a2c": Method(
        "Advantage actor-critic (Mnih et al. 2016): one epoch, one minibatch, no clipping.",
        adv.gae_targets, losses.pg_loss, critic=True, clips=False, one_pass=True,
    ),
    "reinforce": Method(
        "REINFORCE (Williams 1992): Monte-Carlo returns with a mean baseline, no critic, one pass.",
        adv.return_targets, losses.pg_loss, critic=False, clips=False, one_pass=True,
    ),
    "grpo": Method(
        "GRPO (Shao et al. 2024): group-relative episode returns from shared starts, clipped, no critic.",
        adv.group_targets, losses.clipped_loss, critic=False, clips=True, one_pass=False, collects="episodes",
    ),
    "rloo": Method(
        "RLOO (Ahmadian et al. 2024): leave-one-out group baselines from shared starts, clipped, no critic.",
        adv.rloo_targets, losses.clipped_loss, critic=False, clips=True, one_pass=False, collects="episodes",
    ),
}  # fmt: skip
METHOD_NAMES = tuple(METHODS)
