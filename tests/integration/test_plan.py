"""ppokit plan: the configuration and its reasons, refusals, flags, and the flags round trip."""

from __future__ import annotations

import pytest

from ppokit.cli import main
from ppokit.errors import ConfigError
from ppokit.flags import build_parser, resolve_config, train_flags
from ppokit.plan import MIN_UPDATES, make_plan, plan_rows


def test_env_with_preset_uses_it_and_says_so() -> None:
    plan = make_plan("CartPole-v1", 100_000, {})
    assert plan.config.algo.update_epochs == 20 and plan.config.env.num_envs == 8
    assert plan.reasons["update_epochs"].startswith("preset CartPole-v1: rl-baselines3-zoo")
    assert plan.reasons["total_steps"] == "your budget"


def test_discrete_env_without_preset_is_derived_from_its_spaces() -> None:
    plan = make_plan("Acrobot-v1", 1_000_000, {})
    assert plan.config.algo.ent_coef == 0.01 and plan.config.algo.num_steps == 128
    assert plan.config.env.norm_obs is False  # Acrobot's observation space is bounded
    assert "discrete actions" in plan.reasons["ent_coef"]
    assert "500 steps" in plan.reasons["gamma"]


def test_continuous_env_gets_normalization_and_no_entropy_bonus() -> None:
    plan = make_plan("MountainCarContinuous-v0", 1_000_000, {}, preset="none")
    assert plan.config.env.norm_obs and plan.config.env.norm_reward
    assert plan.config.algo.ent_coef == 0.0 and plan.config.algo.num_steps == 2048


def test_small_budget_shortens_rollouts_and_says_why() -> None:
    plan = make_plan("Acrobot-v1", 20_000, {})
    assert plan.config.num_updates >= MIN_UPDATES
    assert plan.config.batch_size % plan.config.algo.minibatch_size == 0
    assert "budget of 20,000 steps" in plan.reasons["num_steps"]


def test_user_settings_win_and_are_marked() -> None:
    plan = make_plan("CartPole-v1", 100_000, {"learning_rate": 3e-4})
    assert plan.config.algo.learning_rate == 3e-4
    assert plan.reasons["learning_rate"] == "set by you"


@pytest.mark.parametrize(("field", "value"), [("update_epochs", 31), ("clip_coef", 0.4)])
def test_unsafe_trust_region_refused_unless_allowed(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match="--allow-unsafe"):
        make_plan("CartPole-v1", 100_000, {field: value})
    assert make_plan("CartPole-v1", 100_000, {field: value, "allow_unsafe": True})


def test_flags_missing_safeguards() -> None:
    plan = make_plan("CartPole-v1", 100_000, {"norm_adv": False, "health_checks": False, "allow_unsafe": True})
    notes = " ".join(plan.notes)
    assert "advantage normalization is off (--allow-unsafe)" in notes
    assert "diagnostics are off (--allow-unsafe)" in notes


@pytest.mark.parametrize(
    ("user", "field"), [({"norm_adv": False}, "norm_adv"), ({"health_checks": False}, "health_checks")]
)
def test_a_ppo_run_without_its_safeguards_needs_allow_unsafe(user: dict[str, object], field: str) -> None:
    """PPO practice's checklist: advantages normalized, KL and clip fraction watched."""
    with pytest.raises(ConfigError) as e:
        make_plan("CartPole-v1", 100_000, user)
    assert e.value.field == field and "or pass --allow-unsafe" in str(e.value)
    assert make_plan("CartPole-v1", 100_000, {**user, "method": "a2c"})  # one pass, no trust region to break


def test_rows_include_the_rollout_arithmetic_and_diagnostics_are_listed() -> None:
    plan = make_plan("CartPole-v1", 100_000, {})
    rows = {name: (value, why) for name, value, why in plan_rows(plan)}
    assert rows["rollout"][0] == "8 x 32 = 256 steps"
    assert "390 updates" in rows["rollout"][1]
    assert {name for name, _, _ in plan.watch} >= {"kl_high", "clip_fraction_low", "value_broken"}


def test_the_plan_says_whether_compiling_pays_from_the_run_s_minibatch_steps() -> None:
    """Hopper's preset compiles (488 updates x 320 minibatch steps); CartPole's does not at its
    100k steps (7,800 minibatch steps), and at 1M steps the plan says compiling would pay."""
    hopper = make_plan("Hopper-v5", 1_000_000, {})
    assert hopper.config.compile and hopper.reasons["compile"] == (
        "preset Hopper-v5: its 156,160 minibatch steps pay back the first update's compiling"
    )
    short, long = make_plan("CartPole-v1", 100_000, {}), make_plan("CartPole-v1", 1_000_000, {})
    assert not short.config.compile and "7,800 minibatch steps: compiling would not pay" in short.reasons["compile"]
    assert not long.config.compile and "78,120 minibatch steps: --compile would pay" in long.reasons["compile"]
    assert make_plan("Hopper-v5", 1_000_000, {"compile": False}).reasons["compile"] == "set by you"
    rows = {name: value for name, value, _ in plan_rows(hopper)}
    assert rows["compile"] == "True"


@pytest.mark.parametrize(("env_id", "steps"), [("Acrobot-v1", 50_000), ("Pendulum-v1", 200_000)])
def test_printed_train_flags_reproduce_the_plan(env_id: str, steps: int) -> None:
    plan = make_plan(env_id, steps, {})
    args = build_parser().parse_args(["train", *train_flags(plan.config)])
    assert resolve_config(args) == plan.config


def test_plan_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--env", "Acrobot-v1", "--steps", "100000"]) == 0
    out = capsys.readouterr().out
    assert "Training plan: Acrobot-v1" in out and "Run it: ppokit train --preset none" in out
    assert main(["plan", "--env", "CartPole-v1", "--steps", "100000", "--update-epochs", "40"]) == 2
    assert "--allow-unsafe" in capsys.readouterr().err


def test_flags_given_to_plan_are_explained_as_set_by_you(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--env", "CartPole-v1", "--steps", "50000", "--preset", "none",
                 "--algo.learning-rate", "0.001", "--num-envs", "4"]) == 0  # fmt: skip
    rows = [line for line in capsys.readouterr().out.splitlines() if "set by you" in line]
    assert any("learning_rate" in row for row in rows) and any("num_envs" in row for row in rows)


def test_plan_watches_only_the_rules_that_apply_to_the_method() -> None:
    ppo = {name for name, _, _ in make_plan("CartPole-v1", 50_000, {}).watch}
    kl = {name for name, _, _ in make_plan("CartPole-v1", 50_000, {"method": "ppo-kl"}).watch}
    reinforce = {name for name, _, _ in make_plan("CartPole-v1", 50_000, {"method": "reinforce"}).watch}
    assert {"clip_fraction_low", "clip_fraction_high", "value_broken"} <= ppo
    assert not {"clip_fraction_low", "clip_fraction_high"} & kl and "value_broken" in kl
    assert not {"clip_fraction_low", "value_broken"} & reinforce and "kl_high" in reinforce


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Acrobot-v1", "Pendulum-v1", "MountainCarContinuous-v0",
                                    "ppokit/GridWorld-v0", "ppokit/Bandit-v0"])  # fmt: skip
@pytest.mark.parametrize("steps", [1_000, 20_000, 1_000_000])
def test_the_printed_command_is_one_train_accepts(env_id: str, steps: int) -> None:
    """What plan prints must not be refused by train: the flags parse and the config they give
    validates (or plan itself refused the budget, in one line)."""
    try:
        plan = make_plan(env_id, steps, {})
    except ConfigError:
        return  # too small a budget for the env: plan says so itself
    args = build_parser().parse_args(["train", *train_flags(plan.config)])
    assert resolve_config(args).validate() == plan.config.validate()
