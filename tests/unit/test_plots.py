"""Figures from small hand-written run folders: the PNGs exist, decode and are not blank;
the curve helpers against hand-computed values."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib.image
import numpy as np
import pytest

from ppokit.analysis import curves as curves_mod
from ppokit.analysis import plots
from ppokit.errors import ConfigError

CONFIG = """seed = 1
total_steps = 5120

[env]
id = "CartPole-v1"

[algo]
update_epochs = 4
{target_kl}
[diagnostics]
kl_max = 0.05
clip_fraction_min = 0.001
clip_fraction_max = 0.4
"""


def write_run(
    folder: Path,
    updates: int,
    seed: int,
    *,
    kl: float = 1e-3,
    evals: bool = True,
    drop: tuple[str, ...] = (),
    target_kl: float | None = None,
) -> Path:
    """A run folder as the trainer writes it: no episode ends in the first two updates (null
    returns), one NaN-free KL of exactly 0, optional periodic and final evaluations."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text(CONFIG.format(target_kl=f"target_kl = {target_kl}" if target_kl else ""))
    records = []
    for u in range(1, updates + 1):
        record: dict[str, Any] = {
            "global_step": 128 * u,
            "update": u,
            "time_elapsed": 0.05 * u * (1 + 0.2 * seed),
            "episode_return_mean": None if u <= 2 else 20 + 3 * u + float(rng.normal(0, 5)),
            "approx_kl": 0.0 if u == 3 else kl * float(rng.uniform(0.5, 1.5)),
            "clip_fraction": float(rng.uniform(0, 0.1)),
            "explained_variance": 1 - 1 / u,
            "entropy": 0.69 - 0.005 * u,
            "policy_loss": float(rng.normal(0, 0.01)),
            "value_loss": 30 / u,
            "learning_rate": 2.5e-4 * (1 - u / (updates + 1)),
            "grad_norm": 5 + u / 10,
            "sps": None,
        }
        records.append({k: v for k, v in record.items() if k not in drop})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if evals:
        lines = [
            {"global_step": 128 * u, "update": u, "time_elapsed": 0.05 * u, "eval_return_mean": 10.0 * u}
            for u in range(10, updates + 1, 10)
        ]
        (folder / "evals.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
        (folder / "eval.json").write_text(json.dumps({"returns": [400.0, 500.0], "eval_return_mean": 450.0}))
    return folder


def assert_png_has_content(path: Path, min_width: int = 800) -> None:
    """The PNG decodes, is a sensible size, and is not blank: varied pixels, many non-white,
    and coloured ones (axes and text alone are grey; empty axes with labels score about 0.018
    non-white and 0 coloured)."""
    assert path.is_file()
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[1] >= min_width and image.shape[0] >= 400
    rgb = image[..., :3]
    assert float(rgb.std()) > 0.05
    assert float((rgb < 0.9).any(axis=-1).mean()) > 0.03
    assert float((rgb.max(axis=-1) - rgb.min(axis=-1) > 0.1).mean()) > 0.005  # the data's colours


@pytest.fixture
def groups(tmp_path: Path) -> dict[str, list[Path]]:
    """Two configurations: three seeds of different lengths, and one seed without evaluations."""
    return {
        "update_epochs=4": [write_run(tmp_path / f"k4/seed-{s}", 30 + 5 * s, s) for s in (1, 2, 3)],
        "update_epochs=30": [write_run(tmp_path / "k30/seed-1", 40, 4, kl=2e-2, evals=False, target_kl=0.02)],
    }


def test_learning_curves(tmp_path: Path, groups: dict[str, list[Path]]) -> None:
    path = plots.learning_curves(groups, tmp_path / "out" / "curves.png", threshold=100.0)
    assert_png_has_content(path)
    one_axis = plots.learning_curves(groups, tmp_path / "steps.png", x="global_step")
    assert_png_has_content(one_axis)


def test_diagnostics_panel_with_a_metric_never_logged(tmp_path: Path) -> None:
    runs = [write_run(tmp_path / f"seed-{s}", 25, s, drop=("grad_norm",)) for s in (1, 2)]
    assert_png_has_content(plots.diagnostics_panel({"base": runs}, tmp_path / "diagnostics.png"))


def test_kl_per_update(tmp_path: Path, groups: dict[str, list[Path]]) -> None:
    assert_png_has_content(plots.kl_per_update(groups, tmp_path / "kl.png"))


def test_figures_leave_no_pyplot_state(tmp_path: Path, groups: dict[str, list[Path]]) -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plots.kl_per_update(groups, tmp_path / "kl.png")
    assert plt.get_fignums() == before


def test_load_run_reads_nulls_as_nan_and_skips_a_torn_line(tmp_path: Path) -> None:
    folder = write_run(tmp_path / "run", 5, 1)
    with (folder / "metrics.jsonl").open("a") as f:
        f.write('{"global_step": 76')  # killed mid-write
    run = curves_mod.load_run(folder)
    assert run.column("global_step").tolist() == [128, 256, 384, 512, 640]
    assert math.isnan(run.column("episode_return_mean")[0]) and math.isnan(run.column("sps")[4])
    assert np.isnan(run.column("not_logged")).all() and run.column("not_logged").size == 5
    assert run.final_eval is not None and run.diagnostics is None


def test_load_run_refuses_other_folders(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a run folder"):
        curves_mod.load_run(tmp_path)
    folder = write_run(tmp_path / "run", 3, 1)
    (folder / "metrics.jsonl").write_text("")
    with pytest.raises(ConfigError, match="no metrics"):
        curves_mod.load_run(folder)


def test_on_grid_interpolates_inside_the_finite_range_only() -> None:
    x = np.array([0.0, 1.0, 2.0, 3.0])
    y = np.array([np.nan, 10.0, 20.0, np.nan])
    out = curves_mod.on_grid(x, y, np.array([0.5, 1.0, 1.5, 2.0, 2.5]))
    np.testing.assert_array_equal(out, [np.nan, 10.0, 15.0, 20.0, np.nan])


def test_smooth_is_a_centred_nan_aware_moving_average() -> None:
    y = np.array([1.0, 2.0, np.nan, 4.0, 5.0])
    np.testing.assert_allclose(curves_mod.smooth(y, 3), [1.5, 1.5, np.nan, 4.5, 4.5])
    np.testing.assert_array_equal(curves_mod.smooth(y, 1), y)
    assert curves_mod.smoothing_window(1000) == 21 and curves_mod.smoothing_window(10) == 1


def test_mean_band() -> None:
    curves = np.array([[1.0, 2.0, 3.0], [3.0, 4.0, np.nan], [5.0, 6.0, 7.0]])
    mean, low, high = curves_mod.mean_band(curves)
    np.testing.assert_allclose(mean[:2], [3.0, 4.0])
    assert np.isnan(mean[2]) and np.isnan(low[2]) and np.isnan(high[2])  # a seed is missing there
    assert np.all(low[:2] < mean[:2]) and np.all(mean[:2] < high[:2])
    assert np.all(low[:2] >= [1.0, 2.0]) and np.all(high[:2] <= [5.0, 6.0])
    one_mean, one_low, _ = curves_mod.mean_band(curves[:1])
    np.testing.assert_array_equal(one_mean, curves[0])
    assert np.isnan(one_low).all()  # one seed: no band
