"""ppokit against Stable-Baselines3's PPO: same hyperparameters, env, seeds and env steps.

:func:`to_sb3` maps a :class:`~ppokit.config.RunConfig` field by field onto SB3's ``PPO(...)``
arguments (the mapping and every difference that cannot be matched: ``docs/compare.md``).
:func:`compare` trains both libraries on every seed in worker processes, evaluates both final
policies with ppokit's protocol (:func:`ppokit.classic.evaluation.evaluate`: deterministic, 20
episodes, fresh envs with the same seeds), and writes::

    OUT/ppokit/seed-<s>/      an ordinary ppokit run folder (+ result.json)
    OUT/sb3/seed-<s>/         config.toml (the ppokit config mapped), sb3_kwargs.json,
                              metrics.jsonl (per rollout: global_step, episode_return_mean,
                              time_elapsed), eval.json, model.zip, result.json
    OUT/comparison.json       per-seed scores, aggregates with 95% bootstrap CIs, timings
    OUT/comparison.md         the same as a table
    OUT/comparison.png        learning curves and final evaluations

Training wall-clock is measured the same way for both: the sum over updates of the time from
the start of a rollout to the end of its update (ppokit's ``time_elapsed``); env construction,
checkpoints, logging and evaluation are outside it. Running the same call again reuses the
finished runs of the same configuration.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import EngFormatter
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize
from torch import Tensor, nn

from ppokit.analysis.curves import group_curves, load_run, mean_band
from ppokit.analysis.plots import PALETTE
from ppokit.analysis.stats import Estimate, aggregate, difference_ci
from ppokit.classic.evaluation import evaluate
from ppokit.classic.policy import MLP, ActorCritic
from ppokit.config import RunConfig, from_dict, override, to_dict
from ppokit.errors import ConfigError
from ppokit.io import checkpoint as ckpt
from ppokit.presets import PRESETS

LIBRARIES = ("ppokit", "sb3")
EVAL_EPISODES = 20
_MARKERS = {"mean": "o", "iqm": "D"}

# --- the mapping -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinearSchedule:
    """ppokit's linear annealing ``start * (1 - u / U)`` (update ``u`` of ``U``, 0-based) as an
    SB3 schedule of ``progress_remaining``.

    SB3 evaluates schedules after the rollout, at ``p = 1 - num_timesteps / total_timesteps =
    1 - (u + 1) / U``, and once at setup with ``p = 1``; so ppokit's factor is ``p + 1 / U``.
    """

    start: float
    updates: int

    def __call__(self, progress_remaining: float) -> float:
        return self.start * min(1.0, progress_remaining + 1.0 / self.updates)


class SharedTrunk(BaseFeaturesExtractor):
    """ppokit's shared actor-critic trunk as SB3's (shared) features extractor."""

    def __init__(self, observation_space: gym.spaces.Box, hidden_sizes: tuple[int, ...], activation: str) -> None:
        super().__init__(observation_space, features_dim=hidden_sizes[-1])
        self.trunk = MLP(int(np.prod(observation_space.shape)), hidden_sizes, activation, ortho=False)

    def forward(self, observations: Tensor) -> Tensor:
        out: Tensor = self.trunk(observations.flatten(1))
        return out


@dataclass(frozen=True)
class SB3Setup:
    """What SB3 needs to run ``config``: ``PPO(env, **ppo_kwargs)`` on ``n_envs`` envs (wrapped in
    ``VecNormalize(**vec_normalize)`` unless None), ``learn(total_timesteps)``, and the entropy
    weight moved from ``ent_coef`` to ``ent_coef_final`` by a callback (SB3 has no schedule)."""

    n_envs: int
    ppo_kwargs: dict[str, Any]
    vec_normalize: dict[str, Any] | None
    total_timesteps: int
    ent_coef_final: float | None


def to_sb3(config: RunConfig) -> SB3Setup:
    """Map a ppokit config onto SB3's PPO, field by field (table: ``docs/compare.md``).

    ConfigError for what SB3's PPO has no counterpart of: a method other than ``ppo``, a KL
    penalty towards the initial policy, an adaptive clip range, truncations treated as
    terminations (SB3 bootstraps them, as ppokit does by default)."""
    algo, env, pol = config.algo, config.env, config.policy
    for name, value, plain in (("method", algo.method, "ppo"), ("ref_kl_coef", algo.ref_kl_coef, 0.0),
                               ("adaptive_clip", algo.adaptive_clip, False),
                               ("bootstrap_truncation", algo.bootstrap_truncation, True),
                               ("recompute_advantages", algo.recompute_advantages, False)):  # fmt: skip
        if value != plain:
            raise ConfigError(name, f"{value!r} has no counterpart in SB3's PPO; allowed for compare: {plain!r}")
    updates = config.num_updates

    def schedule(value: float, anneal: bool) -> float | LinearSchedule:
        return LinearSchedule(value, updates) if anneal else value

    clip = schedule(algo.clip_coef, algo.anneal_clip)
    activation = nn.Tanh if pol.activation == "tanh" else nn.ReLU
    policy_kwargs: dict[str, Any] = {
        "activation_fn": activation,
        "ortho_init": pol.ortho_init,
        "log_std_init": pol.init_log_std,
        "optimizer_kwargs": {"eps": algo.adam_eps},
    }
    if pol.shared_trunk:
        policy_kwargs |= {
            "net_arch": [],
            "share_features_extractor": True,
            "features_extractor_class": SharedTrunk,
            "features_extractor_kwargs": {"hidden_sizes": pol.hidden_sizes, "activation": pol.activation},
        }
    else:
        policy_kwargs["net_arch"] = {"pi": list(pol.hidden_sizes), "vf": list(pol.hidden_sizes)}
    ppo_kwargs: dict[str, Any] = {
        "policy": "MlpPolicy",
        "n_steps": algo.num_steps,
        "batch_size": algo.minibatch_size,
        "n_epochs": algo.update_epochs,
        "learning_rate": schedule(algo.learning_rate, algo.anneal_lr),
        "gamma": algo.gamma,
        "gae_lambda": algo.gae_lambda,
        "clip_range": clip,
        "clip_range_vf": clip if algo.clip_vloss else None,
        "normalize_advantage": algo.norm_adv,
        "ent_coef": algo.ent_coef,
        "vf_coef": algo.vf_coef,
        "max_grad_norm": algo.max_grad_norm,
        # SB3 stops an update when the minibatch's KL (k3, as ppokit) exceeds 1.5 * target_kl.
        "target_kl": None if algo.target_kl is None else algo.target_kl / 1.5,
        "policy_kwargs": policy_kwargs,
        "device": config.device,
    }
    vec_normalize = None
    if env.norm_obs or env.norm_reward:
        vec_normalize = {"norm_obs": env.norm_obs, "norm_reward": env.norm_reward, "clip_obs": env.clip_obs,
                         "clip_reward": env.clip_reward, "gamma": algo.gamma}  # fmt: skip
    return SB3Setup(env.num_envs, ppo_kwargs, vec_normalize, updates * config.batch_size, algo.ent_coef_final)


def _describe(value: Any) -> Any:
    """JSON stand-in for what json cannot write (classes, schedules)."""
    return value.__name__ if isinstance(value, type) else repr(value)


# --- one run per worker process ----------------------------------------------------------------


@dataclass(frozen=True)
class RunRecord:
    """One finished run: its final evaluation and its training time."""

    library: str
    seed: int
    run_dir: str
    eval_mean: float
    eval_returns: list[float]
    train_time: float  # seconds, rollouts + updates only
    steps: int  # env steps trained
    job_time: float  # seconds of the whole job after imports (env setup, training, evaluation)

    @property
    def sps(self) -> float:
        return self.steps / self.train_time


def _run_job(library: str, config: RunConfig) -> RunRecord:
    """Worker: train one library on one seed with one torch thread."""
    torch.set_num_threads(1)
    started = time.perf_counter()
    run = _train_ppokit if library == "ppokit" else _train_sb3
    eval_returns, train_time, steps = run(config)
    assert config.run_dir is not None
    record = RunRecord(library, config.seed, config.run_dir, float(np.mean(eval_returns)), eval_returns,
                       train_time, steps, time.perf_counter() - started)  # fmt: skip
    payload = {"config": to_dict(config), **asdict(record)}
    ckpt.atomic_write_text(Path(config.run_dir) / "result.json", json.dumps(payload, indent=2))
    return record


def _train_ppokit(config: RunConfig) -> tuple[list[float], float, int]:
    from ppokit.classic.trainer import train

    result = train(config)
    assert result.evaluation is not None
    return result.evaluation.returns, result.metrics["time_elapsed"], result.global_step


def _train_sb3(config: RunConfig) -> tuple[list[float], float, int]:
    import tomli_w

    assert config.run_dir is not None
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    setup = to_sb3(config)
    ckpt.atomic_write_text(run_dir / "config.toml", tomli_w.dumps(to_dict(config)))
    ckpt.atomic_write_text(run_dir / "sb3_kwargs.json", json.dumps(asdict(setup), indent=2, default=_describe))
    venv: VecEnv = make_vec_env(config.env.id, n_envs=setup.n_envs, seed=config.seed, vec_env_cls=DummyVecEnv)
    norm = VecNormalize(venv, **setup.vec_normalize) if setup.vec_normalize is not None else None
    model = PPO(env=norm or venv, seed=config.seed, verbose=0, **setup.ppo_kwargs)
    log = _RolloutLog(run_dir / "metrics.jsonl", config.batch_size, config.num_updates,
                      config.algo.ent_coef, setup.ent_coef_final)  # fmt: skip
    model.learn(total_timesteps=setup.total_timesteps, callback=log)
    model.save(run_dir / "model.zip")
    if norm is not None:
        norm.save(str(run_dir / "vecnormalize.pkl"))
    (norm or venv).close()
    # evaluate() uses only a policy's parameters() and act(); the adapter provides both.
    actor = cast(ActorCritic, _SB3Actor(model, norm))
    evaluation = evaluate(actor, config.env, config.eval_episodes, True, config.seed)
    ckpt.atomic_write_text(run_dir / "eval.json", json.dumps(evaluation.to_dict(), indent=2))
    return evaluation.returns, log.train_time, model.num_timesteps


class _RolloutLog(BaseCallback):
    """Per rollout, a metrics.jsonl line like ppokit's (global_step, episode_return_mean of the
    episodes finished in the rollout, time_elapsed); also applies ppokit's entropy schedule.

    An update's time runs from its rollout's start to the next rollout's start (or the end of
    training), so it holds SB3's ``train()``; the JSONL write is outside it.
    """

    def __init__(self, path: Path, batch_size: int, updates: int, ent_coef: float, ent_coef_final: float | None):
        super().__init__()
        self.path, self.batch_size, self.updates = path, batch_size, updates
        self.ent_coef, self.ent_coef_final = ent_coef, ent_coef_final
        self.train_time, self._started = 0.0, 0.0
        self._pending: dict[str, float] = {}
        self._seen: list[int] = []

    def _on_step(self) -> bool:
        return True

    def _on_rollout_start(self) -> None:
        self._finish_update()
        self._started = time.perf_counter()

    def _on_rollout_end(self) -> None:
        per_env: list[list[float]] = self.training_env.env_method("get_episode_rewards")
        self._seen = self._seen or [0] * len(per_env)
        finished = [r for i, rs in enumerate(per_env) for r in rs[self._seen[i] :]]
        self._seen = [len(rs) for rs in per_env]
        update = self.num_timesteps // self.batch_size  # 1-based: this rollout's update
        self._pending = {"global_step": float(self.num_timesteps), "update": float(update),
                         "episode_return_mean": float(np.mean(finished)) if finished else float("nan"),
                         "episodes": float(len(finished))}  # fmt: skip
        if self.ent_coef_final is not None:
            assert isinstance(self.model, PPO)
            progress = (update - 1) / self.updates
            self.model.ent_coef = self.ent_coef + (self.ent_coef_final - self.ent_coef) * progress

    def _on_training_end(self) -> None:
        self._finish_update()

    def _finish_update(self) -> None:
        if not self._pending:
            return
        elapsed = time.perf_counter() - self._started
        self.train_time += elapsed
        record = self._pending | {"sps": self.batch_size / elapsed, "time_elapsed": self.train_time}
        with self.path.open("a") as f:
            f.write(json.dumps({k: (None if v != v else v) for k, v in record.items()}) + "\n")  # NaN -> null
        self._pending = {}


class _SB3Actor(nn.Module):
    """An SB3 model behind the interface ``evaluate`` uses: ``parameters()`` and ``act(obs)``,
    with the VecNormalize observation statistics (frozen) applied as ppokit applies its own."""

    def __init__(self, model: PPO, norm: VecNormalize | None) -> None:
        super().__init__()
        self.policy = model.policy
        self.model, self.norm = model, norm

    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        x: np.ndarray | dict[str, np.ndarray] = obs.cpu().numpy()
        if self.norm is not None:
            x = self.norm.normalize_obs(x)
        action, _ = self.model.predict(x, deterministic=deterministic)
        return torch.as_tensor(action)


# --- the comparison ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LibraryResult:
    scores: dict[int, float]  # seed -> final evaluation mean
    aggregates: dict[str, Estimate]  # mean, median, iqm of the scores, 95% bootstrap CIs
    train_time: dict[int, float]  # seed -> training wall-clock (s)
    sps: dict[int, float]  # seed -> env steps per second of training
    median_train_time: float
    median_sps: float


@dataclass(frozen=True)
class ComparisonResult:
    env_id: str
    seeds: list[int]
    total_steps: int  # env steps each run trained (updates x batch), the same for both
    out_dir: Path
    libraries: dict[str, LibraryResult]  # "ppokit", "sb3"
    difference: Estimate  # mean(ppokit) - mean(sb3) of the final evaluations, 95% CI
    time_ratio: float  # median train time, ppokit / sb3
    sps_ratio: float  # median steps per second, ppokit / sb3
    config: dict[str, Any] = field(default_factory=dict)
    sb3_setup: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["out_dir"] = str(self.out_dir)
        return json.loads(json.dumps(data, default=_describe))  # type: ignore[no-any-return]  # a JSON object


def default_config(env_id: str) -> RunConfig:
    """The env's ppokit preset (read now, so a preset edited since import is used), else defaults."""
    preset = PRESETS.get(env_id)
    return override(RunConfig(), {**(preset.overrides if preset else {}), "id": env_id})


def compare(
    env_id: str,
    seeds: int | Sequence[int],
    total_steps: int,
    out_dir: str | Path,
    workers: int,
    config: RunConfig | None = None,
    on_result: Callable[[RunRecord], None] | None = None,
) -> ComparisonResult:
    """Train ppokit and SB3 on ``seeds`` (a count S: seeds 1..S) for ``total_steps`` env steps
    each, in up to ``workers`` processes; write and return the comparison.

    ``config`` defaults to :func:`default_config`; ``env_id`` and ``total_steps`` override it.
    """
    out = Path(out_dir)
    seed_list = list(range(1, seeds + 1)) if isinstance(seeds, int) else list(seeds)
    if not seed_list or len(set(seed_list)) != len(seed_list):
        raise ConfigError("seeds", f"{seeds!r}; allowed: a count >= 1 or distinct seeds")
    if workers < 1:
        raise ConfigError("workers", f"{workers}; allowed: an integer >= 1")
    base = override(config or default_config(env_id), {
        "id": env_id, "total_steps": total_steps, "eval_episodes": EVAL_EPISODES, "eval_deterministic": True,
        "eval_every": 0, "progress": False, "tensorboard": False})  # fmt: skip
    jobs = [(lib, override(base, {"seed": s, "run_dir": str(out / lib / f"seed-{s}")}).validate())
            for s in seed_list for lib in LIBRARIES]  # fmt: skip  # alternating: load drift hits both alike
    records = _run_jobs(jobs, workers, on_result)
    result = _summarize(base, seed_list, out, records)
    out.mkdir(parents=True, exist_ok=True)
    ckpt.atomic_write_text(out / "comparison.json", json.dumps(result.to_dict(), indent=2))
    ckpt.atomic_write_text(out / "comparison.md", markdown(result))
    figure(result, out / "comparison.png")
    return result


def _run_jobs(
    jobs: list[tuple[str, RunConfig]], workers: int, on_result: Callable[[RunRecord], None] | None
) -> list[RunRecord]:
    """Run the jobs not finished before (same config); a half-written run folder starts again."""
    records, todo = [], []
    for library, config in jobs:
        run_dir = Path(str(config.run_dir))
        saved = run_dir / "result.json"
        if saved.is_file():
            data = json.loads(saved.read_text())
            if not _same_config(data.pop("config"), config):
                raise ConfigError("out", f"{run_dir} holds a run of another configuration; pick another --out")
            records.append(RunRecord(**data))
            continue
        shutil.rmtree(run_dir, ignore_errors=True)
        todo.append((library, config))
    if todo:
        with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(_run_job, library, config) for library, config in todo]
            for future in as_completed(futures):
                record = future.result()
                records.append(record)
                if on_result is not None:
                    on_result(record)
    return records


def _same_config(saved: dict[str, Any], config: RunConfig) -> bool:
    """Whether a saved config dict is ``config`` (fields added since take their defaults)."""
    try:
        return from_dict(saved) == config
    except ConfigError:  # a field that no longer exists
        return False


def _summarize(base: RunConfig, seeds: list[int], out: Path, records: list[RunRecord]) -> ComparisonResult:
    by_lib = {lib: sorted((r for r in records if r.library == lib), key=lambda r: r.seed) for lib in LIBRARIES}
    libraries = {}
    for lib, recs in by_lib.items():
        scores = np.array([r.eval_mean for r in recs])
        libraries[lib] = LibraryResult(
            scores={r.seed: r.eval_mean for r in recs},
            aggregates=aggregate(scores),
            train_time={r.seed: r.train_time for r in recs},
            sps={r.seed: r.sps for r in recs},
            median_train_time=float(np.median([r.train_time for r in recs])),
            median_sps=float(np.median([r.sps for r in recs])),
        )
    p, s = libraries["ppokit"], libraries["sb3"]
    return ComparisonResult(
        env_id=base.env.id,
        seeds=seeds,
        total_steps=base.num_updates * base.batch_size,
        out_dir=out,
        libraries=libraries,
        difference=difference_ci(list(p.scores.values()), list(s.scores.values())),
        time_ratio=p.median_train_time / s.median_train_time,
        sps_ratio=p.median_sps / s.median_sps,
        config=to_dict(override(base, {"seed": 0, "run_dir": None})),
        sb3_setup=asdict(to_sb3(base)),
    )


# --- report ------------------------------------------------------------------------------------


def _ci(e: Estimate, digits: int = 1) -> str:
    return f"{e.point:.{digits}f} [{e.low:.{digits}f}, {e.high:.{digits}f}]"


def markdown(result: ComparisonResult) -> str:
    """The comparison as a Markdown table plus the difference and the timing ratios."""
    lines = [
        f"# ppokit vs Stable-Baselines3 PPO on {result.env_id}",
        "",
        f"{len(result.seeds)} seeds ({', '.join(map(str, result.seeds))}), {result.total_steps} env steps each; "
        f"final evaluation: deterministic, {EVAL_EPISODES} episodes, the same eval env seeds for both.",
        "",
        "| library | final eval per seed | mean [95% CI] | IQM [95% CI] | median train time (s) | median steps/s |",
        "|---|---|---|---|---|---|",
    ]
    for lib, r in result.libraries.items():
        per_seed = ", ".join(f"{v:.1f}" for v in r.scores.values())
        lines.append(f"| {lib} | {per_seed} | {_ci(r.aggregates['mean'])} | {_ci(r.aggregates['iqm'])} "
                     f"| {r.median_train_time:.1f} | {r.median_sps:.0f} |")  # fmt: skip
    lines += [
        "",
        f"- difference of means, ppokit - SB3: {_ci(result.difference)} (95% two-sample bootstrap CI)",
        f"- median train time ratio, ppokit / SB3: {result.time_ratio:.2f}",
        f"- median steps/s ratio, ppokit / SB3: {result.sps_ratio:.2f}",
        "",
    ]
    return "\n".join(lines)


def figure(result: ComparisonResult, path: Path) -> Path:
    """Left: training episode return vs env steps (mean over seeds, 95% bootstrap CI band, thin
    lines per seed). Right: final evaluation per seed, and mean and IQM with their 95% CIs."""
    fig = Figure(figsize=(12.5, 5.0), dpi=120, layout="constrained", facecolor="white")
    curves_ax, eval_ax = fig.subplots(1, 2, width_ratios=(2.2, 1.0))
    rng = np.random.default_rng(0)
    for i, (lib, r) in enumerate(result.libraries.items()):
        color = PALETTE[i]
        runs = [load_run(result.out_dir / lib / f"seed-{s}") for s in r.scores]
        grid, curves = group_curves(runs, "global_step", "episode_return_mean")
        mean, low, high = mean_band(curves)
        for seed_curve in curves:
            curves_ax.plot(grid, seed_curve, color=color, linewidth=0.7, alpha=0.3)
        curves_ax.fill_between(grid, low, high, color=color, alpha=0.2, linewidth=0)
        curves_ax.plot(grid, mean, color=color, linewidth=2.0, label=f"{lib} (n={len(runs)} seeds)")
        scores = np.array(list(r.scores.values()))
        eval_ax.scatter(i - 0.12 + rng.uniform(-0.05, 0.05, scores.size), scores, color=color, s=22, alpha=0.7)
        for offset, name in ((0.1, "mean"), (0.25, "iqm")):
            e = r.aggregates[name]
            eval_ax.errorbar(i + offset, e.point, yerr=[[e.point - e.low], [e.high - e.point]], color=color,
                             marker=_MARKERS[name], markersize=7, capsize=5, linewidth=1.8)  # fmt: skip
    curves_ax.set(xlabel="environment steps", ylabel="training episode return",
                  title="Training return (smoothed): mean, 95% CI band; thin: each seed")  # fmt: skip
    curves_ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    curves_ax.grid(True, alpha=0.3)
    curves_ax.legend(loc="best")
    eval_ax.set_xticks(range(len(result.libraries)), list(result.libraries))
    eval_ax.set_xlim(-0.5, len(result.libraries) - 0.5)
    eval_ax.set(ylabel="final evaluation return", title=f"Final eval ({EVAL_EPISODES} ep., deterministic)")
    eval_ax.grid(True, axis="y", alpha=0.3)
    eval_ax.legend(handles=[Line2D([], [], color="0.4", marker="o", linestyle="", label="each seed"),
                            Line2D([], [], color="0.4", marker=_MARKERS["mean"], label="mean, 95% CI"),
                            Line2D([], [], color="0.4", marker=_MARKERS["iqm"], label="IQM, 95% CI")],
                   loc="best", fontsize="small")  # fmt: skip
    d = result.difference
    fig.suptitle(f"ppokit vs SB3 PPO on {result.env_id}, {result.total_steps:,} steps: mean difference "
                 f"{d.point:+.1f} [{d.low:+.1f}, {d.high:+.1f}]; steps/s ratio {result.sps_ratio:.2f}")  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, facecolor="white")
    return path
