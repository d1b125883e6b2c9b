"""Build a strategy of `flwr.serverapp.strategy` from `strategy.*` and `federation.*`."""

import inspect

from flwr.serverapp.strategy import (
    FedAdam,
    FedAvg,
    FedMedian,
    FedProx,
    FedTrimmedAvg,
    FedYogi,
    Krum,
    Strategy,
)

from fedtriage.errors import ConfigError
from fl_protocol import records
from fl_protocol.settings import RunSettings
from fl_server.metric_aggregation import weighted_mean_metrics

# Strategies whose update rule needs only the weighted mean of the updates: the only ones
# a protected mode can serve, since it never reveals a single node's update.
MEAN_BASED = ("fedavg", "fedprox", "fedadam", "fedyogi")

STRATEGIES: dict[str, type[FedAvg]] = {
    "fedavg": FedAvg,
    "fedprox": FedProx,
    "fedadam": FedAdam,
    "fedyogi": FedYogi,
    "fedmedian": FedMedian,
    "fedtrimmedavg": FedTrimmedAvg,
    "krum": Krum,
}

# Constructor arguments fedtriage sets itself; `strategy.params` may not set them.
_MANAGED = frozenset(
    {
        "fraction_train", "fraction_evaluate", "min_train_nodes", "min_evaluate_nodes",
        "min_available_nodes", "weighted_by_key", "arrayrecord_key", "configrecord_key",
        "train_metrics_aggr_fn", "evaluate_metrics_aggr_fn",
    }
)


def build_strategy(settings: RunSettings) -> Strategy:
    """The configured strategy; unknown names or parameters name the setting."""
    name = settings.strategy.name
    if name not in STRATEGIES:
        raise ConfigError(
            "strategy.name", f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}"
        )
    if settings.secure.mode.is_secure and name not in MEAN_BASED:
        raise ConfigError(
            "strategy.name",
            f"{name!r} needs every node's update, which secure.mode={settings.secure.mode} never reveals; "
            f"choose one of {', '.join(MEAN_BASED)} (or secure=plaintext for research)",
        )
    cls = STRATEGIES[name]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"} - _MANAGED
    for param in settings.strategy.params:
        if param not in accepted:
            raise ConfigError(
                f"strategy.params.{param}",
                f"not a parameter of {cls.__name__}; it takes {', '.join(sorted(accepted)) or 'none'}",
            )
    fed = settings.federation
    try:
        return cls(
            fraction_train=fed.fraction_train,
            fraction_evaluate=fed.fraction_evaluate,
            min_train_nodes=fed.min_train_nodes,
            min_evaluate_nodes=fed.min_evaluate_nodes,
            min_available_nodes=fed.min_available_nodes,
            weighted_by_key=records.NUM_EXAMPLES,
            arrayrecord_key=records.ARRAYS_KEY,
            configrecord_key=records.CONFIG_KEY,
            train_metrics_aggr_fn=weighted_mean_metrics,
            evaluate_metrics_aggr_fn=weighted_mean_metrics,
            **dict(settings.strategy.params),
        )
    except (TypeError, ValueError) as err:
        raise ConfigError("strategy.params", f"{cls.__name__} rejected them: {err}") from err
