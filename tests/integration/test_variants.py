"""Every method through the same trainer: smoke, resume, metrics, and their bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import ppokit
from ppokit.errors import ConfigError
from tests.conftest import tiny_config
from tests.integration.test_train import read_metrics


@pytest.mark.parametrize("method", ["ppo", "ppo-kl", "a2c", "reinforce", "grpo"])
def test_each_method_trains_and_logs_its_metrics(tmp_path: Path, method: str) -> None:
    config = tiny_config(tmp_path / "run", method=method, group_size=2, num_steps=32, total_steps=128 * 3)
    result = ppokit.train(config)
    metrics = read_metrics(result.run_dir)
    assert len(metrics) == 3
    for row in metrics:
        assert row["kl_from_init"] is not None and row["kl_from_init"] >= 0.0
        assert row["approx_kl_final"] is not None
    # After the first update the policy has moved away from the initial one, and the KL says so.
    assert 0.0 < metrics[0]["kl_from_init"] < 0.1
    steps = {"a2c": 1.0, "reinforce": 1.0}.get(method, 2 * 4.0)  # epochs x minibatches
    assert metrics[0]["minibatch_steps"] == steps
    if method in ("reinforce", "grpo"):  # no critic: no critic metrics
        assert not any({"explained_variance", "value_loss", "value_target_mean"} & row.keys() for row in metrics)
    if method != "ppo" and method != "grpo":  # no clipping: no clip fraction
        assert not any("clip_fraction" in row for row in metrics)


def test_ppo_kl_adapts_beta_after_each_update(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "run", method="ppo-kl", kl_target=1e-6, learning_rate=0.01)
    metrics = read_metrics(ppokit.train(config).run_dir)
    betas = [row["kl_coef"] for row in metrics]
    assert betas[0] == 1.0
    assert betas[1] == 2.0  # the measured KL far above 1.5 x target: doubled
    fixed = tiny_config(tmp_path / "fixed", method="ppo-kl", kl_adaptive=False, kl_coef=0.3)
    assert {row["kl_coef"] for row in read_metrics(ppokit.train(fixed).run_dir)} == {0.3}


def test_adaptive_clip_moves_within_bounds(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "run", adaptive_clip=True, clip_kl_target=1.0, clip_max=0.3)
    clips = [row["clip_coef"] for row in read_metrics(ppokit.train(config).run_dir)]
    assert clips[0] == 0.2 and clips[1] == pytest.approx(0.3)  # KL far below target: grown, capped
    assert all(0.05 <= c <= 0.3 for c in clips)


def test_grpo_groups_start_from_one_state(tmp_path: Path) -> None:
    from ppokit.classic.envs import make_vec_env

    config = tiny_config(tmp_path / "run", method="grpo", group_size=2, vectorization="sync")
    vec = make_vec_env(config.env)
    obs, _ = vec.env.reset(seed=[7, 7, 8, 8])  # type: ignore[arg-type]
    assert np.array_equal(obs[0], obs[1]) and not np.array_equal(obs[0], obs[2])
    vec.close()
    ppokit.train(config)
    assert (tmp_path / "run" / "eval.json").is_file()


def test_grpo_stop_and_resume_equivalence(tmp_path: Path) -> None:
    straight = ppokit.train(tiny_config(tmp_path / "a", method="grpo", group_size=2))
    ppokit.train(tiny_config(tmp_path / "b", method="grpo", group_size=2), stop_after=2)
    resumed = ppokit.train(resume=tmp_path / "b")
    assert read_metrics(resumed.run_dir) == read_metrics(straight.run_dir)


class RandomStart(gym.Wrapper[np.ndarray, int, np.ndarray, int]):
    """CartPole whose start ignores the reset seed: no shared start state exists."""

    def __init__(self) -> None:
        super().__init__(gym.make("CartPole-v1"))
        self.rng = np.random.default_rng()

    def reset(self, *, seed: int | None = None, options: dict[str, object] | None = None) -> tuple[np.ndarray, dict]:  # type: ignore[type-arg]
        return self.env.reset(seed=int(self.rng.integers(1 << 30)), options=options)


def test_grpo_refuses_envs_without_a_shared_start(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "run", method="grpo", group_size=2, vectorization="sync")
    with pytest.raises(ConfigError, match="grpo needs envs that reset"):
        ppokit.train(config, env_factory=RandomStart)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"method": "grpo", "group_size": 1}, "algo.group.size: 1; allowed: >= 2"),
        ({"method": "grpo", "group_size": 3}, "num_envs: 4 is not a multiple of the group size 3"),
        ({"method": "grpo", "group_size": 2, "vectorization": "native"}, "vectorization: grpo seeds"),
        ({"method": "sarsa"}, "algo: unknown algorithm 'sarsa'"),
        ({"adaptive_clip": True, "clip_min": 0.25}, "algo.adaptive_clip.min"),
        ({"adaptive_clip": True, "clip_max": 0.5}, "algo.adaptive_clip.max: 0.5.*--allow-unsafe"),
        ({"group_scale_std": False, "method": "grpo", "group_size": 2, "scale": "max"}, "unknown field"),
    ],
)
def test_bad_variant_settings(tmp_path: Path, overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        tiny_config(tmp_path / "run", **overrides)


def test_unknown_algo_on_the_command_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ppokit", "train", "--algo", "sarsa"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "invalid choice: 'sarsa'" in lines[0] and "'grpo'" in lines[0]


def test_info_metrics_are_logged(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "run", id="ppokit/Bandit-v0", num_steps=2, minibatch_size=8,
                         info_metrics=("regret", "best_arm_chosen"))  # fmt: skip
    rows = read_metrics(ppokit.train(config).run_dir)
    assert all(0.0 <= row["info_best_arm_chosen"] <= 1.0 for row in rows)
    assert all(0.0 <= row["info_regret"] <= 0.8 for row in rows)  # max regret: 0.9 - 0.1
    summary = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert summary["eval_episodes"] == 2


def test_reference_penalty_keeps_the_policy_near_its_start(tmp_path: Path) -> None:
    free = tiny_config(tmp_path / "free", learning_rate=0.01)
    anchored = tiny_config(tmp_path / "anchored", learning_rate=0.01, ref_kl_coef=5.0)
    kl_free = read_metrics(ppokit.train(free).run_dir)[-1]["kl_from_init"]
    kl_anchored = read_metrics(ppokit.train(anchored).run_dir)[-1]["kl_from_init"]
    assert kl_anchored < 0.5 * kl_free


def test_grpo_counts_the_env_steps_it_takes(tmp_path: Path) -> None:
    # One-step bandit episodes: every GRPO rollout ends after one step of its 4 envs.
    config = tiny_config(tmp_path / "run", id="ppokit/Bandit-v0", method="grpo", group_size=2, num_steps=4,
                         minibatch_size=8, total_steps=16 * 3)  # fmt: skip
    rows = read_metrics(ppokit.train(config).run_dir)
    assert [row["global_step"] for row in rows] == [4, 8, 12]


@pytest.mark.parametrize("method", ["ppo-kl", "a2c", "reinforce"])
def test_methods_that_never_clip_get_no_clipping_advice(tmp_path: Path, method: str) -> None:
    """Regression: ppo-kl, a2c and reinforce logged clip_fraction = 0 and were told "clipping
    never binds, raise the learning rate". Their clip fraction is now not logged and the
    clip-fraction rules are not theirs; a tiny learning rate keeps every update small."""
    quiet = {"value_step_min": 0.0}  # the tiny rate also freezes the critic: that rule is not under test
    config = tiny_config(tmp_path / "run", method=method, learning_rate=1e-7, clip_fraction_patience=2, **quiet)
    result = ppokit.train(config)
    assert not any("clip_fraction" in row for row in read_metrics(result.run_dir))
    summary = json.loads((result.run_dir / "diagnostics.json").read_text())
    assert not {"clip_fraction_low", "clip_fraction_high"} & summary["rules"].keys()
    assert summary["total_warnings"] == 0
    # Control: plain PPO under the same settings does get the advice, so the rule can fire.
    ppo = ppokit.train(tiny_config(tmp_path / "ppo", learning_rate=1e-7, clip_fraction_patience=2, **quiet))
    control = json.loads((ppo.run_dir / "diagnostics.json").read_text())
    assert control["rules"]["clip_fraction_low"]["warnings"] == 1


def test_rloo_trains_on_leave_one_out_group_baselines(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "run", id="ppokit/Bandit-v0", method="rloo", group_size=2, num_steps=4,
                         minibatch_size=8)  # fmt: skip
    result = ppokit.train(config)
    rows = read_metrics(result.run_dir)
    assert len(rows) == config.num_updates and all(row["minibatch_steps"] == 2 * 2 for row in rows)
    assert not any("value_loss" in row or "explained_variance" in row for row in rows)  # no critic
    assert all(0.0 <= row["clip_fraction"] <= 1.0 for row in rows)
