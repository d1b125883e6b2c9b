"""Weighted means of node metrics that tolerate undefined values.

Flower's default aggregation turns one node's NaN (e.g. ROC-AUC on a split that
holds a single class) into a NaN for the federation; here NaNs are left out of
that metric's mean instead. Node timings are summed by the round loop, not averaged.
"""

import math

from flwr.app import MetricRecord, RecordDict

from fl_protocol import records

# Metrics that are per-node facts, not quantities to average across nodes.
_NOT_AVERAGED = frozenset({records.TRAIN_SECONDS})


def weighted_mean_metrics(replies: list[RecordDict], weighted_by_key: str) -> MetricRecord:
    """Per metric, the example-weighted mean over the nodes where it is defined."""
    sums: dict[str, float] = {}
    weights: dict[str, float] = {}
    for content in replies:
        metrics = next(iter(content.metric_records.values()))
        weight = float(metrics[weighted_by_key])  # type: ignore[arg-type]
        for key, value in metrics.items():
            if key == weighted_by_key or key in _NOT_AVERAGED or isinstance(value, list):
                continue
            if math.isnan(float(value)) or weight <= 0:
                continue
            sums[key] = sums.get(key, 0.0) + float(value) * weight
            weights[key] = weights.get(key, 0.0) + weight
    return MetricRecord({key: sums[key] / weights[key] for key in sums})
