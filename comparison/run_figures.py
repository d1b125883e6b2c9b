"""One compared run's figures, read from what it logged; a figure it did not log stays None.

None is "missing", never zero: a run cut short, tracked without central evaluation or
logged by another tool still gets its row, with its gaps visible.
"""

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field

from mlflow import MlflowClient
from mlflow.entities import Run

from comparison.logged_metrics import (
    BYTES_PER_NODE,
    CENTRAL_ACCURACY,
    EPSILON_METRICS,
    FEDERATED_ACCURACY,
    ROUND_SECONDS,
)
from fl_server.tracking.audit_metrics import AUDIT_METRICS, AUDITED_MODE_TAG
from fl_server.tracking.mlflow_tracker import UPDATE_PROTECTION_TAG

# The params that name a run's protection and privacy (dotted config keys, see run_params).
PROTECTION_PARAM = "secure.mode"
PRIVACY_PARAM = "privacy.mode"

Series = tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class RunFigures:
    """What a comparison shows of one run: its identity, settings and figures (None: not logged)."""

    run_id: str
    name: str
    status: str
    # Varied settings that have no column of their own, as `key=value, ...`.
    settings: str
    # What tells the run apart in a plot's legend: its varied settings, else its name.
    label: str
    protection: str | None
    privacy: str | None
    # Central accuracy per round (round 0: the initial model).
    accuracy: Series
    federated_accuracy: Series
    rounds: int | None
    # The first round whose central accuracy reached the target; None: not reached, or no accuracy.
    rounds_to_target: int | None
    wall_seconds: float | None
    seconds_per_round: float | None
    bytes_per_node: float | None
    epsilon: float | None
    # What a privacy audit run attacked (its tag), and its figures by metric name.
    audited_mode: str | None = None
    attack: Mapping[str, float] = field(default_factory=dict)

    @property
    def final_accuracy(self) -> float | None:
        return self.accuracy[-1][1] if self.accuracy else None

    @property
    def best_accuracy(self) -> float | None:
        return max(value for _, value in self.accuracy) if self.accuracy else None

    @property
    def final_federated_accuracy(self) -> float | None:
        return self.federated_accuracy[-1][1] if self.federated_accuracy else None

    @property
    def mode(self) -> str | None:
        """The mode the run's figures belong to: what an audit attacked, else the run's protection."""
        return self.audited_mode or self.protection


def read_run_figures(client: MlflowClient, run: Run, target: float, settings: str, label: str) -> RunFigures:
    """The figures of `run`: each metric's history read once, only where the run logged it."""
    logged = run.data.metrics

    def history(name: str) -> Series:
        return _history(client, run.info.run_id, name) if name in logged else ()

    accuracy, round_seconds = history(CENTRAL_ACCURACY), history(ROUND_SECONDS)
    seconds = [value for step, value in round_seconds if step > 0]
    uploads = [value for step, value in history(BYTES_PER_NODE) if step > 0]
    epsilon = next((series[-1][1] for name in EPSILON_METRICS if (series := history(name))), None)
    rounds = max((series[-1][0] for series in (accuracy, round_seconds) if series), default=None)
    start, end = run.info.start_time, run.info.end_time
    return RunFigures(
        run_id=run.info.run_id,
        name=run.info.run_name or run.info.run_id,
        status=run.info.status,
        settings=settings,
        label=label,
        protection=run.data.tags.get(UPDATE_PROTECTION_TAG) or run.data.params.get(PROTECTION_PARAM),
        privacy=run.data.params.get(PRIVACY_PARAM),
        accuracy=accuracy,
        federated_accuracy=history(FEDERATED_ACCURACY),
        rounds=rounds,
        rounds_to_target=next((step for step, value in accuracy if step > 0 and value >= target), None),
        wall_seconds=(end - start) / 1000 if start and end else None,
        seconds_per_round=statistics.median(seconds) if seconds else None,
        bytes_per_node=statistics.fmean(uploads) if uploads else None,
        epsilon=epsilon,
        audited_mode=run.data.tags.get(AUDITED_MODE_TAG),
        attack={name: history(name)[-1][1] for name in AUDIT_METRICS if name in logged},
    )


def _history(client: MlflowClient, run_id: str, name: str) -> Series:
    """(step, value) by step; a step logged twice (a buffered record sent again) keeps its latest value."""
    by_step: dict[int, tuple[int, float]] = {}
    for metric in client.get_metric_history(run_id, name):
        if metric.step not in by_step or metric.timestamp >= by_step[metric.step][0]:
            by_step[metric.step] = (metric.timestamp, metric.value)
    return tuple((step, value) for step, (_, value) in sorted(by_step.items()))
