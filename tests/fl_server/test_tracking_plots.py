"""The metrics plot attached to every tracked run."""

from pathlib import Path

from matplotlib.image import imread

from fl_server.round_record import RoundRecord
from fl_server.tracking import plot_history

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_plot_of_a_run_is_a_png_with_two_panels(tmp_path: Path) -> None:
    history = [RoundRecord(round=0, central_eval={"eval-accuracy": 0.1, "eval-loss": 2.3})] + [
        RoundRecord(
            round=r,
            train_metrics={"train-loss": 1.0 / r},
            federated_eval={"eval-accuracy": 0.2 * r, "eval-loss": 1.5 / r},
            central_eval={"eval-accuracy": 0.25 * r, "eval-loss": 1.4 / r},
        )
        for r in range(1, 4)
    ]

    path = plot_history(history, tmp_path / "plots" / "metrics.png")

    assert path.read_bytes().startswith(PNG_SIGNATURE)
    height, width, _ = imread(path).shape
    assert width > height  # the two panels sit side by side


def test_plot_tolerates_failed_rounds_and_an_empty_history(tmp_path: Path) -> None:
    failed = [RoundRecord(round=0, central_eval={"eval-accuracy": 0.1}), RoundRecord(round=1)]

    assert plot_history(failed, tmp_path / "failed.png").read_bytes().startswith(PNG_SIGNATURE)
    assert plot_history([], tmp_path / "empty.png").read_bytes().startswith(PNG_SIGNATURE)
