"""A picture of the run for people who open MLflow: accuracy and loss per round.

Drawn on a bare `Figure` with the Agg canvas: no pyplot, so no global figure state and
no GUI backend on a headless coordinator.
"""

from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from fl_protocol import records
from fl_server.round_record import RoundRecord

# (panel title, [(line label, which metrics of a round, metric name)])
_PANELS: tuple[tuple[str, tuple[tuple[str, str, str], ...]], ...] = (
    (
        "Accuracy",
        (
            ("federated eval", "federated_eval", records.EVAL_ACCURACY),
            ("central eval", "central_eval", records.EVAL_ACCURACY),
        ),
    ),
    (
        "Loss",
        (
            ("train", "train_metrics", records.TRAIN_LOSS),
            ("federated eval", "federated_eval", records.EVAL_LOSS),
            ("central eval", "central_eval", records.EVAL_LOSS),
        ),
    ),
)


def plot_history(history: list[RoundRecord], path: Path) -> Path:
    """Draw accuracy and loss per round into the PNG `path` and return it."""
    figure = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(figure)
    for axes, (title, lines) in zip(figure.subplots(1, len(_PANELS)), _PANELS):
        _draw_panel(axes, title, lines, history)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=100)
    return path


def _draw_panel(
    axes: Axes, title: str, lines: tuple[tuple[str, str, str], ...], history: list[RoundRecord]
) -> None:
    for label, source, name in lines:
        points = [
            (record.round, getattr(record, source)[name])
            for record in history
            if name in getattr(record, source)
        ]
        if points:
            rounds, values = zip(*points)
            axes.plot(rounds, values, marker="o", label=label)
    axes.set_title(title)
    axes.set_xlabel("round")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    if axes.lines:
        axes.legend()
    else:
        axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)
