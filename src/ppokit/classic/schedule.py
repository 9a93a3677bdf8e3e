"""What one update of the classic trainer runs with, from the config and the state: the epochs
and minibatches, the advantage settings, this update's learning rate and coefficients (linear
schedules or adaptive values) and the reset seeds of group methods. Pure functions of their
arguments, apart from ``adapt_coefficients``, which moves the state's adaptive coefficients."""

from __future__ import annotations

from ppokit.classic.state import TrainState
from ppokit.config import RunConfig
from ppokit.core.advantages import AdvantageSettings
from ppokit.core.kl import adapt_clip_coef, adapt_kl_coef
from ppokit.core.losses import Coefs
from ppokit.core.update import UpdatePlan
from ppokit.methods import METHODS, Method


def update_plan(config: RunConfig) -> UpdatePlan:
    """Epochs and minibatch size of each update: one-pass methods take the whole batch once."""
    algo, one_pass = config.algo, METHODS[config.algo.method].one_pass
    epochs = 1 if one_pass else algo.update_epochs
    minibatch_size = config.batch_size if one_pass else algo.minibatch_size
    return UpdatePlan(epochs, minibatch_size, algo.max_grad_norm, algo.target_kl)


def advantage_settings(config: RunConfig) -> AdvantageSettings:
    algo = config.algo
    return AdvantageSettings(algo.gamma, algo.gae_lambda, algo.bootstrap_truncation, algo.reinforce.baseline,
                             algo.group.size, algo.group.scale)  # fmt: skip


def schedules(config: RunConfig, state: TrainState, progress: float) -> tuple[float, Coefs]:
    """This update's learning rate and coefficients: linear schedules, or adaptive values.
    The upper clip range moves with the lower one (annealed or adapted by the same factor)."""
    algo = config.algo
    lr = algo.learning_rate * (1.0 - progress if algo.anneal_lr else 1.0)
    ent_coef = linear(algo.ent_coef, algo.ent_coef_final, progress)
    clip_low = algo.clip_coef * (1.0 - progress if algo.anneal_clip else 1.0)
    if algo.adaptive_clip.enabled:
        clip_low = state.clip_coef
    clip_high = clip_low if algo.clip_high is None else algo.clip_high * (clip_low / algo.clip_coef)
    return lr, Coefs(ent_coef, clip_low, clip_high, state.kl_coef, algo.ref_kl_coef, algo.dual_clip)


def adapt_coefficients(config: RunConfig, method: Method, state: TrainState, metrics: dict[str, float]) -> None:
    """ppo-kl's beta and the adaptive clip range react to the KL this update caused."""
    algo, kl = config.algo, metrics["approx_kl_final"]
    if metrics["minibatch_steps"] == 0:  # no update, nothing to react to
        return
    if "kl_coef" in method.adapts and algo.ppo_kl.adaptive:
        state.kl_coef = adapt_kl_coef(state.kl_coef, kl, algo.ppo_kl.target)
    clip = algo.adaptive_clip
    if clip.enabled:
        state.clip_coef = adapt_clip_coef(state.clip_coef, kl, clip.target, clip.min, clip.max)


def group_seed(seed: int, update: int, group: int) -> int:
    """The reset seed shared by the envs of one group: new every update, reproducible."""
    return (seed * 1_000_003 + update * 10_007 + group) % 2**31


def linear(start: float, end: float | None, progress: float) -> float:
    return start if end is None else start + (end - start) * progress
