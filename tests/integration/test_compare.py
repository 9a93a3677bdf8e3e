"""ppokit vs SB3: the config mapping, and a tiny comparison end to end."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import pytest
from stable_baselines3 import PPO
from torch import nn

from ppokit.analysis.compare import LinearSchedule, RunRecord, SharedTrunk, compare, to_sb3
from ppokit.classic.policy import ActorCritic
from ppokit.config import RunConfig, override
from ppokit.errors import ConfigError


def _config(**overrides: object) -> RunConfig:
    base = {"id": "Pendulum-v1", "num_envs": 2, "num_steps": 64, "minibatch_size": 32, "total_steps": 640}
    return override(RunConfig(), {**base, **overrides}).validate()


def test_mapping_gives_the_expected_sb3_kwargs() -> None:
    config = _config(clip_vloss=False, anneal_lr=True, anneal_clip=False, target_kl=0.03, norm_obs=True,
                     hidden_sizes=(32, 16), activation="relu", init_log_std=-0.5, adam_eps=1e-7, update_epochs=3,
                     gamma=0.95, gae_lambda=0.9, vf_coef=0.7, ent_coef=0.02, norm_adv=False,
                     allow_unsafe=True)  # fmt: skip
    setup = to_sb3(config)
    kw = setup.ppo_kwargs
    assert kw["clip_range_vf"] is None  # clip_vloss False: SB3 does not clip the value
    assert kw["clip_range"] == 0.2
    assert (kw["n_steps"], kw["batch_size"], kw["n_epochs"]) == (64, 32, 3)
    assert (kw["gamma"], kw["gae_lambda"], kw["vf_coef"], kw["ent_coef"]) == (0.95, 0.9, 0.7, 0.02)
    assert kw["normalize_advantage"] is False
    assert kw["target_kl"] == pytest.approx(0.02)  # SB3 stops at 1.5 * target_kl = ppokit's 0.03
    assert kw["policy_kwargs"] == {
        "activation_fn": nn.ReLU,
        "ortho_init": True,
        "log_std_init": -0.5,
        "optimizer_kwargs": {"eps": 1e-7},
        "net_arch": {"pi": [32, 16], "vf": [32, 16]},
    }
    assert setup.n_envs == 2 and setup.total_timesteps == 640
    assert setup.vec_normalize == {"norm_obs": True, "norm_reward": False, "clip_obs": 10.0, "clip_reward": 10.0,
                                   "gamma": 0.95}  # fmt: skip
    # ppokit's annealing, lr * (1 - u / U) at update u, at the progress SB3 passes after rollout u.
    schedule, updates = kw["learning_rate"], config.num_updates
    assert isinstance(schedule, LinearSchedule)
    assert schedule(1.0) == config.algo.learning_rate  # SB3 builds the optimizer with schedule(1)
    for u in range(updates):
        assert schedule(1.0 - (u + 1) / updates) == pytest.approx(config.algo.learning_rate * (1 - u / updates))


def test_mapping_defaults_clip_the_value_and_keep_constants() -> None:
    kw = to_sb3(_config(anneal_lr=False, anneal_clip=True)).ppo_kwargs
    assert kw["learning_rate"] == RunConfig().algo.learning_rate
    assert isinstance(kw["clip_range"], LinearSchedule)
    assert kw["clip_range_vf"] is kw["clip_range"]  # ppokit clips V with the (annealed) ratio epsilon
    assert kw["target_kl"] is None
    assert to_sb3(_config()).vec_normalize is None


def _parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("method", "ppo-kl"),
        ("method", "a2c"),
        ("ref_kl_coef", 0.1),
        ("adaptive_clip", True),
        ("bootstrap_truncation", False),
        ("recompute_advantages", True),
    ],
)
def test_mapping_refuses_what_sb3_ppo_cannot_do(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        to_sb3(_config(**{field: value}))


@pytest.mark.parametrize("shared_trunk", [False, True])
@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_mapped_sb3_policy_has_ppokits_architecture(env_id: str, shared_trunk: bool) -> None:
    config = _config(id=env_id, shared_trunk=shared_trunk, hidden_sizes=(32, 24))
    env = gym.make(env_id)
    setup = to_sb3(config)
    model = PPO(env=env, **setup.ppo_kwargs)
    ours = ActorCritic(env.observation_space, env.action_space, config.policy)
    assert _parameters(model.policy) == _parameters(ours)  # same layers (and log std): the same architecture
    assert isinstance(model.policy.features_extractor, SharedTrunk) is shared_trunk
    env.close()


def test_tiny_comparison_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    finished: list[RunRecord] = []
    result = compare("CartPole-v1", 2, 2048, out, workers=2, on_result=finished.append)
    assert sorted((r.library, r.seed) for r in finished) == [("ppokit", 1), ("ppokit", 2), ("sb3", 1), ("sb3", 2)]
    for name in ("comparison.json", "comparison.md", "comparison.png"):
        assert (out / name).is_file()
    assert result.total_steps == 2048 and result.seeds == [1, 2]
    assert set(result.libraries) == {"ppokit", "sb3"}
    for per_library in result.libraries.values():
        assert set(per_library.scores) == {1, 2} and all(0 < s <= 500 for s in per_library.scores.values())
        for estimate in per_library.aggregates.values():
            assert estimate.low <= estimate.point <= estimate.high
        assert per_library.median_train_time > 0 and per_library.median_sps > 0
    d = result.difference
    assert d.low <= d.point <= d.high
    assert d.point == pytest.approx(
        result.libraries["ppokit"].aggregates["mean"].point - result.libraries["sb3"].aggregates["mean"].point
    )
    assert result.time_ratio > 0 and result.sps_ratio > 0
    assert json.loads((out / "comparison.json").read_text()) == result.to_dict()
    for lib in ("ppokit", "sb3"):  # the same evaluation protocol for both
        evaluation = json.loads((out / lib / "seed-1" / "eval.json").read_text())
        assert evaluation["deterministic"] is True and evaluation["eval_episodes"] == 20
    sb3_metrics = [json.loads(line) for line in (out / "sb3" / "seed-1" / "metrics.jsonl").read_text().splitlines()]
    assert [m["global_step"] for m in sb3_metrics] == [256.0 * (i + 1) for i in range(8)]
    assert all(m["time_elapsed"] > 0 for m in sb3_metrics)
    # Running it again reuses the finished runs: nothing trains.
    again: list[RunRecord] = []
    assert compare("CartPole-v1", 2, 2048, out, workers=2, on_result=again.append).libraries == result.libraries
    assert again == []


def test_compare_cli_refuses_bad_input_before_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ppokit.cli import main

    assert main(["compare", "--env", "CartPole-v1", "--steps", "0", "--out", str(tmp_path / "c")]) == 2
    assert "steps: 0" in capsys.readouterr().err
    assert main(["compare", "--env", "CartPole-v1", "--steps", "64", "--seeds", "0", "--out", str(tmp_path / "c")]) == 2
    assert not (tmp_path / "c").exists()
