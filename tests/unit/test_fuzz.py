"""Property-based fuzzing of what a user or a file can hand ppokit: TOML documents and flag
values either give a valid configuration or a ConfigError naming a field, never another
exception; errors survive a trip through a worker process (pickle)."""

from __future__ import annotations

import math
import pickle
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppokit.config import RunConfig, from_dict, leaves, parse_value, resolve, to_dict
from ppokit.errors import CheckpointError, ConfigError, NonFiniteError

PATHS = sorted(leaves())
SCALARS = st.one_of(
    st.booleans(), st.integers(min_value=-(2**40), max_value=2**40), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.just("cpu"), st.just("false"), st.just("tanh"), st.just("none"),
)  # fmt: skip
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _nested(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, value in flat.items():
        *parents, name = path.split(".")
        table = out
        for part in parents:
            table = table.setdefault(part, {})
        table[name] = value
    return out


def _valid_or_config_error(data: dict[str, Any]) -> None:
    try:
        config = from_dict(data).validate()
    except ConfigError as e:
        assert e.field and "\n" not in str(e)
        return
    assert isinstance(config, RunConfig)
    assert from_dict(to_dict(config)) == config  # what is written back reads back the same


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.dictionaries(st.sampled_from(PATHS), VALUES, max_size=4))
def test_random_values_at_real_fields_are_valid_or_one_config_error(flat: dict[str, Any]) -> None:
    _valid_or_config_error(_nested(flat))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.dictionaries(st.text(max_size=8), VALUES, max_size=4))
def test_random_toml_documents_are_valid_or_one_config_error(data: dict[str, Any]) -> None:
    try:
        text = tomli_w.dumps(data)
    except (TypeError, ValueError):
        return  # not expressible in TOML (NaN keys and the like): no file can hold it
    _valid_or_config_error(tomllib.loads(text))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.sampled_from(PATHS), st.text(max_size=10))
def test_random_flag_text_is_read_or_one_config_error(path: str, text: str) -> None:
    try:
        value = parse_value(path, text)
    except ConfigError as e:
        assert e.field == path
        return
    _valid_or_config_error(_nested({resolve(path): value}))


@pytest.mark.parametrize(
    ("data", "field", "expected"),
    [({"env": {"norm_obs": "false"}}, "env.norm_obs", "expected true or false"),
     ({"algo": {"learning_rate": "3e-4"}}, "algo.learning_rate", "expected a number"),
     ({"seed": 1.5}, "seed", "expected an integer"), ({"seed": True}, "seed", "expected an integer"),
     ({"policy": {"hidden_sizes": 64}}, "policy.hidden_sizes", "expected a list of integers"),
     ({"policy": {"hidden_sizes": [64, "a"]}}, "policy.hidden_sizes[1]", "expected an integer"),
     ({"env": [{"id": "CartPole-v1"}]}, "env", "expected a table of EnvConfig fields"),
     ({"seed": -1}, "seed", "[0, 2**32 - 1]"), ({"seed": 2**32}, "seed", "[0, 2**32 - 1]"),
     ({"device": "cuda:7"}, "device", "this machine has"), ({"device": "gpu"}, "device", "expected cpu, cuda")],
)  # fmt: skip
def test_wrong_types_name_the_field_and_what_was_expected(data: dict[str, Any], field: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        from_dict(data).validate()
    assert info.value.field == field and expected in str(info.value), str(info.value)


def test_a_number_where_a_float_is_expected_is_a_float() -> None:
    config = from_dict({"algo": {"learning_rate": 1}})
    assert config.algo.learning_rate == 1.0 and isinstance(config.algo.learning_rate, float)


def test_the_python_api_is_type_checked_too() -> None:
    with pytest.raises(ConfigError, match=r"total_steps: got '100' \(str\), expected an integer"):
        RunConfig(total_steps="100").validate()  # type: ignore[arg-type]  # the wrong type under test


def test_errors_cross_process_boundaries_whole() -> None:
    for error in (ConfigError("algo.learning_rate", "got 'x' (str), expected a number"), NonFiniteError("loss", 7)):
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is type(error) and str(again) == str(error)
    assert pickle.loads(pickle.dumps(ConfigError("seed", "m"))).field == "seed"


# --- checkpoints ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import ppokit
    from tests.conftest import tiny_config

    run = tmp_path_factory.mktemp("ckpt") / "run"
    ppokit.train(tiny_config(run), stop_after=1)
    return run / "checkpoints" / "last.pt"


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_damaged_checkpoint_bytes_are_refused_or_load_the_same_weights(
    checkpoint: Path, tmp_path: Path, data: st.DataObject
) -> None:
    import ppokit

    raw = bytearray(checkpoint.read_bytes())
    if data.draw(st.booleans(), "truncate"):
        raw = raw[: data.draw(st.integers(0, len(raw) - 1), "length")]
    else:
        for _ in range(data.draw(st.integers(1, 4), "flips")):
            raw[data.draw(st.integers(0, len(raw) - 1), "at")] ^= data.draw(st.integers(1, 255), "bits")
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(bytes(raw))
    try:
        policy = ppokit.load(damaged)
    except CheckpointError as e:
        assert "\n" not in str(e)
        return
    original = ppokit.load(checkpoint).model.state_dict()
    assert all(torch.equal(v, original[k]) for k, v in policy.model.state_dict().items())  # never other weights


def _paths(tree: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into the nested dicts and lists of ``tree``."""
    out = [prefix] if prefix else []
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out += _paths(v, (*prefix, i))
    return out


DAMAGE = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(), st.text(max_size=5),
                   st.just([]), st.just({}), st.just(torch.zeros(3)), st.just(torch.full((2,), math.nan)))  # fmt: skip


@settings(max_examples=20, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_damage_inside_a_checkpoint_is_refused_in_one_line_or_resumes(
    checkpoint: Path, tmp_path: Path, data: st.DataObject
) -> None:
    """A part of the payload replaced by another value (a saved, checksummed file: what a bug
    or a hand edit leaves): resume either works or stops with a CheckpointError or ConfigError."""
    import shutil

    import ppokit
    from ppokit.errors import PPOKitError
    from ppokit.io import checkpoint as ckpt

    run = tmp_path / "run"
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(checkpoint.parent.parent, run)
    saved = ckpt.load(run)
    path = data.draw(st.sampled_from(_paths({k: saved[k] for k in ("config", "state", "env_state", "spaces")})))
    parent = saved
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = data.draw(DAMAGE, "value")
    ckpt.save(run / "checkpoints" / "last.pt", saved)
    try:
        ppokit.train(resume=run)
    except PPOKitError as e:
        assert "\n" not in str(e) and e.exit_code in (2, 3), str(e)  # 3: a NaN the damage caused, named


def test_nan_is_no_value_for_any_number_field() -> None:
    with pytest.raises(ConfigError, match=r"diagnostics.kl_max: got nan, expected a number \(not NaN\)"):
        from_dict({"diagnostics": {"kl_max": math.nan}}).validate()


def test_adam_state_of_an_older_torch_loads() -> None:
    """Param groups may lack keys a newer torch added (decoupled_weight_decay): torch loads
    them, so the checks before it must too."""
    from ppokit.core.optim import FlatAdam

    module = torch.nn.Linear(3, 2)
    optimizer = FlatAdam(module, 1e-3, 1e-5)
    state = optimizer.state_dict()
    for group in state["param_groups"]:
        group.pop("decoupled_weight_decay", None)
    optimizer.load_state_dict(state)
    del state["param_groups"][0]["lr"]
    with pytest.raises(ValueError, match="lacks one of"):
        optimizer.load_state_dict(state)
