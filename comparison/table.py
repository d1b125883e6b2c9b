"""The comparison table's columns, defined once for the Markdown and the CSV table alike.

A cell is a value or None (missing). Markdown shows values rounded for reading and `—`
for missing; the CSV keeps full precision and leaves missing cells empty, so it loads
into a spreadsheet or pandas as numbers.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from comparison.run_figures import RunFigures
from fl_server.tracking.audit_metrics import AUDIT_METRICS

Cell = float | int | str | None
MISSING = "—"
# A run whose accuracy never reached the target within its rounds (not the same as no accuracy logged).
NOT_REACHED = "not reached"
_SHORT_ID = 8


@dataclass(frozen=True)
class Column:
    """One column: its Markdown header, CSV name, how to read it from a run and how to show it."""

    header: str
    name: str
    value: Callable[[RunFigures], Cell]
    shown: Callable[[float | int | str], str] = str
    # What the column means, for the legend under the Markdown table (empty: self-explanatory).
    meaning: str = ""


def columns(target: float, runs: Sequence[RunFigures]) -> tuple[Column, ...]:
    """The table's columns; settings only when the runs differ in some, attack figures only when some run has one."""
    base = (
        Column("run", "run_name", lambda run: run.name),
        Column("run id", "run_id", lambda run: run.run_id, lambda text: f"`{str(text)[:_SHORT_ID]}`"),
        Column("protection", "protection", lambda run: run.protection),
        Column("privacy", "privacy", lambda run: run.privacy),
        Column("status", "status", lambda run: run.status),
        Column("rounds", "rounds", lambda run: run.rounds),
        Column("final acc.", "final_accuracy", lambda run: run.final_accuracy, _fixed(4),
               "central accuracy of the last round's model, on the server's held-out test set"),
        Column("best acc.", "best_accuracy", lambda run: run.best_accuracy, _fixed(4),
               "highest central accuracy of any round"),
        Column("fed. acc.", "final_federated_accuracy", lambda run: run.final_federated_accuracy, _fixed(4),
               "the nodes' own evaluation of the last model, weighted by their examples"),
        Column(f"rounds to {target:g}", "rounds_to_target", lambda run: _rounds_to_target(run),
               meaning=f"first round whose central accuracy reached {target:g}"),
        Column("wall time (s)", "wall_seconds", lambda run: run.wall_seconds, _fixed(1),
               "from the run's start to its end in MLflow"),
        Column("s/round", "seconds_per_round", lambda run: run.seconds_per_round, _fixed(2),
               "median duration of a round (the median: the first round also starts the nodes)"),
        Column("bytes/node", "bytes_per_node", lambda run: run.bytes_per_node, _thousands,
               "bytes one node uploads in a round, all protocol stages, mean over rounds"),
        Column("epsilon", "epsilon", lambda run: run.epsilon, _fixed(2),
               "privacy spent by the end (central DP, else the nodes' mean under local DP)"),
    )
    if any(run.settings for run in runs):
        settings = Column("settings", "settings", lambda run: run.settings,
                          meaning="the settings the compared runs differ in (besides protection and privacy)")
        base = (*base[:2], settings, *base[2:])
    if not any(run.attack for run in runs):
        return base
    attack = tuple(
        Column(header, metric.replace(".", "_"), _attack_value(metric), _fixed(3 if "psnr" not in metric else 2))
        for metric, header in AUDIT_METRICS.items()
    )
    audited = Column("audited mode", "audited_mode", lambda run: run.audited_mode,
                     meaning="what a privacy audit run attacked (protection, then privacy)")
    return (*base, audited, *attack)


def rows(table_columns: Sequence[Column], runs: Sequence[RunFigures]) -> list[list[Cell]]:
    """One row of cells per run, in the order of `runs`: a run missing every figure still has its row."""
    return [[column.value(run) for column in table_columns] for run in runs]


def _rounds_to_target(run: RunFigures) -> Cell:
    if run.rounds_to_target is not None:
        return run.rounds_to_target
    return NOT_REACHED if run.accuracy else None


def _attack_value(metric: str) -> Callable[[RunFigures], Cell]:
    return lambda run: run.attack.get(metric)


def _fixed(decimals: int) -> Callable[[float | int | str], str]:
    return lambda value: f"{value:.{decimals}f}" if isinstance(value, float | int) else str(value)


def _thousands(value: float | int | str) -> str:
    return f"{value:,.0f}" if isinstance(value, float | int) else str(value)
