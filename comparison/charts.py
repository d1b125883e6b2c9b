"""What each plot of a comparison shows, as plain data: built here, drawn by `render`.

Keeping the data apart from matplotlib lets a test check exactly which series a plot
holds. A run a plot cannot show (it logged no accuracy, no epsilon, no timing) is named
in the plot's notes instead of vanishing; a plot no run has data for is not drawn.
"""

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from comparison.run_figures import RunFigures
from fl_protocol.protection.modes import ProtectionMode
from fl_server.tracking.audit_metrics import AUDIT_METRICS

NOT_LOGGED = "(not logged)"


@dataclass(frozen=True)
class LineSeries:
    """Points of one series, in x order."""

    label: str
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class ReferenceLine:
    """A horizontal line: a run with the y figure but without the x one (e.g. no epsilon)."""

    label: str
    y: float


@dataclass(frozen=True)
class LineChart:
    file: str
    title: str
    xlabel: str
    ylabel: str
    series: tuple[LineSeries, ...]
    references: tuple[ReferenceLine, ...] = ()
    notes: tuple[str, ...] = ()
    integer_x: bool = False
    # Epsilon starts at 0 (no privacy spent): the axis does too.
    x_from_zero: bool = False
    # Why the chart is not drawn when no run has data for it.
    empty: str = ""


@dataclass(frozen=True)
class ModePanel:
    """One figure by mode: per mode, each run's value (a bar shows their median, dots the runs)."""

    ylabel: str
    values: tuple[tuple[str, tuple[float, ...]], ...]

    def median(self, mode: str) -> float:
        return statistics.median(dict(self.values)[mode])


@dataclass(frozen=True)
class ModeChart:
    file: str
    title: str
    panels: tuple[ModePanel, ...]
    notes: tuple[str, ...] = ()
    empty: str = ""


Chart = LineChart | ModeChart


def accuracy_per_round(runs: Sequence[RunFigures]) -> LineChart:
    """Central accuracy per round, one line per run."""
    return LineChart(
        file="accuracy_per_round.png", title="Central accuracy per round", xlabel="round", ylabel="accuracy",
        series=tuple(LineSeries(run.label, _floats(run.accuracy)) for run in runs if run.accuracy),
        notes=_not_shown("no central accuracy", [run for run in runs if not run.accuracy]),
        integer_x=True, empty="no run logged a central accuracy",
    )


def accuracy_vs_epsilon(runs: Sequence[RunFigures]) -> LineChart:
    """Final accuracy against epsilon spent, one series per privacy mode; runs without epsilon as reference lines."""
    by_privacy: dict[str, list[tuple[float, float]]] = {}
    for run in runs:
        if run.epsilon is not None and (accuracy := run.final_accuracy) is not None:
            by_privacy.setdefault(run.privacy or NOT_LOGGED, []).append((run.epsilon, accuracy))
    references = tuple(
        ReferenceLine(f"{run.label} (no epsilon)", run.final_accuracy)
        for run in runs if run.epsilon is None and run.final_accuracy is not None
    ) if by_privacy else ()
    return LineChart(
        file="accuracy_vs_epsilon.png", title="Final central accuracy against epsilon", xlabel="epsilon",
        ylabel="accuracy",
        series=tuple(LineSeries(f"privacy={mode}", tuple(sorted(points))) for mode, points in by_privacy.items()),
        references=references,
        notes=_not_shown("no accuracy", [run for run in runs if run.final_accuracy is None]), x_from_zero=True,
        empty="no run logged both an epsilon and an accuracy (privacy=central or local_dpsgd log one)",
    )


def seconds_per_round_by_mode(runs: Sequence[RunFigures]) -> ModeChart:
    """Each run's median seconds per round, grouped by update protection."""
    panel = _panel("seconds per round (median)", runs, lambda run: run.seconds_per_round, lambda run: run.protection)
    return ModeChart(
        file="seconds_per_round_by_mode.png", title="Seconds per round by protection mode",
        panels=(panel,) if panel.values else (),
        notes=_not_shown("no round timings", [run for run in runs if run.seconds_per_round is None]),
        empty="no run logged round timings",
    )


def attack_quality_by_mode(runs: Sequence[RunFigures]) -> ModeChart:
    """One panel per audit figure any run logged, by the mode each audit attacked (else the run's protection)."""
    panels = []
    for metric, header in AUDIT_METRICS.items():
        panel = _panel(header, runs, lambda run, metric=metric: run.attack.get(metric), lambda run: run.mode)
        if panel.values:
            panels.append(panel)
    # Training runs are not attacks: they are not listed as missing here (the table shows their gaps).
    return ModeChart(
        file="attack_quality_by_mode.png", title="Privacy audit: attack quality by mode", panels=tuple(panels),
        empty="no run logged privacy audit figures",
    )


def all_charts(runs: Sequence[RunFigures]) -> tuple[Chart, ...]:
    return (accuracy_per_round(runs), accuracy_vs_epsilon(runs), seconds_per_round_by_mode(runs),
            attack_quality_by_mode(runs))


def has_data(chart: Chart) -> bool:
    return bool(chart.series) if isinstance(chart, LineChart) else bool(chart.panels)


def _panel(ylabel: str, runs: Sequence[RunFigures], value: Callable[[RunFigures], float | None],
           mode: Callable[[RunFigures], str | None]) -> ModePanel:
    by_mode: dict[str, list[float]] = {}
    for run in runs:
        if (figure := value(run)) is not None:
            by_mode.setdefault(mode(run) or NOT_LOGGED, []).append(figure)
    return ModePanel(ylabel, tuple((name, tuple(by_mode[name])) for name in sorted(by_mode, key=_mode_order)))


def _mode_order(mode: str) -> tuple[int, int, str]:
    """Weakest protection first (plaintext, secagg, ckks), each without privacy before with; others after."""
    protection, _, privacy = mode.partition("+")
    known = [str(member) for member in ProtectionMode]
    return (known.index(protection) if protection in known else len(known), bool(privacy), mode)


def _floats(series: tuple[tuple[int, float], ...]) -> tuple[tuple[float, float], ...]:
    return tuple((float(step), value) for step, value in series)


def _not_shown(reason: str, runs: Sequence[RunFigures]) -> tuple[str, ...]:
    return (f"not shown, {reason}: {', '.join(run.label for run in runs)}",) if runs else ()
