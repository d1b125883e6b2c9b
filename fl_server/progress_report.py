"""What a coordinator watching the console sees: a line per round, a table at the end."""

import math
import sys
from typing import TextIO

from flwr.app import ArrayRecord

from fl_protocol import records
from fl_server.round_record import RoundRecord


class ProgressReport:
    """A round listener that prints one line per round."""

    def __init__(self, num_rounds: int, stream: TextIO | None = None) -> None:
        self._num_rounds = num_rounds
        self._stream = stream or sys.stdout

    def holdings_reported(self, reports: dict[str, dict[str, int | str]]) -> None:
        for label, report in sorted(reports.items()):
            skipped = int(report.get("skipped", 0))
            note = f", {skipped} files skipped (see holdings/reports.json)" if skipped else ""
            self._print(f"  {label}: {report.get('loaded', '?')} examples{note}")

    def round_finished(self, record: RoundRecord, arrays: ArrayRecord) -> None:
        if record.round == 0:
            accuracy = _fmt(record.central_eval.get(records.EVAL_ACCURACY))
            self._print(f"round 0/{self._num_rounds}  central accuracy {accuracy}")
            return
        failures = f"  ({len(record.node_failures)} node failures)" if record.node_failures else ""
        # Protected modes report federated accuracy later (see federated_evaluation).
        federated = record.federated_eval.get(records.EVAL_ACCURACY)
        federated_part = f"  federated accuracy {_fmt(federated)}" if federated is not None else ""
        self._print(
            f"round {record.round}/{self._num_rounds}"
            f"  train loss {_loss(record.train_metrics, bound_named=True)}{federated_part}"
            f"  central accuracy {_fmt(record.central_eval.get(records.EVAL_ACCURACY))}"
            f"  {record.seconds:.1f} s  {record.nodes_replied}/{record.nodes_sampled} nodes{failures}"
        )

    def round_failed(self, record: RoundRecord, reason: str) -> None:
        self._print(f"round {record.round}/{self._num_rounds}  FAILED, model unchanged: {reason}")

    def federated_evaluation(self, record: RoundRecord) -> None:
        accuracy = _fmt(record.federated_eval.get(records.EVAL_ACCURACY))
        self._print(f"  federated accuracy of the round-{record.round} model: {accuracy}")

    def _print(self, line: str) -> None:
        print(line, file=self._stream, flush=True)


def format_final_table(history: list[RoundRecord]) -> str:
    """Round, train loss, federated and central accuracy, seconds, as aligned text."""
    header = ("round", "train loss", "fed. eval acc", "central eval acc", "seconds")
    rows = [header]
    for record in history:
        rows.append(
            (
                str(record.round),
                _loss(record.train_metrics),
                _fmt(record.federated_eval.get(records.EVAL_ACCURACY)),
                _fmt(record.central_eval.get(records.EVAL_ACCURACY)),
                f"{record.seconds:.2f}" if record.round else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _loss(metrics: dict[str, float], bound_named: bool = False) -> str:
    """The mean training loss, or that it was clipped: a loss at the bound is no measurement."""
    if clipped := metrics.get(records.TRAIN_LOSS_AT_BOUND):
        return f"clipped ({int(clipped)} nodes{' at secure.secagg.metric_bound' if bound_named else ''})"
    return _fmt(metrics.get(records.TRAIN_LOSS))


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4f}"
