"""The trainer as a system: smoke, determinism, checkpoints, resume, non-finite stops."""

from __future__ import annotations

import importlib.util
import json
import math
import tomllib
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import ppokit
from ppokit.config import from_dict, override
from ppokit.core.advantages import gae
from ppokit.diagnostics import replay
from ppokit.errors import CheckpointError, ConfigError, NonFiniteError
from ppokit.io import checkpoint as ckpt
from ppokit.presets import PRESETS
from tests.conftest import tiny_config

TIME_KEYS = {"sps", "time_elapsed"}
requires_mujoco = pytest.mark.skipif(importlib.util.find_spec("mujoco") is None, reason="needs the mujoco extra")


def read_metrics(run_dir: Path, name: str = "metrics.jsonl") -> list[dict[str, float]]:
    if not (run_dir / name).exists():
        return []
    lines = (run_dir / name).read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIME_KEYS} for line in lines]


def test_smoke_writes_a_complete_run_folder(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "run", tensorboard=True)
    result = ppokit.train(config)
    assert result.run_dir == tmp_path / "run"
    assert result.updates == config.num_updates == 6
    assert result.global_step == 6 * 64
    metrics = read_metrics(result.run_dir)
    assert len(metrics) == 6
    expected = {"policy_loss", "value_loss", "entropy", "approx_kl", "approx_kl_k1", "clip_fraction",
                "explained_variance", "grad_norm", "learning_rate", "ent_coef", "minibatch_steps",
                "episode_return_mean", "episode_return_std", "episode_return_min", "episode_return_max",
                "episode_length_mean", "global_step", "update"}  # fmt: skip
    assert expected <= metrics[0].keys()
    assert metrics[0]["minibatch_steps"] == 2 * 2
    assert metrics[0]["learning_rate"] == pytest.approx(2.5e-4)
    assert metrics[-1]["learning_rate"] < metrics[0]["learning_rate"]  # annealed
    assert (result.run_dir / "config.toml").is_file()
    assert (result.run_dir / "checkpoints" / "last.pt").is_file()
    assert list((result.run_dir / "tensorboard").glob("events.out.tfevents.*"))
    evaluation = json.loads((result.run_dir / "eval.json").read_text())
    assert evaluation["eval_episodes"] == 2 and evaluation["deterministic"] is True
    assert result.evaluation is not None and len(result.evaluation.returns) == 2


def test_same_seed_same_metrics(tmp_path: Path) -> None:
    a = ppokit.train(tiny_config(tmp_path / "a"))
    b = ppokit.train(tiny_config(tmp_path / "b"))
    assert read_metrics(a.run_dir) == read_metrics(b.run_dir)
    assert a.evaluation is not None and b.evaluation is not None
    assert a.evaluation.returns == b.evaluation.returns


def test_other_seed_other_metrics(tmp_path: Path) -> None:
    a = ppokit.train(tiny_config(tmp_path / "a"))
    b = ppokit.train(tiny_config(tmp_path / "b", seed=4))
    assert read_metrics(a.run_dir) != read_metrics(b.run_dir)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"id": "Pendulum-v1", "norm_obs": True, "norm_reward": True, "vectorization": "sync"},
        {"vectorization": "sync", "target_kl": 0.001, "eval_every": 128},
        pytest.param({"id": "Hopper-v5", "norm_obs": True, "norm_reward": True}, marks=requires_mujoco),
    ],
    ids=["cartpole-native", "pendulum-normalized", "cartpole-sync-target-kl-evals", "hopper-mujoco"],
)
def test_stopped_and_resumed_run_logs_the_same_metrics(tmp_path: Path, overrides: dict[str, object]) -> None:
    straight = ppokit.train(tiny_config(tmp_path / "straight", **overrides))
    first = ppokit.train(tiny_config(tmp_path / "resumed", **overrides), stop_after=3)
    assert first.interrupted and first.updates == 3
    assert len(read_metrics(first.run_dir)) == 3
    second = ppokit.train(resume=first.run_dir)
    assert not second.interrupted and second.updates == 6
    assert read_metrics(second.run_dir) == read_metrics(straight.run_dir)
    assert read_metrics(second.run_dir, "evals.jsonl") == read_metrics(straight.run_dir, "evals.jsonl")
    assert (second.run_dir / "diagnostics.json").read_text() == (straight.run_dir / "diagnostics.json").read_text()
    assert second.evaluation is not None and straight.evaluation is not None
    assert second.evaluation.returns == straight.evaluation.returns


def test_resume_drops_metrics_logged_after_the_checkpoint(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "run", checkpoint_every=2)
    ppokit.train(config, stop_after=3)  # checkpoints at update 2 and at the stop (3)
    data = ckpt.load(tmp_path / "run")
    assert data["state"]["update"] == 3
    # Simulate a crash after update 4 was logged but before it was saved.
    with (tmp_path / "run" / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"global_step": 256, "update": 4.0}) + "\n")
    ppokit.train(resume=tmp_path / "run")
    updates = [m["update"] for m in read_metrics(tmp_path / "run")]
    assert updates == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_checkpoint_holds_everything_to_resume(tmp_path: Path) -> None:
    ppokit.train(tiny_config(tmp_path / "run", norm_obs=True, norm_reward=True), stop_after=2)
    data = ckpt.load(tmp_path / "run" / "checkpoints" / "last.pt")
    assert data["format"] == "ppokit-checkpoint" and data["version"] == 5
    assert data["state"]["global_step"] == 128 and data["state"]["update"] == 2
    assert {"torch", "shuffle", "numpy", "python"} <= data["state"]["rng"].keys()
    assert "obs_norm.mean" in data["state"]["policy"] and data["state"]["policy"]["obs_norm.count"] > 100
    assert data["state"]["return_norm"]["count"] > 100
    assert data["state"]["optimizer"]["state"]
    assert data["env_state"] is not None
    assert data["config"]["env"]["norm_obs"] is True


def test_checkpoint_loads_with_weights_only(tmp_path: Path) -> None:
    ppokit.train(tiny_config(tmp_path / "run"), stop_after=1)
    torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)  # raises if not plain data


def test_atomic_write_leaves_old_file_when_interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "file.txt"
    ckpt.atomic_write_text(target, "old")

    def failing_replace(src: str, dst: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt.os, "replace", failing_replace)
    with pytest.raises(KeyboardInterrupt):
        ckpt.atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]  # no temp file left behind


def test_existing_run_is_not_overwritten(tmp_path: Path) -> None:
    ppokit.train(tiny_config(tmp_path / "run"), stop_after=1)
    before = (tmp_path / "run" / "checkpoints" / "last.pt").read_bytes()
    with pytest.raises(ConfigError, match=r"run_dir: .* already holds a run"):
        ppokit.train(tiny_config(tmp_path / "run"))
    assert (tmp_path / "run" / "checkpoints" / "last.pt").read_bytes() == before


class NaNRewardAfter(gym.Wrapper[np.ndarray, int, np.ndarray, int]):
    """CartPole whose reward turns NaN after a number of steps."""

    def __init__(self, steps: int) -> None:
        super().__init__(gym.make("CartPole-v1"))
        self.countdown = steps

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, object]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.countdown -= 1
        return obs, float("nan") if self.countdown < 0 else float(reward), terminated, truncated, info


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    """A NaN that reaches the loss (here poisoned into the third update's advantages) stops
    training with the update named; the checkpoint of update 2 is the last, and finite."""
    from ppokit.classic.hooks import Hooks, RolloutEvent

    def poison(event: RolloutEvent) -> None:
        if event.state.update == 2:
            event.batch.advantages[0] = math.nan

    config = tiny_config(tmp_path / "run", checkpoint_every=1)
    with pytest.raises(NonFiniteError, match=r"non-finite \w+ at update 3") as info:
        ppokit.train(config, hooks=Hooks(on_rollout=[poison]))
    assert info.value.update == 3
    data = ckpt.load(tmp_path / "run")
    assert data["state"]["update"] == 2
    assert all(torch.isfinite(v).all() for v in data["state"]["policy"].values())


def test_a_nan_reward_from_the_env_is_named_where_it_enters(tmp_path: Path) -> None:
    from ppokit.errors import NonFiniteEnvError

    config = tiny_config(tmp_path / "run", checkpoint_every=1, vectorization="sync")
    with pytest.raises(NonFiniteEnvError, match=r"CartPole-v1 during update 3 .* non-finite reward \(nan\)"):
        ppokit.train(config, env_factory=lambda: NaNRewardAfter(16 * 2 + 5))
    assert ckpt.load(tmp_path / "run")["state"]["update"] == 2


def test_unsupported_observation_space_is_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"observation_space: .*Tuple.* allowed: Box"):
        ppokit.train(tiny_config(tmp_path / "run", id="Blackjack-v1"))
    assert not (tmp_path / "run").exists()


def test_env_factory_with_discrete_start_and_box_actions(tmp_path: Path) -> None:
    result = ppokit.train(
        tiny_config(tmp_path / "run", vectorization="sync"),
        env_factory=lambda: gym.make("Pendulum-v1"),
    )
    assert result.evaluation is not None and len(result.evaluation.returns) == 2


def test_load_returns_policy_applying_saved_normalization(tmp_path: Path) -> None:
    ppokit.train(tiny_config(tmp_path / "run", norm_obs=True))
    policy = ppokit.load(tmp_path / "run")
    assert policy.model.obs_norm.count > 100
    obs, _ = gym.make("CartPole-v1").reset(seed=0)
    action = policy.act(obs, deterministic=True)
    assert action.shape == () and int(action) in (0, 1)
    batch = policy.act(np.stack([obs, obs]), deterministic=True)
    assert batch.shape == (2,) and batch[0] == batch[1] == action
    # The same network without normalization sees other inputs: normalization is applied.
    raw = policy.model(torch.as_tensor(obs[None]))[0]
    normalized = policy.model(policy.model.normalize(torch.as_tensor(obs[None])))[0]
    assert not torch.allclose(raw, normalized)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a checkpoint", "corrupt or not a ppokit checkpoint"),
        (None, "does not exist"),
    ],
)
def test_bad_checkpoint_files(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "x.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        ppokit.load(path)


def test_foreign_and_mismatched_checkpoints(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a ppokit checkpoint"):
        ppokit.load(foreign)
    ppokit.train(tiny_config(tmp_path / "run"), stop_after=1)
    data = ckpt.load(tmp_path / "run")
    data["config"]["policy"]["hidden_sizes"] = [8]
    ckpt.save(tmp_path / "mismatch.pt", data)
    with pytest.raises(CheckpointError, match="weights do not fit"):
        ppokit.load(tmp_path / "mismatch.pt")
    data["version"] = 99
    torch.save(data, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="format version 99"):
        ppokit.load(tmp_path / "future.pt")


def test_box2d_env_trains_and_resume_warns_that_episodes_restart(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "run", id="LunarLander-v3", total_steps=128, checkpoint_every=1)
    ppokit.train(config, stop_after=1)
    assert ckpt.load(tmp_path / "run")["env_state"] is None  # Box2D worlds are not plain data
    with pytest.warns(UserWarning, match="episodes in flight .* restart"):
        result = ppokit.train(resume=tmp_path / "run")
    assert result.updates == 2 and result.evaluation is not None


def test_walker2d_preset_is_the_mujoco_preset_with_a_smaller_std_and_no_value_clipping() -> None:
    from ppokit.presets import MUJOCO_OVERRIDES

    walker = PRESETS["Walker2d-v5"].overrides
    changed = {k: v for k, v in walker.items() if MUJOCO_OVERRIDES.get(k) != v}
    assert changed == {"init_log_std": -0.5, "clip_vloss": False}
    assert set(walker) == set(MUJOCO_OVERRIDES) | set(changed)
    assert all(PRESETS[env].overrides == MUJOCO_OVERRIDES for env in ("Hopper-v5", "HalfCheetah-v5", "Humanoid-v5"))


@requires_mujoco
def test_hopper_preset_smoke(tmp_path: Path) -> None:
    """The Hopper-v5 preset for two updates: the run completes, every metric is finite (no return asked)."""
    config = tiny_config(tmp_path / "run", id="Hopper-v5", **{**PRESETS["Hopper-v5"].overrides, "total_steps": 4096})
    assert (config.env.num_envs, config.algo.num_steps, config.algo.update_epochs) == (4, 512, 10)
    result = ppokit.train(config)
    assert not result.interrupted and result.updates == 2 and result.global_step == 4096
    metrics = read_metrics(result.run_dir)
    assert len(metrics) == 2
    assert all(math.isfinite(v) for m in metrics for v in m.values()), metrics
    assert metrics[0]["episode_length_mean"] > 0  # episodes ended and were counted
    data = ckpt.load(result.run_dir)  # plain data only: it loads with weights_only
    assert data["env_state"] is not None  # MuJoCo state is plain data: resume is exact
    evaluation = json.loads((result.run_dir / "eval.json").read_text())
    assert evaluation["eval_episodes"] == 2 and math.isfinite(evaluation["eval_return_mean"])


def test_broken_learning_rate_fires_health_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tiny_config(tmp_path / "run", learning_rate=0.1, anneal_lr=False, max_grad_norm=100.0, total_steps=64 * 40)
    ppokit.train(config)
    summary = json.loads((tmp_path / "run" / "diagnostics.json").read_text())
    assert summary["total_warnings"] >= 1
    assert summary["rules"]["entropy_collapse"]["warnings"] == 1
    assert "ppokit health: update" in capsys.readouterr().err
    assert "raise ent_coef" in summary["rules"]["entropy_collapse"]["advice"]


def test_replaying_a_runs_metrics_gives_its_diagnostics_and_other_thresholds_their_own(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "run", learning_rate=0.1, anneal_lr=False, max_grad_norm=100.0, total_steps=64 * 40,
                         clip_fraction_max=0.2, clip_fraction_patience=2, grad_norm_max=1.0)  # fmt: skip
    ppokit.train(config)
    folder = tmp_path / "run"
    lines = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    saved = from_dict(tomllib.loads((folder / "config.toml").read_text()))
    live = json.loads((folder / "diagnostics.json").read_text())
    assert live["total_warnings"] >= 2  # more than one rule, so the replay has something to match
    assert replay(saved, lines).summary() == live
    stricter = override(saved, {"clip_fraction_max": 0.01, "clip_fraction_patience": 1})
    replayed = replay(stricter, lines).summary()["rules"]["clip_fraction_high"]
    first = next(line["update"] for line in lines if line["clip_fraction"] > 0.01)
    assert replayed["warnings"] >= 1 and replayed["episodes"][0]["first_update"] == first


def test_periodic_evaluation_keeps_best_checkpoint(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "run", eval_every=128, total_steps=64 * 6)
    ppokit.train(config)
    evals = [json.loads(line) for line in (tmp_path / "run" / "evals.jsonl").read_text().splitlines()]
    assert [e["global_step"] for e in evals] == [128, 256, 384]
    best = ckpt.load(tmp_path / "run" / "checkpoints" / "best.pt")
    assert best["state"]["best_eval"] == max(e["eval_return_mean"] for e in evals)
    assert best["state"]["global_step"] in [e["global_step"] for e in evals]


class PickTwo(gym.Env[np.ndarray, np.ndarray]):
    """A tiny env with MultiDiscrete actions: reward 1 for each sub-action that matches the cue."""

    observation_space = gym.spaces.Box(0.0, 1.0, (3,), np.float32)
    action_space = gym.spaces.MultiDiscrete([3, 2])

    def reset(self, *, seed: int | None = None, options: dict[str, object] | None = None) -> tuple[np.ndarray, dict]:  # type: ignore[type-arg]
        super().reset(seed=seed)
        self.cue = int(self.np_random.integers(3))
        self.t = 0
        return np.eye(3, dtype=np.float32)[self.cue], {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:  # type: ignore[type-arg]
        self.t += 1
        reward = float(action[0] == self.cue) + float(action[1] == self.cue % 2)
        return np.eye(3, dtype=np.float32)[self.cue], reward, False, self.t >= 5, {}


def test_multidiscrete_actions_learn(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "run", vectorization="sync", total_steps=64 * 40, learning_rate=3e-3,
                         update_epochs=4)  # fmt: skip
    result = ppokit.train(config, env_factory=PickTwo)
    assert result.evaluation is not None
    assert result.evaluation.mean >= 9.0  # 5 steps x 2 sub-actions: 10 is optimal, random ~4.2


def test_async_vector_envs_train_and_resume(tmp_path: Path) -> None:
    straight = ppokit.train(tiny_config(tmp_path / "a", vectorization="async"))
    ppokit.train(tiny_config(tmp_path / "b", vectorization="async"), stop_after=2)
    with pytest.warns(UserWarning, match="restart"):  # env state lives in worker processes
        resumed = ppokit.train(resume=tmp_path / "b")
    assert read_metrics(resumed.run_dir)[-1]["update"] == 6.0
    assert straight.evaluation is not None and resumed.evaluation is not None


def test_checkpoint_lacking_a_resume_key_is_refused(tmp_path: Path) -> None:
    ppokit.train(tiny_config(tmp_path / "run"), stop_after=1)
    data = ckpt.load(tmp_path / "run")
    del data["state"]["rollout"]
    ckpt.save(tmp_path / "run" / "checkpoints" / "last.pt", data)  # checksummed: the damage is in the content
    with pytest.raises(CheckpointError, match="lacks rollout"):
        ppokit.train(resume=tmp_path / "run")


@pytest.mark.parametrize("bootstrap", [True, False])
def test_bootstrap_truncation_decides_what_cuts_the_bootstrap(tmp_path: Path, bootstrap: bool) -> None:
    """GAE gets ``terminated`` alone by default; with bootstrapping off, truncations too."""
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def check(event: ppokit.RolloutEvent) -> None:
        buf, algo = event.rollout, config.algo
        dones = torch.maximum(buf.terminated, buf.truncated)
        cuts, other = (buf.terminated, dones) if bootstrap else (dones, buf.terminated)
        trained = event.batch.advantages.view_as(buf.rewards)
        expected = gae(buf.rewards, buf.values, buf.next_values, cuts, dones, algo.gamma, algo.gae_lambda)
        assert torch.allclose(trained, expected * buf.valid)
        if dones.sum() > 0:  # the other choice would have trained on other advantages
            wrong = gae(buf.rewards, buf.values, buf.next_values, other, dones, algo.gamma, algo.gae_lambda)
            assert not torch.allclose(trained, wrong * buf.valid)
        seen.append((cuts.clone(), dones.clone()))

    # Pendulum never terminates; its 200-step time limit truncates every episode.
    config = tiny_config(tmp_path / "run", id="Pendulum-v1", num_envs=2, num_steps=256, minibatch_size=128,
                         total_steps=512, bootstrap_truncation=bootstrap)  # fmt: skip
    ppokit.train(config, hooks=ppokit.Hooks(on_rollout=[check]))
    cuts = torch.cat([t for t, _ in seen])
    dones = torch.cat([d for _, d in seen])
    assert dones.sum() > 0  # truncations happened
    assert torch.equal(cuts, dones if not bootstrap else torch.zeros_like(dones))


@pytest.mark.parametrize(
    "overrides",
    [
        {"norm_obs": True},  # CartPole: terminations
        {
            "id": "Pendulum-v1",
            "num_envs": 2,
            "num_steps": 256,
            "minibatch_size": 128,
            "total_steps": 512,
            "norm_obs": True,
            "norm_reward": True,
        },  # every episode truncated
    ],
)
def test_recomputed_targets_under_the_behaviour_critic_are_the_collected_ones(
    tmp_path: Path, overrides: dict[str, object]
) -> None:
    """Before the first step the critic is the behaviour one, so recomputing must give back
    the collected advantages and returns: same values, same next values, same masking."""
    from ppokit.classic.batch import recomputed_targets
    from ppokit.classic.trainer import advantage_settings
    from ppokit.methods import METHODS

    checked: list[int] = []

    def check(event: ppokit.RolloutEvent) -> None:
        method, settings = METHODS[config.algo.method], advantage_settings(config)
        advantages, returns = recomputed_targets(event.rollout, method, settings, event.state.policy)
        assert torch.allclose(advantages, event.batch.advantages, atol=1e-5)
        assert torch.allclose(returns, event.batch.returns, atol=1e-5)
        checked.append(1)

    config = tiny_config(tmp_path / "run", recompute_advantages=True, **overrides)
    result = ppokit.train(config, hooks=ppokit.Hooks(on_rollout=[check]))
    assert len(checked) == result.config.num_updates
    assert result.evaluation is not None and math.isfinite(result.evaluation.mean)


@pytest.mark.parametrize("method", ["reinforce", "grpo"])
def test_recompute_advantages_needs_a_critic(tmp_path: Path, method: str) -> None:
    with pytest.raises(ConfigError, match=r"recompute_advantages: .* learns no critic") as info:
        tiny_config(tmp_path / "run", method=method, recompute_advantages=True, group_size=2)
    assert info.value.field == "recompute_advantages"


def test_fresh_and_resumed_runs_update_the_policy_through_its_flat_parameters(tmp_path: Path) -> None:
    """Every update steps a FlatAdam whose flat tensor still holds the policy's parameters,
    before and after a resume (loading a checkpoint must copy in place, not re-point them)."""
    before: list[tuple[bool, torch.Tensor]] = []
    seen: list[bool] = []

    def record(event: ppokit.RolloutEvent) -> None:
        policy, optimizer = event.state.policy, event.state.optimizer
        owned = {id(p) for p in policy.parameters()} == {id(p) for p in optimizer.params}
        before.append((owned, optimizer.flat.detach().clone()))

    def check(event: ppokit.UpdateEvent) -> None:
        optimizer = event.state.optimizer
        owned, flat = before[-1]
        moved = not torch.equal(flat, torch.cat([p.detach().reshape(-1) for p in optimizer.params]))
        seen.append(owned and optimizer.is_flat() and moved)

    hooks = ppokit.Hooks(on_rollout=[record], on_update=[check])
    config = tiny_config(tmp_path / "run")
    ppokit.train(config, stop_after=2, hooks=hooks)
    ppokit.train(resume=tmp_path / "run", hooks=hooks)
    assert len(seen) == config.num_updates and all(seen)


def test_only_rank_zero_writes_and_each_rank_seeds_its_own_envs(tmp_path: Path) -> None:
    from ppokit.runtime import Process

    # Each as one rank of two that does not talk to the other (the collectives: test_parallel.py).
    lone = ppokit.train(tiny_config(tmp_path / "lone"))
    rank0 = ppokit.train(tiny_config(tmp_path / "rank0"), process=Process(0, 2))
    rank1 = ppokit.train(tiny_config(tmp_path / "rank1"), process=Process(1, 2))
    assert not (tmp_path / "rank1").exists()  # rank 1 wrote nothing
    assert rank0.updates == rank1.updates == lone.updates // 2  # two ranks share total_steps
    assert [r["episode_return_mean"] for r in read_metrics(rank0.run_dir)][:1] == [
        r["episode_return_mean"] for r in read_metrics(lone.run_dir)][:1]  # rank 0 has the run's seed  # fmt: skip
    assert rank1.evaluation is not None
    assert rank1.metrics["episode_return_mean"] != rank0.metrics["episode_return_mean"]  # its own seed


def test_train_restores_the_callers_torch_threads(tmp_path: Path) -> None:
    before = torch.get_num_threads()
    ppokit.train(tiny_config(tmp_path / "run", torch_threads=2, total_steps=128))
    assert torch.get_num_threads() == before


def test_a_policy_trained_on_integer_observations_loads_and_acts_on_them(tmp_path: Path) -> None:
    from tests.unit.test_rollout import Pixels

    config = tiny_config(tmp_path / "run", vectorization="sync", total_steps=128)
    ppokit.train(config, env_factory=Pixels)
    policy = ppokit.load(tmp_path / "run", env_factory=Pixels)
    obs = np.array([0, 50, 100, 150], dtype=np.uint8)
    single = policy.act(obs)
    batch = policy.act(np.stack([obs, obs]))
    assert np.shape(single) == () and batch.shape == (2,) and int(single) == int(batch[0])
