"""The language-model loop on the built-in sort task: smoke, on-policy ratio of 1,
determinism, each method's table entry, bad configuration."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from ppokit.core.advantages import group_relative_advantages, rloo_advantages
from ppokit.errors import ConfigError
from ppokit.lm.config import LMConfig
from ppokit.lm.tasks import TASKS, sort_reward
from ppokit.lm.trainer import LM_METHODS, train

TINY = {"steps": 2, "sft_steps": 2, "prompts_per_step": 4, "group_size": 4, "minibatch_size": 16, "eval_prompts": 8,
        "width": 32}  # fmt: skip
METRICS = {"policy_loss", "kl_ref", "kl_ref_seq", "approx_kl", "approx_kl_k1", "clip_fraction", "clip_fraction_low",
           "clip_fraction_high", "loss", "grad_norm", "reward_mean", "reward_std", "reward_min", "reward_max",
           "success", "entropy", "completion_length_mean", "completion_length_min", "completion_length_max",
           "truncated_fraction", "zero_std_groups"}  # fmt: skip


PPO_METRICS = METRICS | {"value_loss", "explained_variance", "kl_coef"}


@pytest.mark.parametrize("method", ["grpo", "dr-grpo", "rloo", "ppo"])
@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_each_method_runs_on_both_architectures(method: str, arch: str) -> None:
    result = train(LMConfig(method=method, arch=arch, **TINY))  # type: ignore[arg-type]  # strs of the Literals
    assert len(result.metrics) == 2
    for row in result.metrics:
        assert set(row) == (PPO_METRICS if method == "ppo" else METRICS)
        assert all(math.isfinite(v) for k, v in row.items() if k != "explained_variance")
        assert 0.0 <= row["success"] <= 1.0 and 1.0 <= row["completion_length_mean"] <= TASKS["sort"].max_new_tokens
    assert 0.0 <= result.success <= 1.0 and 0.0 <= result.success_after_sft <= 1.0


@pytest.mark.parametrize("method", ["grpo", "ppo"])
def test_one_on_policy_epoch_starts_at_ratio_one(method: str) -> None:
    """One epoch over one minibatch: the only step sees the sampling policy itself, so the
    ratio is 1 on every token (no clipping, zero approx KL): the log-probs of the update are
    those of sampling (temperature, masks, positions)."""
    config = LMConfig(method=method, temperature=0.7, **{**TINY, "minibatch_size": 16})  # type: ignore[arg-type]  # a Literal's str
    for row in train(config).metrics:
        assert row["clip_fraction"] == 0.0
        assert abs(row["approx_kl"]) < 1e-6 and abs(row["approx_kl_k1"]) < 1e-5


def test_same_seed_same_run() -> None:
    a, b = train(LMConfig(**TINY)), train(LMConfig(**TINY))
    assert a.metrics == b.metrics and a.success == b.success
    assert train(LMConfig(**{**TINY, "seed": 2})).metrics != a.metrics


def test_method_table_entries() -> None:
    rewards = torch.tensor([[0.0, 1.0, 0.5, 0.5]])
    torch.testing.assert_close(LM_METHODS["rloo"].advantages(rewards), rloo_advantages(rewards))
    torch.testing.assert_close(LM_METHODS["dr-grpo"].advantages(rewards), rewards - 0.5)
    torch.testing.assert_close(LM_METHODS["grpo"].advantages(rewards), group_relative_advantages(rewards))
    # Dr. GRPO's advantages are RLOO's times (G - 1) / G.
    torch.testing.assert_close(LM_METHODS["dr-grpo"].advantages(rewards), rloo_advantages(rewards) * 3 / 4)
    assert {m.aggregation for m in LM_METHODS.values()} == {"seq-mean-token-mean", "constant", "token-mean"}
    assert [name for name, m in LM_METHODS.items() if m.critic] == ["ppo"] and LM_METHODS["ppo"].advantages is None


def test_sort_reward_hand_values() -> None:
    assert sort_reward(["3142=", "3142=", "3142=", "3142="], ["1234", "1243", "", "12345"]) == [1.0, 0.25, 0.0, 0.5]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"method": "sarsa"}, "lm.method"), ({"task": "chess"}, "lm.task"), ({"group_size": 1}, "lm.group_size"),
     ({"truncation": "maybe"}, "lm.truncation"), ({"missing_eos_penalty": -1.0}, "lm.missing_eos_penalty"),
     ({"minibatch_size": 5}, "lm.minibatch_size"), ({"temperature": 0.0}, "lm.temperature"),
     ({"aggregation": "sum"}, "lm.aggregation"), ({"arch": "bert"}, "lm.arch"),
     ({"method": "ppo", "aggregation": "constant"}, "lm.aggregation"), ({"kl_target": 0.1}, "lm.kl_target"),
     ({"critic": "model"}, "lm.critic")],
)  # fmt: skip
def test_bad_configuration_names_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        LMConfig(**overrides).validate()  # type: ignore[arg-type]  # wrong values under test
    assert info.value.field == field and ("allowed" in str(info.value) or "expected" in str(info.value))


def test_a_run_folder_holds_config_metrics_evaluation_and_a_loadable_model(tmp_path: Path) -> None:
    import tomllib

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ppokit.lm.tasks import TASKS
    from ppokit.lm.trainer import evaluate

    run = tmp_path / "run"
    result = train(LMConfig(run_dir=str(run), **TINY))
    assert tomllib.loads((run / "config.toml").read_text())["lm"]["steps"] == 2
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["update"] for row in lines] == [1.0, 2.0] and lines[-1]["global_step"] == 2 * 16
    assert lines[-1]["reward_mean"] == pytest.approx(result.metrics[-1]["reward_mean"])
    scores = json.loads((run / "eval.json").read_text())
    assert scores["success"] == result.success and scores["success_after_sft"] == result.success_after_sft
    model, tokenizer = AutoModelForCausalLM.from_pretrained(run / "model"), AutoTokenizer.from_pretrained(run / "model")
    assert tokenizer.pad_token_id == result.tokenizer.pad_token_id and tokenizer.padding_side == "left"
    again = evaluate(model, tokenizer, TASKS["sort"], TINY["eval_prompts"], random.Random(result.config.seed + 1))
    assert (again.success, again.reward) == (result.success, result.reward)  # the saved model is the trained one
    with pytest.raises(ConfigError, match=r"lm.run_dir: .* already holds a run"):
        LMConfig(run_dir=str(run), **TINY).validate()


def length_reward(prompts: list[str], completions: list[str], target: list[int]) -> list[float]:
    """A user's reward with a column from the prompts file: 1 for a completion of ``target``
    characters, less the further it is. The test files set target = the prompt's digits, so
    the column must arrive aligned with the prompts."""
    assert all(t == len(p) - 1 for p, t in zip(prompts, target, strict=True)), (prompts, target)
    return [1.0 - abs(len(c) - t) / 8 for c, t in zip(completions, target, strict=True)]


def _prompts(tmp_path: Path, rows: list[dict[str, object]]) -> str:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def test_prompts_file_and_reward_function_on_a_saved_model(tmp_path: Path) -> None:
    """The user's path: a local model folder, a JSONL prompts file with an extra column, a
    reward function named module:function that gets that column aligned with the prompts."""
    train(LMConfig(run_dir=str(tmp_path / "sft"), **TINY))  # a saved model to start from
    prompts = _prompts(tmp_path, [{"prompt": "12=", "target": 2}, {"prompt": "9876=", "target": 4}])
    reward_file = tmp_path / "my_reward.py"
    source = ["def reward(prompts, completions, target):",
              "    return [float(len(c) == t) for c, t in zip(completions, target)]"]  # fmt: skip
    reward_file.write_text("\n".join(source) + "\n")
    config = LMConfig(model=str(tmp_path / "sft" / "model"), prompts=prompts, reward=f"{reward_file}:reward",
                      sft_steps=0, max_new_tokens=6, **{k: v for k, v in TINY.items() if k != "sft_steps"})  # fmt: skip
    result = train(config)
    assert math.isnan(result.success) and 0.0 <= result.reward <= 1.0
    assert all(math.isnan(row["success"]) and 0.0 <= row["reward_mean"] <= 1.0 for row in result.metrics)
    by_module = train(replace(config, reward="tests.unit.test_lm_trainer:length_reward"))
    assert len(by_module.metrics) == 2 and 0.0 <= by_module.reward <= 1.0
    assert train(replace(config, reward="tests.unit.test_lm_trainer:length_reward")).metrics == by_module.metrics


@pytest.mark.parametrize(
    ("rows", "reward", "message"),
    [
        (None, "tests.unit.test_lm_trainer:length_reward", "lm.prompts: .* does not exist"),
        ([{"text": "1="}], "tests.unit.test_lm_trainer:length_reward", "lm.prompts: .*:1 has no 'prompt' string"),
        ([{"prompt": "1=", "target": 1}], "no_such_module_here:f", "lm.reward: cannot import 'no_such_module_here'"),
        ([{"prompt": "1=", "target": 1}], "tests.unit.test_lm_trainer:nothing", "lm.reward: .* has no function"),
        ([{"prompt": "1=", "target": 1}], "just-a-name", "lm.reward: 'just-a-name'; allowed: module:function"),
    ],
)
def test_bad_prompts_and_rewards_are_refused_before_any_work(
    tmp_path: Path, rows: list[dict[str, object]] | None, reward: str, message: str
) -> None:
    prompts = str(tmp_path / "missing.jsonl") if rows is None else _prompts(tmp_path, rows)
    config = LMConfig(prompts=prompts, reward=reward, sft_steps=0, steps=1, eval_prompts=2, prompts_per_step=2,
                      group_size=2, minibatch_size=4)  # fmt: skip
    with pytest.raises(ConfigError, match=message):
        train(config)


def _wrong_count(prompts: list[str], completions: list[str], **columns: object) -> list[float]:
    return [0.0]


def _nan(prompts: list[str], completions: list[str], **columns: object) -> list[float]:
    return [math.nan] * len(completions)


def _raises(prompts: list[str], completions: list[str], **columns: object) -> list[float]:
    raise KeyError("answer")


@pytest.mark.parametrize(
    ("name", "message"),
    [("_wrong_count", "returned 1 scores for 2 completions"), ("_nan", "score nan for completion 0"),
     ("_raises", "the reward function raised KeyError")],
)  # fmt: skip
def test_a_reward_that_fails_stops_with_one_line(tmp_path: Path, name: str, message: str) -> None:
    from ppokit.lm.rewards import RewardError

    config = LMConfig(prompts=_prompts(tmp_path, [{"prompt": "1="}]), reward=f"tests.unit.test_lm_trainer:{name}",
                      sft_steps=0, steps=1, eval_prompts=2, prompts_per_step=1, group_size=2,
                      minibatch_size=2)  # fmt: skip
    with pytest.raises(RewardError, match=message) as info:
        train(config)
    assert info.value.exit_code == 2 and "\n" not in str(info.value)


def test_prompts_need_a_reward_and_no_sft() -> None:
    with pytest.raises(ConfigError, match=r"lm.prompts: prompts need a reward: --reward or --reward-model"):
        LMConfig(prompts="p.jsonl").validate()
    with pytest.raises(ConfigError, match=r"lm.reward: a reward function scores --prompts"):
        LMConfig(reward="m:f").validate()
    with pytest.raises(ConfigError, match=r"lm.sft_steps: 30: a prompts file has no answers"):
        LMConfig(prompts="p.jsonl", reward="m:f").validate()
    with pytest.raises(ConfigError, match=r"lm.model: 'nowhere' is not a model folder"):
        LMConfig(model="nowhere").validate()


def test_ppo_kl_coefficient_is_fixed_or_follows_its_target() -> None:
    fixed = train(LMConfig(method="ppo", kl_coef=0.05, **TINY))
    assert [row["kl_coef"] for row in fixed.metrics] == [0.05, 0.05]
    # A target far above any KL these steps reach: the controller lowers beta by its largest
    # step, 20% per horizon of 16 completions (a step has 16). The first step's KL is exactly 0:
    # the policy is still the reference.
    adaptive = train(LMConfig(method="ppo", kl_coef=0.05, kl_target=1e6, kl_horizon=16, **TINY))
    betas = [row["kl_coef"] for row in adaptive.metrics]
    assert adaptive.metrics[0]["kl_ref"] == 0.0
    assert betas == pytest.approx([0.05 * 0.8, 0.05 * 0.8 * 0.8])


def test_ppo_with_its_own_critic_model_keeps_the_value_gradient_out_of_the_policy() -> None:
    """critic=model: the value head sits on a copy of the SFT model, so the value loss's
    gradient reaches the critic's trunk and none of the policy's parameters."""
    from ppokit.lm.methods import LM_METHODS
    from ppokit.lm.models import tiny_causal_lm
    from ppokit.lm.policy import attach
    from ppokit.lm.ppo import PPOBatch, ppo_loss
    from ppokit.lm.tokenizer import char_tokenizer

    tokenizer = char_tokenizer("0123456789=")
    model = tiny_causal_lm("gpt2", tokenizer, width=16, layers=1)
    policy = attach(model, tokenizer, 0, 16, LM_METHODS["ppo"].critic, separate_critic=True)
    assert policy.critic is not None and policy.critic is not policy.model and policy.head is not None
    torch.nn.init.normal_(policy.head.linear.weight)  # off its zero start: the trunk gets a gradient through it
    ids = tokenizer(["12=12", "31=13"], return_tensors="pt")
    mask = torch.ones(2, 2)
    zeros = torch.zeros(2, 2)
    batch = PPOBatch(ids["input_ids"], ids["attention_mask"], mask, zeros - 1.0, zeros, zeros, zeros + 1.0, 3)
    _, parts = ppo_loss(policy, batch, 1.0, 0.2, 0.2, 0.2, vf_coef=1.0)
    parts["value_loss"].backward()
    assert all(p.grad is None or not p.grad.any() for p in policy.model.parameters())  # no value gradient here
    assert any(p.grad is not None and p.grad.any() for p in policy.critic.parameters())  # all of it here
    result = train(LMConfig(method="ppo", critic="model", **TINY))
    assert all(math.isfinite(row["value_loss"]) for row in result.metrics)


def test_rows_sharing_a_prompt_are_drawn_per_row_or_refused(tmp_path: Path) -> None:
    from ppokit.lm.tasks import file_task

    task = file_task([{"prompt": "1="}, {"prompt": "1="}, {"prompt": "2="}], lambda p, c: [0.0] * len(c), 4)
    draws = [task.prompt(random.Random(seed)) for seed in range(300)]
    assert 0.55 < draws.count("1=") / len(draws) < 0.78  # two rows of three: drawn 2/3 of the time
    with pytest.raises(ConfigError, match=r"lm.prompts: row 2 repeats the prompt '1=' with other columns"):
        file_task([{"prompt": "1=", "answer": 1}, {"prompt": "1=", "answer": 2}], lambda p, c, answer: [0.0], 4)


def test_a_model_folder_without_a_tokenizer_is_one_line(tmp_path: Path) -> None:
    train(LMConfig(run_dir=str(tmp_path / "run"), **TINY))
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        (bare / name).write_bytes((tmp_path / "run" / "model" / name).read_bytes())
    with pytest.raises(ConfigError, match=r"lm.model: .*bare holds no tokenizer"):
        train(LMConfig(model=str(bare), **TINY))


def test_sft_alone_refuses_prompts_and_a_used_folder(tmp_path: Path) -> None:
    from ppokit.lm.trainer import supervise

    train(LMConfig(run_dir=str(tmp_path / "run"), **TINY))
    with pytest.raises(ConfigError, match=r"lm.run_dir: .* already holds a model or a run"):
        supervise(LMConfig(run_dir=str(tmp_path / "run"), **TINY))
    rows = _prompts(tmp_path, [{"prompt": "1="}])
    with pytest.raises(ConfigError, match=r"lm.prompts: ppokit lm sft imitates a built-in task's answers"):
        supervise(LMConfig(prompts=rows, reward="tests.unit.test_lm_trainer:_nan", run_dir=str(tmp_path / "s"),
                           **{**TINY, "sft_steps": 0}))  # fmt: skip


def test_no_weight_decay_unless_asked() -> None:
    from ppokit.lm.policy import AdamW

    layer = torch.nn.Linear(2, 2)
    assert AdamW([layer], 1e-3).optimizer.param_groups[0]["weight_decay"] == 0.0
    assert AdamW([layer], 1e-3, 0.1).optimizer.param_groups[0]["weight_decay"] == 0.1


def test_a_folder_transformers_cannot_load_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "no-such-architecture"}')
    with pytest.raises(ConfigError, match=r"lm.model: cannot load .*"):
        train(LMConfig(model=str(tmp_path), **TINY))
