"""Config validation: every bad value names its field and what is allowed."""

from __future__ import annotations

import pytest

from ppokit.config import RunConfig, from_dict, leaves, override, resolve, short_names, to_dict
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
    assert info.value.field in (field, resolve(field))  # type errors name the dotted path
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
    with pytest.raises(ConfigError, match=r"algo: got 3 \(int\), expected a table of AlgoConfig fields"):
        from_dict({"algo": 3})


# --- the nested tree: dotted paths, short names, renamed keys ---------------------------------


def test_method_settings_live_in_their_own_sections() -> None:
    config = override(RunConfig(), {"algo.ppo_kl.target": 0.02, "clip_kl_target": 0.03, "group_size": 4})
    assert config.algo.ppo_kl.target == 0.02
    assert config.algo.adaptive_clip.target == 0.03  # the old short name reaches the new field
    assert config.algo.group.size == 4
    data = to_dict(config)
    assert data["algo"]["ppo_kl"]["target"] == 0.02 and data["algo"]["group"]["size"] == 4
    assert from_dict(data) == config


def test_dotted_paths_and_short_names_reach_the_same_field() -> None:
    assert resolve("clip_coef") == resolve("algo.clip_coef") == "algo.clip_coef"
    assert resolve("kl_target") == "algo.ppo_kl.target"
    assert resolve("seed") == "seed" and resolve("id") == "env.id"
    assert override(RunConfig(), {"algo.gamma": 0.9}) == override(RunConfig(), {"gamma": 0.9})


def test_legacy_group_scale_std_maps_onto_the_scale() -> None:
    assert override(RunConfig(), {"group_scale_std": False}).algo.group.scale == "none"
    assert override(RunConfig(), {"group_scale_std": True}).algo.group.scale == "group"
    with pytest.raises(ConfigError, match=r"algo.group.scale: got 'max' \(str\), expected one of group, batch, none"):
        override(RunConfig(), {"algo.group.scale": "max"}).validate()


@pytest.mark.parametrize(
    ("old", "new"),
    [("kl_target", "algo.ppo_kl.target"), ("clip_kl_target", "algo.adaptive_clip.target"),
     ("kl_coef", "algo.ppo_kl.coef"), ("group_size", "algo.group.size")],
)  # fmt: skip
def test_an_old_name_in_a_toml_file_names_the_new_one(old: str, new: str) -> None:
    with pytest.raises(ConfigError, match=rf"algo.{old}: renamed to {new}") as info:
        from_dict({"algo": {old: 0.02}})
    assert info.value.field == f"algo.{old}"


def test_every_leaf_has_a_path_and_the_short_names_do_not_collide() -> None:
    paths = leaves()
    assert "algo.ppo_kl.target" in paths and "algo.adaptive_clip.target" in paths and "seed" in paths
    assert len({p.rsplit(".", 1)[-1] for p in paths if p.count(".") <= 1}) == sum(p.count(".") <= 1 for p in paths)
    assert all(target in paths for target in short_names().values())


def test_unknown_override_key_is_refused_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"clip_cof: unknown field \(did you mean 'clip_coef'\?\)"):
        override(RunConfig(), {"clip_cof": 0.1})
