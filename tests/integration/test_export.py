"""``ppokit export --format onnx``: raw observations in, actions out, checked with onnxruntime
against torch (and against ``ppokit.load(...).act``), for MLP and CNN policies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ppokit
from ppokit.classic.export import export_onnx, random_observations
from ppokit.errors import ConfigError
from tests.conftest import tiny_config

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

TOLERANCE = 1e-5  # float32 graphs of a few layers: measured differences are ~1e-7


def _check(run: Path, out: Path) -> None:
    """The file's actions equal ``ppokit.load(run).act`` at batch sizes 1 and 7 (the batch axis
    is dynamic), and the export's own check found the parameters within the tolerance."""
    policy = ppokit.load(run)
    report = export_onnx(policy.model, policy.observation_space, policy.action_space, out)
    assert report.samples == 256 and report.max_param_error <= TOLERANCE and report.actions_equal == 1.0
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for n in (1, 7):
        obs = random_observations(policy.observation_space, n, seed=n).numpy()
        action, _ = session.run(["action", "params"], {"obs": obs})
        np.testing.assert_allclose(action, policy.act(obs), atol=TOLERANCE)


def test_mlp_with_observation_normalization_exports_discrete_actions(tmp_path: Path) -> None:
    run = ppokit.train(tiny_config(tmp_path / "run", norm_obs=True)).run_dir
    assert ppokit.load(run).model.obs_norm.enabled  # the statistics are baked into the graph
    _check(run, tmp_path / "cartpole.onnx")


def test_gaussian_policy_exports_clipped_means(tmp_path: Path) -> None:
    run = ppokit.train(tiny_config(tmp_path / "run", id="Pendulum-v1", norm_obs=True)).run_dir
    _check(run, tmp_path / "pendulum.onnx")
    session = ort.InferenceSession(str(tmp_path / "pendulum.onnx"), providers=["CPUExecutionProvider"])
    far = np.full((3, 3), 50.0, np.float32)  # far outside the training data: the mean may leave the bounds
    action, _ = session.run(["action", "params"], {"obs": far})
    assert np.all(np.abs(action) <= 2.0)  # Pendulum's torque bound


def test_cnn_policy_on_bool_grids_exports(tmp_path: Path) -> None:
    pytest.importorskip("minatar")
    config = tiny_config(tmp_path / "run", id="MinAtar/Breakout-v1", total_steps=256, num_steps=32, minibatch_size=64)
    _check(ppokit.train(config).run_dir, tmp_path / "minatar.onnx")


def test_export_command_writes_policy_onnx_in_the_run_folder(tmp_path: Path) -> None:
    run = ppokit.train(tiny_config(tmp_path / "run")).run_dir
    done = subprocess.run([sys.executable, "-m", "ppokit", "export", str(run)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"Exported to {run / 'policy.onnx'}: onnxruntime against torch on 256 random observations" in done.stdout
    assert (run / "policy.onnx").stat().st_size > 0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: root / "nothing", "does not exist"),
        (lambda root: (root / "empty").mkdir() or root / "empty", "does not exist"),  # a folder with no checkpoint
    ],
)
def test_export_without_a_policy_is_one_line_and_exit_2(tmp_path: Path, make: Any, message: str) -> None:
    target = make(tmp_path)
    done = subprocess.run([sys.executable, "-m", "ppokit", "export", str(target)], capture_output=True, text=True)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_missing_export_packages_name_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = ppokit.load(ppokit.train(tiny_config(tmp_path / "run")).run_dir)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime raises ImportError
    with pytest.raises(ConfigError, match=r"onnx export needs onnxruntime.*pip install 'ppokit\[export\]'"):
        export_onnx(policy.model, policy.observation_space, policy.action_space, tmp_path / "x.onnx")
