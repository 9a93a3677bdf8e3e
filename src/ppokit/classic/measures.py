"""The per-update figures the classic trainer computes beside the update's own: the episodes'
summary, the rollout's input scale and critic fit, and the finite check that stops a run."""

from __future__ import annotations

import math

import torch

from ppokit.classic.batch import Batch
from ppokit.classic.evaluation import episode_summary
from ppokit.classic.rollout import Episodes
from ppokit.classic.state import TrainState
from ppokit.core.metrics import correlation, explained_variance
from ppokit.errors import NonFiniteError
from ppokit.methods import Method


def update_metrics(method: Method, state: TrainState, batch: Batch) -> dict[str, float]:
    """Per-update metrics of the rollout: the scale of the network's inputs (vectors); the
    critic's fit and the value targets' scale (methods with a critic only)."""
    metrics = {"time_elapsed": state.train_time, "update": float(state.update)}
    if batch.obs.is_floating_point():  # the network's inputs (normalized, if norm_obs); pixels are scaled inside
        metrics["obs_rms"] = float(batch.obs[batch.mask.bool()].double().square().mean().sqrt())
    if not method.critic:
        return metrics
    targets = batch.returns[batch.mask.bool()].double()
    return metrics | {
        "explained_variance": explained_variance(batch.values, batch.returns, batch.mask),
        "value_corr": correlation(batch.values, batch.returns, batch.mask),
        "value_target_mean": float(targets.mean()) if targets.numel() else math.nan,
        "value_target_std": float(targets.std(unbiased=False)) if targets.numel() else math.nan,
    }


def episode_metrics(episodes: Episodes) -> dict[str, float]:
    info = {f"info_{k}": episodes.info_sums[k] / max(1, n) for k, n in episodes.info_counts.items()}
    return info | episode_summary("episode", episodes.returns, episodes.lengths)


def check_finite(metrics: dict[str, float], state: TrainState) -> None:
    """Stop on NaN/inf in a loss or gradient, or in any parameter, naming the first one."""
    if metrics["minibatch_steps"] == 0:  # no valid sample, no update: the losses are undefined
        return
    for name in ("loss", "policy_loss", "value_loss", "entropy", "grad_norm", "approx_kl", "ref_kl"):
        if name in metrics and not math.isfinite(metrics[name]):
            raise NonFiniteError(name, state.update)
    for name, p in state.policy.named_parameters():
        if not torch.isfinite(p).all():
            raise NonFiniteError(f"parameter {name}", state.update)
