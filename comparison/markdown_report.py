"""The comparison as Markdown a researcher pastes into a report: what was compared, the table, the plots.

Images are linked by file name, so the folder (or the comparison run's artifacts) can be
moved as a whole and the links still resolve.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from comparison.charts import Chart
from comparison.run_figures import RunFigures
from comparison.table import MISSING, Cell, Column, rows


@dataclass(frozen=True)
class ReportHeading:
    """Where the compared runs come from, in words for the report's first lines."""

    selection: str
    tracking_uri: str
    created: str


def markdown(heading: ReportHeading, table_columns: Sequence[Column], runs: Sequence[RunFigures],
             drawn: Sequence[Chart], not_drawn: Sequence[Chart], shared: Mapping[str, str]) -> str:
    """The whole report as Markdown text."""
    table_rows = rows(table_columns, runs)
    right = [any(isinstance(row[index], float | int) for row in table_rows) for index in range(len(table_columns))]
    lines = [
        f"# Comparison of {len(runs)} run{'' if len(runs) == 1 else 's'}: {heading.selection}",
        "",
        f"Read from `{heading.tracking_uri}` on {heading.created}. {MISSING}: the run did not log it.",
        "",
        _row([column.header for column in table_columns]),
        _row(["---:" if align else "---" for align in right]),
        *(_row([_shown(column, cell) for column, cell in zip(table_columns, row)]) for row in table_rows),
        "",
        *(f"- **{column.header}**: {column.meaning}" for column in table_columns if column.meaning),
    ]
    if shared:
        lines += ["", "Shared by all runs: " + ", ".join(f"`{name}={value}`" for name, value in shared.items()) + "."]
    lines += ["", "## Plots", ""]
    for chart in drawn:
        lines += [f"![{chart.title}]({chart.file})", ""]
    lines += [f"Not drawn: {chart.title.lower()}: {chart.empty}." for chart in not_drawn]
    return "\n".join(lines).rstrip() + "\n"


def write_markdown(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _shown(column: Column, cell: Cell) -> str:
    return MISSING if cell is None else column.shown(cell)


def _row(cells: Sequence[str]) -> str:
    """A table row; a `|` inside a cell (a run's name may hold one) must not split it."""
    return "| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in cells) + " |"
