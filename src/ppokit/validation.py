"""Validation of a ``RunConfig``: every field's type and range, and the rules between fields.

Each check raises a ``ConfigError`` naming the field and the allowed values, so that bad
input stops with one line before any work starts.
"""

from __future__ import annotations

import difflib
import importlib.util
import math

from ppokit.config import (
    MAX_SAFE_CLIP,
    MAX_SAFE_EPOCHS,
    AlgoConfig,
    DiagnosticsConfig,
    EnvConfig,
    PolicyConfig,
    RunConfig,
)
from ppokit.config_types import ACTIVATIONS, VECTORIZATIONS, check_types
from ppokit.core.advantages import GROUP_SCALES
from ppokit.errors import ConfigError
from ppokit.methods import METHOD_NAMES, METHODS


def validate(config: RunConfig) -> None:
    """Raise ConfigError for the first invalid field."""
    check_types(config)
    if not 0 <= config.seed < 2**32:
        raise ConfigError("seed", f"got {config.seed}, expected an integer in [0, 2**32 - 1] (numpy's seed range)")
    _validate_env(config.env)
    _validate_algo(config.algo, config.allow_unsafe)
    _validate_policy(config.policy)
    _validate_diagnostics(config.diagnostics)
    _validate_safeguards(config)
    if not isinstance(config.video_every, int) or config.video_every < 0:
        raise ConfigError("video_every", f"{config.video_every!r}; allowed: 0 (off) or an integer >= 1")
    if config.video_every and importlib.util.find_spec("imageio_ffmpeg") is None:
        raise ConfigError("video_every", "videos need imageio and imageio-ffmpeg, which are not installed; allowed: 0, "
                                         "or pip install 'ppokit[video]'")  # fmt: skip
    if config.wandb and importlib.util.find_spec("wandb") is None:
        raise ConfigError("wandb", "true needs the wandb package, which is not installed; allowed: false, or pip "
                                   "install 'ppokit[wandb]'")  # fmt: skip
    _validate_async(config)
    episodes = METHODS[config.algo.method].collects == "episodes"
    for name in ("sign_reward", "episodic_life"):
        if episodes and getattr(config.env, name):
            raise ConfigError(name, f"true for {config.algo.method}, whose episodes are whole games scored by their "
                                    "raw return; allowed: false")  # fmt: skip
    if episodes and config.env.vectorization == "native":
        raise ConfigError("vectorization", f"{config.algo.method} seeds each env's reset; allowed: auto, sync, async")
    if episodes and config.env.num_envs % config.algo.group.size:
        raise ConfigError(
            "num_envs",
            f"{config.env.num_envs} is not a multiple of the group size {config.algo.group.size}; "
            "allowed: n_groups * algo.group.size envs",
        )
    if config.eval_every < 0:
        raise ConfigError("eval_every", f"{config.eval_every}; allowed: 0 (off) or a step count >= 1")
    _positive_int("total_steps", config.total_steps)
    _positive_int("eval_episodes", config.eval_episodes)
    _positive_int("checkpoint_every", config.checkpoint_every)
    if not isinstance(config.torch_threads, int) or isinstance(config.torch_threads, bool) or config.torch_threads < 0:
        raise ConfigError("torch_threads", f"{config.torch_threads!r}; allowed: 0 (torch's default) or an integer >= 1")
    if config.batch_size % config.algo.minibatch_size != 0:
        raise ConfigError(
            "minibatch_size",
            f"{config.algo.minibatch_size} does not divide the batch "
            f"num_envs * num_steps = {config.batch_size}; allowed: a divisor of {config.batch_size}",
        )
    if config.total_steps < config.batch_size:
        raise ConfigError(
            "total_steps",
            f"{config.total_steps} is less than one rollout ({config.batch_size} = "
            "num_envs * num_steps); allowed: >= the batch size",
        )
    _validate_device(config.device)


def _validate_device(device: str) -> None:
    """The device's name, and that this torch build and machine have it."""
    import re

    import torch

    if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", device):
        raise ConfigError("device", f"got {device!r}, expected cpu, cuda, cuda:N or mps")
    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            have = f"{count} CUDA device(s)" if count else "no CUDA device (or a CPU-only torch build)"
            raise ConfigError("device", f"got {device!r}, but this machine has {have}; expected cpu"
                                        + (f" or cuda:0..cuda:{count - 1}" if count else ""))  # fmt: skip
    if device == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device", "got 'mps', but MPS is not available here (macOS with Apple silicon); expected cpu")


def _positive_int(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(name, f"{value!r}; allowed: an integer >= 1")


def _in_range(name: str, value: float, lo: float, hi: float, lo_open: bool, hi_open: bool) -> None:
    ok = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok or not math.isfinite(value):
        interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ConfigError(name, f"{value!r} is out of range; allowed: {interval}")


def _validate_env(env: EnvConfig) -> None:
    check_env_id(env.id)
    _positive_int("num_envs", env.num_envs)
    if env.vectorization not in VECTORIZATIONS:
        raise ConfigError("vectorization", f"{env.vectorization!r}; allowed: {', '.join(VECTORIZATIONS)}")
    _in_range("clip_obs", env.clip_obs, 0.0, math.inf, True, True)
    _in_range("clip_reward", env.clip_reward, 0.0, math.inf, True, True)


def _validate_algo(algo: AlgoConfig, allow_unsafe: bool) -> None:
    if algo.method not in METHODS:
        raise ConfigError("algo", f"unknown algorithm {algo.method!r}; allowed: {', '.join(METHOD_NAMES)}")
    if algo.recompute_advantages and not METHODS[algo.method].critic:
        raise ConfigError("recompute_advantages", f"{algo.method} learns no critic to recompute with; allowed: false")
    _validate_sections(algo, allow_unsafe)
    _in_range("ref_kl_coef", algo.ref_kl_coef, 0.0, math.inf, False, True)
    _positive_int("num_steps", algo.num_steps)
    _positive_int("update_epochs", algo.update_epochs)
    _positive_int("minibatch_size", algo.minibatch_size)
    _in_range("learning_rate", algo.learning_rate, 0.0, 1.0, True, False)
    _in_range("gamma", algo.gamma, 0.0, 1.0, True, False)
    _in_range("gae_lambda", algo.gae_lambda, 0.0, 1.0, False, False)
    _in_range("clip_coef", algo.clip_coef, 0.0, 1.0, True, True)
    if algo.clip_high is not None:
        _in_range("clip_high", algo.clip_high, 0.0, 1.0, True, True)
        if not allow_unsafe and algo.clip_high > MAX_SAFE_CLIP:
            raise ConfigError("clip_high", f"{algo.clip_high}; allowed: <= {MAX_SAFE_CLIP}, or pass --allow-unsafe")
    if algo.dual_clip is not None:
        _in_range("dual_clip", algo.dual_clip, 1.0, math.inf, True, True)
    _in_range("vf_coef", algo.vf_coef, 0.0, math.inf, False, True)
    _in_range("ent_coef", algo.ent_coef, 0.0, math.inf, False, True)
    if algo.ent_coef_final is not None:
        _in_range("ent_coef_final", algo.ent_coef_final, 0.0, math.inf, False, True)
    _in_range("max_grad_norm", algo.max_grad_norm, 0.0, math.inf, True, True)
    if algo.target_kl is not None:
        _in_range("target_kl", algo.target_kl, 0.0, math.inf, True, True)
    _in_range("adam_eps", algo.adam_eps, 0.0, 1.0, True, True)
    if not allow_unsafe and algo.update_epochs > MAX_SAFE_EPOCHS:
        raise ConfigError(
            "update_epochs",
            f"{algo.update_epochs} epochs per rollout let the policy drift far outside the trust "
            f"region the ratio clip assumes; allowed: <= {MAX_SAFE_EPOCHS}, or pass --allow-unsafe",
        )
    if not allow_unsafe and algo.clip_coef > MAX_SAFE_CLIP:
        raise ConfigError(
            "clip_coef",
            f"{algo.clip_coef} is a trust region too wide to keep updates stable; "
            f"allowed: <= {MAX_SAFE_CLIP}, or pass --allow-unsafe",
        )


def _validate_safeguards(config: RunConfig) -> None:
    """PPO practice's checklist: a PPO run (several epochs over each rollout, with a critic)
    normalizes its advantages and watches its KL and clip fraction, unless told otherwise."""
    method = METHODS[config.algo.method]
    if config.allow_unsafe or method.one_pass or not method.critic:
        return
    if not config.algo.norm_adv:
        raise ConfigError("norm_adv", "false leaves PPO's step size to the reward's scale (an unnormalized advantage "
                                      "scales every gradient); allowed: true, or pass --allow-unsafe")  # fmt: skip
    if not config.diagnostics.health_checks:
        raise ConfigError("health_checks", "false leaves the KL and the clip fraction unwatched (a broken trust region "
                                           "goes unnoticed); allowed: true, or pass --allow-unsafe")  # fmt: skip


def _validate_sections(algo: AlgoConfig, allow_unsafe: bool) -> None:
    """The method sections: ppo_kl, adaptive_clip, group."""
    group, kl, clip = algo.group, algo.ppo_kl, algo.adaptive_clip
    if not isinstance(group.size, int) or group.size < 2:
        raise ConfigError("algo.group.size", f"{group.size}; allowed: >= 2 (a group needs episodes to compare)")
    if group.scale not in GROUP_SCALES:
        raise ConfigError("algo.group.scale", f"{group.scale!r}; allowed: {', '.join(GROUP_SCALES)}")
    _in_range("algo.ppo_kl.coef", kl.coef, 0.0, math.inf, False, True)
    _in_range("algo.ppo_kl.target", kl.target, 0.0, math.inf, True, True)
    _in_range("algo.adaptive_clip.target", clip.target, 0.0, math.inf, True, True)
    if clip.enabled and not allow_unsafe and clip.max > MAX_SAFE_CLIP:
        raise ConfigError("algo.adaptive_clip.max", f"{clip.max}; allowed: <= {MAX_SAFE_CLIP}, or pass --allow-unsafe")
    if clip.enabled and not (0.0 < clip.min <= algo.clip_coef <= clip.max):
        raise ConfigError(
            "algo.adaptive_clip.min",
            f"the adaptive clip needs 0 < min <= clip_coef <= max; got {clip.min} <= {algo.clip_coef} <= {clip.max}",
        )


def _validate_policy(policy: PolicyConfig) -> None:
    if not policy.hidden_sizes or any(
        not isinstance(h, int) or isinstance(h, bool) or h < 1 for h in policy.hidden_sizes
    ):
        raise ConfigError("hidden_sizes", f"{policy.hidden_sizes!r}; allowed: positive integers")
    if policy.activation not in ACTIVATIONS:
        raise ConfigError("activation", f"{policy.activation!r}; allowed: {', '.join(ACTIVATIONS)}")
    _in_range("init_log_std", policy.init_log_std, -20.0, 2.0, False, False)


def _validate_diagnostics(d: DiagnosticsConfig) -> None:
    for name in ("kl_patience", "clip_fraction_patience", "explained_variance_patience", "grad_norm_patience",
                 "return_drop_patience", "value_step_patience"):  # fmt: skip
        _positive_int(name, getattr(d, name))
    _in_range("kl_max", d.kl_max, 0.0, math.inf, True, True)
    _in_range("clip_fraction_min", d.clip_fraction_min, 0.0, 1.0, False, False)
    _in_range("clip_fraction_max", d.clip_fraction_max, 0.0, 1.0, False, False)
    _in_range("entropy_collapse_ratio", d.entropy_collapse_ratio, 0.0, 1.0, False, False)
    _in_range("entropy_collapse_before", d.entropy_collapse_before, 0.0, 1.0, False, False)
    _in_range("grad_norm_max", d.grad_norm_max, 0.0, math.inf, True, True)
    _in_range("value_warmup", d.value_warmup, 0.0, 1.0, False, False)
    _in_range("return_drop", d.return_drop, 0.0, math.inf, True, True)
    _in_range("value_corr_min", d.value_corr_min, -1.0, 1.0, False, False)
    _in_range("value_step_min", d.value_step_min, 0.0, math.inf, False, True)
    _in_range("moved_kl_min", d.moved_kl_min, 0.0, math.inf, False, True)
    _in_range("obs_rms_max", d.obs_rms_max, 0.0, math.inf, True, True)
    if d.clip_fraction_min >= d.clip_fraction_max:
        raise ConfigError(
            "clip_fraction_min", f"{d.clip_fraction_min} must be below clip_fraction_max ({d.clip_fraction_max})"
        )


def _validate_async(config: RunConfig) -> None:
    """Asynchronous workers: Ray installed, a method that collects steps, no running normalizers
    (each worker would keep its own statistics)."""
    if not isinstance(config.async_workers, int) or config.async_workers < 0:
        raise ConfigError("async_workers", f"{config.async_workers!r}; allowed: 0 (off) or an integer >= 1")
    if not isinstance(config.max_policy_lag, int) or config.max_policy_lag < 0:
        raise ConfigError("max_policy_lag", f"{config.max_policy_lag!r}; allowed: an integer >= 0")
    if not config.vtrace_clip > 0:
        raise ConfigError("vtrace_clip", f"{config.vtrace_clip!r}; allowed: a number > 0")
    if config.vtrace and not config.async_workers:
        raise ConfigError("vtrace", "true corrects async workers' lagging rollouts; allowed: false, or with "
                                    "async_workers >= 1")  # fmt: skip
    if not config.async_workers:
        return
    if config.vtrace and not METHODS[config.algo.method].critic:
        raise ConfigError("vtrace", f"true with {config.algo.method}, which has no critic; allowed: false")
    if config.vtrace and config.algo.recompute_advantages:
        raise ConfigError(
            "vtrace", "true with algo.recompute_advantages (GAE before every epoch); allowed: one of them"
        )
    if importlib.util.find_spec("ray") is None:
        raise ConfigError("async_workers", f"{config.async_workers} needs Ray, which is not installed; allowed: 0, or "
                                           "pip install 'ppokit[ray]'")  # fmt: skip
    if METHODS[config.algo.method].collects == "episodes":
        raise ConfigError("async_workers", f"{config.async_workers} with {config.algo.method}, whose groups share "
                                           "one start state; allowed: 0")  # fmt: skip
    for name in ("norm_obs", "norm_reward"):
        if getattr(config.env, name):
            raise ConfigError(name, "true with async_workers: each worker would normalize with its own statistics; "
                                    "allowed: false (or async_workers 0)")  # fmt: skip


def check_env_id(env_id: str) -> None:
    """Raise ConfigError for an unregistered env id, suggesting the closest registered ids."""
    import gymnasium as gym

    from ppokit.classic.games import register_namespace  # importing ppokit.classic registers its own envs

    register_namespace(env_id)  # ALE and MinAtar ids: their package, or a ConfigError naming its extra

    if env_id in gym.registry:
        return
    try:
        gym.spec(env_id)  # also resolves ids of namespaces imported on demand
        return
    except Exception:
        pass
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ConfigError("env.id", f"unknown Gymnasium environment {env_id!r}{hint}")
