"""Strategies come from config; unknown names and parameters name the setting."""

import math

import pytest
from flwr.app import MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAdam, FedProx, Krum

from fedtriage.errors import ConfigError
from fl_protocol.run_config import load_settings
from fl_server.metric_aggregation import weighted_mean_metrics
from fl_server.strategy_factory import STRATEGIES, build_strategy


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_shipped_strategy_config_builds(name: str) -> None:
    strategy = build_strategy(load_settings([f"strategy={name}", "secure=plaintext"]))
    assert isinstance(strategy, STRATEGIES[name])
    assert strategy.min_available_nodes == 2  # federation.min_train_nodes


def test_strategy_params_reach_the_constructor() -> None:
    strategy = build_strategy(load_settings(["strategy=fedprox", "strategy.params.proximal_mu=0.5"]))
    assert isinstance(strategy, FedProx) and strategy.proximal_mu == 0.5
    adam = build_strategy(load_settings(["strategy=fedadam", "strategy.params.eta=0.2"]))
    assert isinstance(adam, FedAdam) and adam.eta == 0.2
    krum = build_strategy(load_settings(["strategy=krum", "strategy.params.num_malicious_nodes=1", "secure=plaintext"]))
    assert isinstance(krum, Krum)


@pytest.mark.parametrize("name", ["fedmedian", "fedtrimmedavg", "krum"])
def test_protected_modes_refuse_strategies_that_need_every_update(name: str) -> None:
    with pytest.raises(ConfigError, match=f"strategy.name: '{name}' needs every node's update"):
        build_strategy(load_settings([f"strategy={name}"]))


def test_unknown_strategy_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="strategy.name: unknown strategy 'fedsgd'"):
        build_strategy(load_settings(["strategy.name=fedsgd"]))


def test_parameter_of_another_strategy_is_rejected_by_name() -> None:
    with pytest.raises(ConfigError, match="strategy.params.proximal_mu"):
        build_strategy(load_settings(["strategy=fedavg", "+strategy.params.proximal_mu=0.1"]))


def test_sampling_parameters_are_managed_by_the_federation_group() -> None:
    with pytest.raises(ConfigError, match="strategy.params.min_train_nodes"):
        build_strategy(load_settings(["+strategy.params.min_train_nodes=3"]))


def test_weighted_mean_skips_undefined_values_instead_of_spreading_nan() -> None:
    replies = [
        RecordDict({"m": MetricRecord({"num-examples": 30, "eval-accuracy": 0.9, "eval-roc-auc": float("nan")})}),
        RecordDict({"m": MetricRecord({"num-examples": 10, "eval-accuracy": 0.5, "eval-roc-auc": 0.8})}),
    ]
    merged = weighted_mean_metrics(replies, "num-examples")
    assert math.isclose(merged["eval-accuracy"], (30 * 0.9 + 10 * 0.5) / 40)
    assert math.isclose(merged["eval-roc-auc"], 0.8)
    assert "num-examples" not in merged
