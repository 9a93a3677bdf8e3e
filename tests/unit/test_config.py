"""Config validation: every bad value names its field and what is allowed."""

from __future__ import annotations

import pytest

from ppokit.config import RunConfig, from_dict, override, to_dict
from ppokit.errors import ConfigError


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("clip_coef", 0.0, "(0.0, 1.0)"),
        ("clip_coef", -0.1, "(0.0, 1.0)"),
        ("gamma", 1.5, "(0.0, 1.0]"),
        ("gamma", 0.0, "(0.0, 1.0]"),
        ("gae_lambda", -0.1, "[0.0, 1.0]"),
        ("learning_rate", 0.0, "(0.0, 1.0]"),
        ("num_envs", 0, "integer >= 1"),
        ("num_steps", -5, "integer >= 1"),
        ("update_epochs", 0, "integer >= 1"),
        ("max_grad_norm", 0.0, "(0.0, inf)"),
        ("target_kl", 0.0, "(0.0, inf)"),
        ("ent_coef", -1.0, "[0.0, inf)"),
        ("vectorization", "threads", "auto, native, sync, async"),
        ("activation", "gelu", "tanh, relu"),
        ("hidden_sizes", (64, 0), "positive integers"),
        ("total_steps", 0, "integer >= 1"),
        ("device", "tpu", "cpu, cuda"),
        ("torch_threads", -1, "0 (torch's default) or an integer >= 1"),
    ],
)
def test_out_of_range_values_name_the_field(field: str, value: object, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        override(RunConfig(), {field: value}).validate()
    assert info.value.field == field
    assert expected in str(info.value)


def test_minibatch_size_must_divide_batch() -> None:
    with pytest.raises(ConfigError, match=r"minibatch_size: 100 does not divide the batch .* = 512"):
        override(RunConfig(), {"num_envs": 4, "num_steps": 128, "minibatch_size": 100}).validate()


def test_total_steps_below_one_rollout() -> None:
    with pytest.raises(ConfigError, match="total_steps"):
        override(RunConfig(), {"total_steps": 100}).validate()


def test_unknown_env_suggests_close_matches() -> None:
    with pytest.raises(ConfigError, match=r"env.id: unknown Gymnasium environment 'CartPole-v2'.*CartPole-v1"):
        override(RunConfig(), {"id": "CartPole-v2"}).validate()


@pytest.mark.parametrize(("field", "value"), [("update_epochs", 31), ("clip_coef", 0.35)])
def test_unsafe_trust_region_refused_unless_allowed(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"{field}.*--allow-unsafe"):
        override(RunConfig(), {field: value}).validate()
    assert override(RunConfig(), {field: value, "allow_unsafe": True}).validate()


def test_limits_themselves_are_safe() -> None:
    override(RunConfig(), {"update_epochs": 30, "clip_coef": 0.3}).validate()


def test_derived_sizes() -> None:
    config = override(RunConfig(), {"num_envs": 8, "num_steps": 32, "minibatch_size": 64, "total_steps": 1000})
    assert (config.batch_size, config.num_minibatches, config.num_updates) == (256, 4, 3)


def test_dict_round_trip() -> None:
    config = override(RunConfig(), {"hidden_sizes": (32, 16), "target_kl": 0.02, "norm_obs": True})
    assert from_dict(to_dict(config)) == config


def test_unknown_key_is_named_with_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"algo.learning_rat: unknown key \(did you mean 'learning_rate'\?\)"):
        from_dict({"algo": {"learning_rat": 0.1}})


def test_section_must_be_a_table() -> None:
    with pytest.raises(ConfigError, match="algo: must be a table"):
        from_dict({"algo": 3})
