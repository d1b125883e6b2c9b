"""A whole comparison: select runs, read their figures, write the tables and plots, log them as a run.

Everything a user can get wrong is checked before anything is written, so bad input
leaves no half-made folder and no run in MLflow.
"""

import datetime
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Run

from comparison import charts
from comparison.comparison_run import ComparisonNotLogged, LoggedComparison, log_comparison
from comparison.csv_report import write_csv
from comparison.markdown_report import ReportHeading, markdown, write_markdown
from comparison.render import draw
from comparison.run_figures import PRIVACY_PARAM, PROTECTION_PARAM, RunFigures, read_run_figures
from comparison.selection import RunSelection, SelectedRuns, select_runs
from comparison.store import one_line, open_store
from comparison.table import columns
from comparison.varied_settings import describe, shared_values, varied_keys
from fedtriage.errors import ConfigError

MARKDOWN_FILE = "comparison.md"
CSV_FILE = "comparison.csv"
# Settings named under the table when every run shares them: what a reader needs to place the numbers.
_HEADLINE_SETTINGS = ("holdings.source", "model.name", "strategy.name", "partition.scheme", "federation.num_nodes",
                      "federation.num_rounds", "secure.mode", "privacy.mode")
_SHORT_ID = 8


@dataclass(frozen=True)
class ComparisonRequest:
    """What `fedtriage compare` was asked: which runs, from which store, into which folder, against which target."""

    selection: RunSelection
    out: Path
    target: float
    tracking_uri: str | None = None


@dataclass(frozen=True)
class ComparisonReport:
    """What a comparison wrote, and where it logged it."""

    runs: tuple[RunFigures, ...]
    markdown: Path
    csv: Path
    plots: tuple[Path, ...]
    drawn: tuple[charts.Chart, ...]
    not_drawn: tuple[charts.Chart, ...]
    tracking_uri: str
    logged: LoggedComparison


def compare(request: ComparisonRequest) -> ComparisonReport:
    """Run the whole comparison `request` asks for."""
    _check(request)
    client, tracking_uri = open_store(request.tracking_uri)
    selected = select_runs(client, request.selection)
    runs = _figures(client, selected, request.target)
    out = _output_folder(request.out)
    every_chart = charts.all_charts(runs)
    drawn = tuple(chart for chart in every_chart if charts.has_data(chart))
    not_drawn = tuple(chart for chart in every_chart if not charts.has_data(chart))
    plots = tuple(draw(chart, out)[0] for chart in drawn)
    table_columns = columns(request.target, runs)
    heading = ReportHeading(_describe(request.selection), tracking_uri,
                            datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"))
    params = [run.data.params for run in selected.runs]
    text = markdown(heading, table_columns, runs, drawn, not_drawn, shared_values(params, _HEADLINE_SETTINGS))
    markdown_path = write_markdown(out / MARKDOWN_FILE, text)
    csv_path = write_csv(out / CSV_FILE, table_columns, runs)
    try:
        logged = log_comparison(
            client, selected.experiment_id, request.selection, request.target, [run.run_id for run in runs],
            [markdown_path, csv_path, *plots], text, selected.sweep_parent_id,
        )
    except ComparisonNotLogged as err:
        raise ComparisonNotLogged(f"{err}; the report's files are in {out}") from err
    return ComparisonReport(runs, markdown_path, csv_path, plots, drawn, not_drawn, tracking_uri, logged)


def _check(request: ComparisonRequest) -> None:
    if not 0 < request.target <= 1:
        raise ConfigError("--target", f"an accuracy between 0 (excluded) and 1, got {request.target:g}")
    if request.out.exists() and not request.out.is_dir():
        raise ConfigError("--out", f"{request.out} is a file; the comparison needs a folder")


def _figures(client: MlflowClient, selected: SelectedRuns, target: float) -> tuple[RunFigures, ...]:
    """Each run's figures, labelled by the settings the runs differ in (its name when they differ in none)."""
    params = [run.data.params for run in selected.runs]
    varied = varied_keys(params)
    own_column = (PROTECTION_PARAM, PRIVACY_PARAM)
    runs = [
        read_run_figures(client, run, target, describe(run.data.params, [k for k in varied if k not in own_column]),
                         describe(run.data.params, varied) or _name(run))
        for run in selected.runs
    ]
    repeated = Counter(run.label for run in runs)
    return tuple(
        replace(run, label=f"{run.label} ({run.run_id[:_SHORT_ID]})") if repeated[run.label] > 1 else run
        for run in runs
    )


def _output_folder(out: Path) -> Path:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError("--out", f"cannot make the folder {out}: {one_line(err)}") from err
    return out


def _name(run: Run) -> str:
    return str(run.info.run_name or run.info.run_id)


def _describe(selection: RunSelection) -> str:
    parts = [f"experiment `{selection.experiment}`"]
    if selection.sweep is not None:
        parts.append(f"sweep `{selection.sweep}`")
    parts += [f"tag `{name}={value}`" for name, value in selection.tags]
    return ", ".join(parts)
