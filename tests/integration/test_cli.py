"""The CLI end to end, in subprocesses: train, Ctrl-C, resume, eval, and every bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import ppokit as ppokit_api
from ppokit.io import checkpoint as ckpt
from ppokit.presets import PRESETS
from tests.conftest import tiny_config

TINY = ["--num-envs", "4", "--num-steps", "16", "--minibatch-size", "32", "--update-epochs", "2",
        "--no-progress", "--no-tensorboard", "--eval-episodes", "2", "--seed", "5"]  # fmt: skip
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def signal_after(cmd: list[str], metrics: Path, lines: int, sig: int, delay: float = 0.0) -> tuple[int, str, str]:
    """Start ``cmd``, wait until ``metrics`` holds ``lines`` lines (and ``delay`` seconds more),
    send ``sig``; its exit code, stdout and stderr."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and len(metrics.read_text().splitlines()) >= lines):
        time.sleep(0.02)
    time.sleep(delay)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    return proc.returncode, stdout, stderr


def ppokit(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ppokit", *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=ENV
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ppokit: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def test_train_then_eval(tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = ppokit("train", *TINY, "--total-steps", "256", "--run-dir", str(run))
    assert result.returncode == 0, result.stderr
    assert f"Run folder: {run}" in result.stdout
    assert "Final evaluation (2 episodes, deterministic): return" in result.stdout
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 4

    result = ppokit("eval", str(run), "--episodes", "3")
    assert result.returncode == 0, result.stderr
    assert "3 episodes (deterministic): return mean" in result.stdout
    written = json.loads((run / "eval-deterministic-3.json").read_text())
    assert len(written["returns"]) == 3
    assert {"eval_return_mean", "eval_return_std", "eval_return_min", "eval_return_max"} <= written.keys()
    (run / "eval-deterministic-3.json").write_text("{}")
    again = ppokit("eval", str(run), "--episodes", "3")  # an evaluation run again replaces its file
    assert again.returncode == 0, again.stderr
    assert len(json.loads((run / "eval-deterministic-3.json").read_text())["returns"]) == 3

    out = tmp_path / "sampled.json"
    result = ppokit("eval", str(run / "checkpoints" / "last.pt"), "--sampled", "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["deterministic"] is False


def test_toml_config_with_flag_overrides(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text("seed = 9\ntotal_steps = 128\n[algo]\nlearning_rate = 0.001\nnum_steps = 16\n")
    run = tmp_path / "run"
    result = ppokit("train", "--config", str(config), *TINY, "--learning-rate", "0.002", "--run-dir", str(run))
    assert result.returncode == 0, result.stderr
    saved = (run / "config.toml").read_text()
    assert "learning_rate = 0.002" in saved  # the flag beats the file
    assert "seed = 5" in saved  # TINY's --seed beats the file's 9
    assert "total_steps = 128" in saved  # the file beats the preset


def test_ctrl_c_writes_checkpoint_exits_zero_and_resumes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "ppokit", "train", *TINY, "--total-steps", "200000", "--run-dir", str(run)]
    metrics = run / "metrics.jsonl"
    code, stdout, stderr = signal_after(cmd, metrics, 3, signal.SIGINT)
    assert code == 0, stderr
    assert "resume with: ppokit train --resume" in stdout
    data = ckpt.load(run)
    logged = len(metrics.read_text().splitlines())
    assert data["state"]["update"] == logged >= 3
    assert data["state"]["update"] < 200000 // 64


def test_resume_finishes_an_interrupted_run(tmp_path: Path) -> None:
    ppokit_api.train(tiny_config(tmp_path / "run"), stop_after=2)
    result = ppokit("train", "--resume", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    assert "Final evaluation" in result.stdout
    assert ckpt.load(tmp_path / "run")["state"]["update"] == 6


def test_presets_are_listed_with_sources() -> None:
    result = ppokit("presets")
    assert result.returncode == 0
    for name in ("CartPole-v1", "Pendulum-v1", "LunarLander-v3", "Hopper-v5", "HalfCheetah-v5"):
        assert name in result.stdout
    assert result.stdout.count("source:") == len(PRESETS)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--env", "CartPole-v2"], ["env.id", "CartPole-v1"]),
        (["--clip-coef", "0"], ["clip_coef", "allowed: (0.0, 1.0)"]),
        (["--gamma", "1.5"], ["gamma", "(0.0, 1.0]"]),
        (["--minibatch-size", "100"], ["minibatch_size", "does not divide"]),
        (["--update-epochs", "40"], ["update_epochs", "--allow-unsafe"]),
        (["--clip-coef", "0.5"], ["clip_coef", "--allow-unsafe"]),
        (["--env", "Blackjack-v1", "--preset", "none"], ["observation_space", "Box"]),
        (["--preset", "Walker"], ["preset", "CartPole-v1, Pendulum-v1, LunarLander-v3"]),
        (["--config", "/nonexistent.toml"], ["config", "does not exist"]),
    ],
)
def test_bad_train_input_is_one_line_exit_2(tmp_path: Path, args: list[str], fragments: list[str]) -> None:
    result = ppokit("train", "--no-progress", "--run-dir", str(tmp_path / "run"), *args)
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "run").exists()  # nothing written


def test_bad_toml_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[algo]\nclip = 0.1\n")
    assert_one_line_error(ppokit("train", "--config", str(config)), "algo.clip", "unknown key")


def test_an_old_name_in_a_toml_file_is_one_line_naming_the_new_one(tmp_path: Path) -> None:
    config = tmp_path / "old.toml"
    config.write_text("[algo]\nmethod = 'ppo-kl'\nkl_target = 0.02\n")
    result = ppokit("train", "--config", str(config), "--run-dir", str(tmp_path / "run"))
    assert_one_line_error(result, "algo.kl_target", "renamed to algo.ppo_kl.target")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("dotted", "short"),
    [
        (["--algo.ppo-kl.target", "0.02"], ["--kl-target", "0.02"]),
        (["--algo.clip-coef", "0.1"], ["--clip-coef", "0.1"]),
        (["--env.id", "Acrobot-v1"], ["--env", "Acrobot-v1"]),
        (["--algo.method", "a2c"], ["--algo", "a2c"]),
        (["--algo.adaptive-clip.enabled"], ["--adaptive-clip"]),
        (["--algo.group.scale", "none"], ["--no-group-scale-std"]),
        (["--no-algo.norm-adv", "--allow-unsafe"], ["--no-norm-adv", "--allow-unsafe"]),
    ],
)
def test_dotted_flags_and_their_short_aliases_give_the_same_config(dotted: list[str], short: list[str]) -> None:
    from ppokit.flags import build_parser, resolve_config

    parser = build_parser()
    a = resolve_config(parser.parse_args(["train", *dotted]))
    b = resolve_config(parser.parse_args(["train", *short]))
    assert a == b != resolve_config(parser.parse_args(["train"]))


def test_unsafe_allowed_with_flag(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = [*TINY, "--update-epochs", "31", "--allow-unsafe", "--total-steps", "64", "--run-dir", str(run)]
    result = ppokit("train", *args)
    assert result.returncode == 0, result.stderr


def test_bad_checkpoints_for_eval(tmp_path: Path) -> None:
    assert_one_line_error(ppokit("eval", str(tmp_path / "missing.pt")), "does not exist")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage")
    assert_one_line_error(ppokit("eval", str(corrupt)), "corrupt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    assert_one_line_error(ppokit("eval", str(tmp_path / "foreign.pt")), "not a ppokit checkpoint")
    assert corrupt.read_bytes() == b"\x00garbage"  # nothing written over


def test_resume_of_a_folder_without_run(tmp_path: Path) -> None:
    assert_one_line_error(ppokit("train", "--resume", str(tmp_path)), "does not exist")


def test_resume_refuses_flags_it_would_ignore(tmp_path: Path) -> None:
    result = ppokit("train", "--resume", str(tmp_path), "--total-steps", "5000")
    assert_one_line_error(result, "resume", "keeps its saved config", "total_steps")


def test_help_documents_every_option() -> None:
    result = ppokit("train", "--help")
    assert result.returncode == 0
    for flag in ("--env", "--seed", "--total-steps", "--preset", "--run-dir", "--resume", "--device",
                 "--clip-coef", "--target-kl", "--norm-obs", "--hidden-sizes", "--allow-unsafe"):  # fmt: skip
        assert flag in result.stdout
    assert "(default: 0.2)" in result.stdout  # clip_coef's help shows its default
    for flag in ("--algo.clip-coef", "--algo.ppo-kl.target", "--algo.adaptive-clip.target", "--algo.group.size",
                 "--env.num-envs", "--kl-target", "--clip-kl-target", "--group-size"):  # fmt: skip
        assert flag in result.stdout


@pytest.mark.parametrize("verb", ["train", "eval", "experiment", "report", "plan", "compare", "presets"])
def test_every_verb_has_help(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    from ppokit.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main([verb, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: ppokit {verb}" in capsys.readouterr().out


def test_lm_train_runs_the_rl_loop_and_refuses_bad_input() -> None:
    pytest.importorskip("transformers")
    ok = ppokit("lm", "train", "--steps", "2", "--sft-steps", "2", "--eval-prompts", "8", "--method", "dr-grpo",
                "--arch", "llama", "--clip-high", "0.28")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "dr-grpo on sort, 2 steps: greedy success" in ok.stdout
    assert_one_line_error(ppokit("lm", "train", "--minibatch-size", "5"), "lm.minibatch_size", "divisor")
    assert_one_line_error(ppokit("lm", "train", "--method", "sarsa"), "--method", "invalid choice")
    ppo = ppokit("lm", "train", "--steps", "2", "--sft-steps", "2", "--eval-prompts", "8", "--method", "ppo",
                 "--group-size", "1", "--prompts-per-step", "16", "--minibatch-size", "16")  # fmt: skip
    assert ppo.returncode == 0 and "ppo on sort, 2 steps" in ppo.stdout, ppo.stderr
    assert "sort:" in ppokit("lm", "tasks").stdout


def test_lm_sft_then_rl_from_it_then_resume_and_eval(tmp_path: Path) -> None:
    """The practitioner's path on the command line: the SFT stage alone, RL from its model,
    resume to extend the run, and the evaluation of the finished run."""
    pytest.importorskip("transformers")
    sft = ppokit("lm", "sft", "--sft-steps", "3", "--eval-prompts", "8", "--run-dir", str(tmp_path / "sft"))
    assert sft.returncode == 0 and "SFT on sort, 3 steps: greedy success" in sft.stdout, sft.stderr
    run = tmp_path / "rl"
    rl = ppokit("lm", "train", "--model", str(tmp_path / "sft" / "model"), "--sft-steps", "0", "--steps", "2",
                "--eval-prompts", "8", "--run-dir", str(run))  # fmt: skip
    assert rl.returncode == 0 and "grpo on sort, 2 steps" in rl.stdout, rl.stderr
    more = ppokit("lm", "train", "--resume", str(run), "--steps", "3")
    assert more.returncode == 0 and "grpo on sort, 3 steps" in more.stdout, more.stderr
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3
    ev = ppokit("lm", "eval", str(run), "--prompts-n", "8", "--samples", "2")
    assert ev.returncode == 0 and "8 greedy completions: success" in ev.stdout and " -> " in ev.stdout, ev.stderr
    assert_one_line_error(ppokit("lm", "train", "--resume", str(run), "--method", "ppo"), "resume", "drop method")
    assert_one_line_error(ppokit("lm", "eval", str(tmp_path / "nowhere")), "run", "no language-model run")


def test_lm_ctrl_c_checkpoints_the_step_and_resumes(tmp_path: Path) -> None:
    """The first Ctrl-C finishes the RL step, writes a checkpoint (save_every is far away) and
    exits 0 with the resume command; resume then continues from that step."""
    pytest.importorskip("transformers")
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "ppokit", "lm", "train", "--sft-steps", "2", "--steps", "5000", "--save-every",
           "4000", "--eval-prompts", "8", "--run-dir", str(run)]  # fmt: skip
    metrics = run / "metrics.jsonl"
    code, stdout, stderr = signal_after(cmd, metrics, 2, signal.SIGINT)
    assert code == 0, stderr
    assert "resume with: ppokit lm train --resume" in stdout
    logged = len(metrics.read_text().splitlines())
    assert 2 <= logged < 5000 and (run / "checkpoints" / "last" / "state.pt").is_file()
    more = ppokit("lm", "train", "--resume", str(run), "--steps", str(logged + 1))
    assert more.returncode == 0, more.stderr
    assert len(metrics.read_text().splitlines()) == logged + 1 and (run / "model" / "config.json").is_file()
