"""Drawing a comparison's charts as PNG files, sized to paste into a report.

On a bare `Figure` with the Agg canvas, as the tracker's own plot: no pyplot, so no
global figure state and no display needed.
"""

import textwrap
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from comparison.charts import Chart, LineChart, ModeChart, ModePanel

_DPI = 120
_PANEL_WIDTH = 4.5
_HEIGHT = 4.0
_PANELS_PER_ROW = 2
# Small print under a chart: characters per inch of width and height of a line, at 7 points.
_NOTE_CHARS_PER_INCH = 16
_NOTE_LINE_INCHES = 0.13
# A legend with more entries than this goes below the axes, where it cannot hide lines.
_LEGEND_INSIDE = 6


def draw(chart: Chart, folder: Path) -> tuple[Path, Figure]:
    """Draw `chart` into `folder/<chart.file>`; return the file and the figure (its axes hold the series)."""
    figure = _line_figure(chart) if isinstance(chart, LineChart) else _mode_figure(chart)
    _write_notes(figure, chart.notes)
    path = folder / chart.file
    folder.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=_DPI)
    return path, figure


def _line_figure(chart: LineChart) -> Figure:
    figure = _figure(_PANEL_WIDTH * 1.6, _HEIGHT)
    axes = figure.subplots()
    for series in chart.series:
        xs, ys = zip(*series.points)
        axes.plot(xs, ys, marker="o", label=series.label)
    for reference in chart.references:
        axes.axhline(reference.y, linestyle="--", linewidth=1, color="grey", alpha=0.7)
        axes.annotate(reference.label, (0, reference.y), xycoords=("axes fraction", "data"), fontsize=7,
                      va="bottom", color="dimgrey")
    axes.set(title=chart.title, xlabel=chart.xlabel, ylabel=chart.ylabel)
    if chart.integer_x:
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    if chart.x_from_zero:
        axes.set_xlim(left=0)
    axes.grid(alpha=0.3)
    _legend(axes, len(chart.series))
    return figure


def _mode_figure(chart: ModeChart) -> Figure:
    """Panels side by side, two to a row: a report's page is narrower than a screen."""
    columns = min(len(chart.panels), _PANELS_PER_ROW)
    rows = -(-len(chart.panels) // columns)
    figure = _figure(_PANEL_WIDTH * columns, _HEIGHT * rows)
    figure.suptitle(chart.title)
    grid = figure.subplots(rows, columns, squeeze=False).flatten()
    for axes, panel in zip(grid, chart.panels):
        _draw_panel(axes, panel)
    for unused in grid[len(chart.panels):]:
        figure.delaxes(unused)
    return figure


def _draw_panel(axes: Axes, panel: ModePanel) -> None:
    """A bar per mode at the median of its runs, and a dot per run."""
    modes = [mode for mode, _ in panel.values]
    positions = range(len(modes))
    axes.bar(positions, [panel.median(mode) for mode in modes], color="lightsteelblue", edgecolor="steelblue")
    for position, (_, values) in zip(positions, panel.values):
        axes.plot([position] * len(values), values, "o", color="black", markersize=4)
    axes.set_xticks(list(positions), modes, rotation=20, ha="right")
    axes.set_ylabel(panel.ylabel)
    axes.grid(axis="y", alpha=0.3)


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _write_notes(figure: Figure, notes: tuple[str, ...]) -> None:
    """The runs a chart cannot show, in small print under it, in space kept free of the axes."""
    if not notes:
        return
    width, height = figure.get_size_inches()
    lines = [line for note in notes for line in textwrap.wrap(note, int(width * _NOTE_CHARS_PER_INCH))]
    figure.set_size_inches(width, height + len(lines) * _NOTE_LINE_INCHES)
    share = (len(lines) * _NOTE_LINE_INCHES + 0.1) / (height + len(lines) * _NOTE_LINE_INCHES)
    figure.get_layout_engine().set(rect=(0, share, 1, 1 - share))  # type: ignore[union-attr, call-arg]
    figure.text(0.01, 0.01, "\n".join(lines), fontsize=7, va="bottom", color="dimgrey")


def _legend(axes: Axes, entries: int) -> None:
    if entries == 0:
        return
    if entries <= _LEGEND_INSIDE:
        axes.legend(fontsize=8)
    else:
        axes.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncols=2)
