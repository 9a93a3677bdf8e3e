"""Property-based fuzzing of what a user or a file can hand ppokit: TOML documents and flag
values either give a valid configuration or a ConfigError naming a field, never another
exception; errors survive a trip through a worker process (pickle)."""

from __future__ import annotations

import pickle
import tomllib
from typing import Any

import pytest
import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st

from ppokit.config import RunConfig, from_dict, leaves, parse_value, resolve, to_dict
from ppokit.errors import ConfigError, NonFiniteError

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


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(PATHS), VALUES, max_size=4))
def test_random_values_at_real_fields_are_valid_or_one_config_error(flat: dict[str, Any]) -> None:
    _valid_or_config_error(_nested(flat))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8), VALUES, max_size=4))
def test_random_toml_documents_are_valid_or_one_config_error(data: dict[str, Any]) -> None:
    try:
        text = tomli_w.dumps(data)
    except (TypeError, ValueError):
        return  # not expressible in TOML (NaN keys and the like): no file can hold it
    _valid_or_config_error(tomllib.loads(text))


@settings(max_examples=300, deadline=None)
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
