"""The MLflow metric names of one round: the naming scheme lives here and nowhere else.

Prefixes group metrics into sections of the MLflow UI: `train/`, `federated/` (evaluation
on the nodes), `central/` (evaluation on the server), `node/<label>/`, `round/` and
`protocol/` (update protection: stage timings, survivors, dropouts, bytes per node).
"""

from fl_server.round_record import RoundRecord
from fl_server.tracking.names import key

# Logged at the step of a round that produced no new global model.
ROUND_FAILED = "round-failed"


def round_metrics(record: RoundRecord) -> dict[str, float]:
    """Metric name -> value for `record`, logged at step `record.round`.

    Round 0 is the initial central evaluation: no node took part, so it has no `round/`
    counters (they would plot a meaningless zero before the first real round).
    """
    metrics: dict[str, float] = {}
    metrics.update(_prefixed(("train",), record.train_metrics))
    metrics.update(_prefixed(("federated",), record.federated_eval))
    metrics.update(_prefixed(("central",), record.central_eval))
    metrics.update(_prefixed(("protocol",), record.protocol_metrics))
    for label, values in sorted(record.node_metrics.items()):
        for name, value in _prefixed(("node", label), values).items():
            metrics[_unused(name, metrics)] = value
    if record.round > 0:
        metrics.update({
            "round/seconds": float(record.seconds),
            "round/bytes_received": float(record.bytes_received),
            "round/nodes_sampled": float(record.nodes_sampled),
            "round/nodes_replied": float(record.nodes_replied),
            "round/node_failures": float(len(record.node_failures)),
            "round/node_train_seconds": float(record.node_train_seconds),
        })
    return metrics


def federated_metrics(values: dict[str, float]) -> dict[str, float]:
    """`federated/<name>` for a federated evaluation reported after its round."""
    return _prefixed(("federated",), values)


def holdings_metrics(reports: dict[str, dict[str, int | str]]) -> dict[str, float]:
    """`holdings/<label>/<count>` for every count in the nodes' holdings reports.

    Text entries (the source's description) stay in the JSON artifact only.
    """
    metrics: dict[str, float] = {}
    for label, report in sorted(reports.items()):
        counts = {
            name: value
            for name, value in report.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        }
        for name, value in _prefixed(("holdings", label), counts).items():
            metrics[_unused(name, metrics)] = value
    return metrics


def _prefixed(prefix: tuple[str, ...], values: dict[str, float]) -> dict[str, float]:
    """Numeric entries only: a stray non-number must not cost the whole batch."""
    metrics: dict[str, float] = {}
    for name, value in values.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        metrics[key(*prefix, name)] = number
    return metrics


def _unused(name: str, taken: dict[str, float]) -> str:
    """Two labels that differ only in unsafe characters must not overwrite each other."""
    candidate, suffix = name, 2
    while candidate in taken:
        candidate, suffix = f"{name}_{suffix}", suffix + 1
    return candidate
