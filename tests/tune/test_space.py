"""The YAML search space: research ranges, Optuna distributions, trial overrides, samplers, settings."""

from __future__ import annotations

import math

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution

from features.data.schema import DataError
from rl.train_cli import compose_config
from tune.cli import compose_sweep
from tune.config import SearcherConfig, SweepSettings
from tune.space import (
    format_value,
    make_sampler,
    optuna_space,
    parse_space,
    pinned_keys,
    searched,
    trial_overrides,
)


@pytest.fixture(scope="module")
def default_space() -> dict[str, optuna.distributions.BaseDistribution]:
    return optuna_space(parse_space(compose_sweep([])["tune"]["space"]))


def test_default_space_has_the_research_ranges(default_space: dict) -> None:
    assert default_space["algo.lr"] == FloatDistribution(1e-5, 1e-3, log=True)
    assert default_space["algo.minibatch_size"] == CategoricalDistribution([32, 64, 128, 256])
    assert default_space["model.hidden"] == CategoricalDistribution([64, 128, 256, 512])
    assert default_space["algo.entropy_coeff"] == FloatDistribution(0.001, 0.1)
    assert default_space["algo.gamma"] == CategoricalDistribution([0.95, 0.99, 0.999])
    assert default_space["algo.clip_param"] == FloatDistribution(0.1, 0.3)
    assert default_space["algo.name"] == CategoricalDistribution(["ppo", "a2c"])
    assert default_space["model.name"] == CategoricalDistribution(["mlp", "cnn", "lstm", "attention"])
    assert {"model.dropout", "algo.weight_decay", "algo.grad_clip"} <= set(default_space)


def test_sweep_config_composes_the_training_groups_plus_tune() -> None:
    sweep, train = compose_sweep(["algo=a2c", "tune=tiny"]), compose_config(["algo=a2c"])
    assert {k: v for k, v in sweep.items() if k != "tune"} == train
    assert sweep["tune"]["num_samples"] == 3 and sweep["tune"]["folds"]["max_folds"] == 2


def test_space_entries_are_reachable_from_the_command_line() -> None:
    space = compose_sweep(["~tune.space.model.dropout", "tune.space.algo.lr.high=0.01",
                           "+tune.space.algo.lambda_={type:uniform,low:0.9,high:1.0}"])["tune"]["space"]
    params = parse_space(space)
    assert "model.dropout" not in params
    assert params["algo.lr"].distribution == FloatDistribution(1e-5, 0.01, log=True)
    assert params["algo.lambda_"].distribution == FloatDistribution(0.9, 1.0)
    assert [p.group for p in params.values() if p.group] == ["algo", "model"]


def test_overrides_put_group_choices_first_and_compose() -> None:
    params = parse_space({
        "algo": {"lr": {"type": "loguniform", "low": 1e-5, "high": 1e-3},
                 "name": {"type": "choice", "values": ["ppo", "a2c"]},
                 "grad_clip": {"type": "choice", "values": [None, 0.5]},
                 "minibatch_size": {"type": "choice", "values": [32, 64]}},
        "model": {"hidden": {"type": "choice", "values": [64, 128], "repeat": 2}},
    })
    values = {"algo.lr": 1.5e-05, "model.hidden": 128, "algo.name": "a2c", "algo.grad_clip": None,
              "algo.minibatch_size": 32}
    overrides = trial_overrides(values, params)
    assert overrides == ["algo=a2c", "++algo.lr=1.5e-05", "++algo.grad_clip=null", "++algo.minibatch_size=32",
                         "++model.hidden=[128,128]"]
    raw = compose_config(overrides)
    assert raw["algo"]["name"] == "a2c" and raw["algo"]["lr"] == 1.5e-05
    assert raw["model"]["hidden"] == [128, 128]
    assert raw["algo"]["grad_clip"] is None and raw["algo"]["train_batch_size"] == 512  # a2c's group default
    assert raw["algo"]["minibatch_size"] == 32  # set although a2c.yaml does not name it


@settings(max_examples=50, deadline=None)
@given(st.floats(min_value=1e-5, max_value=1e-3, allow_nan=False))
def test_float_overrides_round_trip_through_hydra_grammar(value: float) -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_override(f"algo.lr={format_value(value)}")
    assert parsed.value() == value


def test_what_the_command_line_sets_is_pinned() -> None:
    params = parse_space({"algo": {"name": {"type": "choice", "values": ["ppo", "a2c"]},
                                   "lr": {"type": "uniform", "low": 0.1, "high": 0.2},
                                   "gamma": {"type": "choice", "values": [0.9, 0.99]}}})
    assert pinned_keys(["algo=a2c", "+algo.lr=0.1", "data=binance_btc_1h"]) == {"algo", "algo.lr", "data"}
    assert list(searched(params, ["algo=a2c"])) == ["algo.lr", "algo.gamma"]
    assert list(searched(params, ["algo.lr=0.15", "data=binance_btc_1h"])) == ["algo.name", "algo.gamma"]
    with pytest.raises(DataError, match="nothing left"):
        searched(params, ["algo=ppo", "algo.lr=0.1", "algo.gamma=0.9"])


@pytest.mark.parametrize("entry, problem", [
    ({"type": "normal", "low": 0, "high": 1}, "type must be"),
    ({"type": "loguniform", "low": 0.0, "high": 1.0}, "low > 0"),
    ({"type": "uniform", "low": 1.0, "high": 1.0}, "below high"),
    ({"type": "choice", "values": [[1, 2]]}, "scalar"),
    ({"type": "choice", "values": [1], "repeat": 0}, "repeat"),
    ({"type": "uniform", "lo": 0, "high": 1}, "unknown key"),
    (0.5, "expected a mapping"),
])
def test_bad_space_entries_are_named(entry: dict, problem: str) -> None:
    with pytest.raises(DataError, match=f"tune.space.x: .*{problem}"):
        parse_space({"x": entry})


def test_samplers_by_name_and_seeded() -> None:
    kinds = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler,
             "qmc": optuna.samplers.QMCSampler, "gp": optuna.samplers.GPSampler}
    for name, cls in kinds.items():
        assert isinstance(make_sampler(SearcherConfig(sampler=name, seed=3)), cls)
    space: dict[str, BaseDistribution] = {"lr": FloatDistribution(1e-5, 1e-3, log=True)}
    draws = []
    for _ in range(2):
        study = optuna.create_study(sampler=make_sampler(SearcherConfig(sampler="tpe", seed=7)))
        draws.append([study.ask(fixed_distributions=space).params["lr"] for _ in range(3)])
    assert draws[0] == draws[1] and all(1e-5 <= v <= 1e-3 for v in draws[0])
    with pytest.raises(DataError, match="sampler must be"):
        SearcherConfig(sampler="hyperband")


def test_settings_reject_resume_without_a_name_and_unknown_fields() -> None:
    with pytest.raises(DataError, match=r"needs tune\.name"):
        SweepSettings.from_dict({"resume": True})
    with pytest.raises(DataError, match=r"tune\.folds: unknown field"):
        SweepSettings.from_dict({"folds": {"train_dayz": 3}})
    defaults = SweepSettings.from_dict(compose_sweep([])["tune"])
    assert defaults.seeds == [0] and defaults.scheduler.name == "asha"
    assert math.isclose(defaults.folds.purge_days, 1)
