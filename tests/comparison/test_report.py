"""A comparison's tables, plots and MLflow run hold exactly what the compared runs logged."""

import csv
from pathlib import Path

import pytest
from matplotlib.image import imread
from mlflow import MlflowClient

from comparison.charts import LineChart, ModeChart
from comparison.comparison_run import ARTIFACT_FOLDER, COMPARED_RUNS_TAG
from comparison.render import draw
from comparison.report import CSV_FILE, MARKDOWN_FILE, ComparisonReport, ComparisonRequest, compare
from comparison.selection import COMPARISON_TAG, RunSelection
from comparison.table import MISSING, NOT_REACHED
from fl_server.tracking.audit_metrics import (
    AUDITED_MODE_TAG,
    INVERSION_PSNR,
    INVERSION_SSIM,
    MIA_ADVANTAGE,
    MIA_AUC,
)
from fl_server.tracking.mlflow_tracker import UPDATE_PROTECTION_TAG
from tests.support.logged_runs import START_MS, PlannedRun, log_run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TARGET = 0.9

FAST = PlannedRun(
    "fast",
    metrics={
        "central/eval-accuracy": [(0, 0.1), (1, 0.5), (2, 0.92), (3, 0.9)],
        "federated/eval-accuracy": [(0, 0.1), (1, 0.45), (2, 0.9), (3, 0.91)],
        "round/seconds": [(1, 8.0), (2, 1.0), (3, 2.0)],
        "protocol/bytes-per-node-mean": [(1, 100.0), (2, 200.0), (3, 300.0)],
    },
    params={"secure.mode": "plaintext", "privacy.mode": "none", "strategy.name": "fedavg", "output_dir": "/runs/a"},
    tags={UPDATE_PROTECTION_TAG: "plaintext"},
    start_ms=START_MS, end_ms=START_MS + 61_500,
)
PRIVATE = PlannedRun(
    "private",
    metrics={
        "central/eval-accuracy": [(0, 0.1), (1, 0.3), (2, 0.6)],
        "round/seconds": [(1, 3.0), (2, 5.0)],
        "protocol/dp-epsilon": [(1, 2.5), (2, 4.0)],
    },
    params={"secure.mode": "secagg", "privacy.mode": "central", "strategy.name": "fedprox", "output_dir": "/runs/b"},
    tags={UPDATE_PROTECTION_TAG: "secagg"},
    start_ms=START_MS + 100_000, end_ms=START_MS + 130_000,
)
# Logged nothing but its name, and never ended: it must still have its row.
BARE = PlannedRun("bare", start_ms=START_MS + 200_000, end_ms=None, status=None)


@pytest.fixture
def three_runs(store: str, request: pytest.FixtureRequest) -> tuple[str, dict[str, str]]:
    """An experiment named after the test with the three runs above; their ids by name."""
    experiment = request.node.name
    return experiment, {run.name: log_run(store, experiment, run) for run in (FAST, PRIVATE, BARE)}


def run_compare(store: str, experiment: str, out: Path) -> ComparisonReport:
    return compare(ComparisonRequest(RunSelection(experiment), out, TARGET, store))


def csv_rows(report: ComparisonReport) -> dict[str, dict[str, str]]:
    with report.csv.open(newline="", encoding="utf-8") as file:
        return {row["run_name"]: row for row in csv.DictReader(file)}


def markdown_row(report: ComparisonReport, run_name: str) -> list[str]:
    (line,) = [line for line in report.markdown.read_text().splitlines() if line.startswith(f"| {run_name} |")]
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_the_csv_holds_each_runs_logged_figures_at_full_precision(
    store: str, three_runs: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    experiment, ids = three_runs
    rows = csv_rows(run_compare(store, experiment, tmp_path / "out"))

    assert list(rows) == ["fast", "private", "bare"]  # oldest first, none dropped
    fast, private = rows["fast"], rows["private"]
    assert fast["run_id"] == ids["fast"]
    identity = ("protection", "privacy", "status", "rounds")
    assert [fast[name] for name in identity] == ["plaintext", "none", "FINISHED", "3"]
    assert float(fast["final_accuracy"]) == 0.9 and float(fast["best_accuracy"]) == 0.92
    assert float(fast["final_federated_accuracy"]) == 0.91
    assert fast["rounds_to_target"] == "2"
    assert float(fast["wall_seconds"]) == 61.5
    assert float(fast["seconds_per_round"]) == 2.0  # the median: round 1's 8 s start-up does not dominate
    assert float(fast["bytes_per_node"]) == 200.0
    assert fast["epsilon"] == ""
    assert float(private["epsilon"]) == 4.0  # the privacy spent by the end, not the first round's
    assert private["rounds_to_target"] == NOT_REACHED
    assert private["bytes_per_node"] == "" and private["final_federated_accuracy"] == ""
    assert (fast["settings"], private["settings"]) == ("strategy.name=fedavg", "strategy.name=fedprox")


def test_a_run_that_logged_nothing_keeps_its_row_with_every_figure_missing(
    store: str, three_runs: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    experiment, ids = three_runs
    report = run_compare(store, experiment, tmp_path / "out")

    bare = csv_rows(report)["bare"]
    assert bare["run_id"] == ids["bare"] and bare["status"] == "RUNNING"
    figures = ["protection", "privacy", "rounds", "final_accuracy", "best_accuracy", "final_federated_accuracy",
               "rounds_to_target", "wall_seconds", "seconds_per_round", "bytes_per_node", "epsilon"]
    assert {name: bare[name] for name in figures} == dict.fromkeys(figures, "")
    cells = markdown_row(report, "bare")
    assert cells.count(MISSING) == len(figures)
    assert cells[1] == f"`{ids['bare'][:8]}`"
    accuracy_chart = next(chart for chart in report.drawn if chart.file == "accuracy_per_round.png")
    assert accuracy_chart.notes == ("not shown, no central accuracy: bare",)


def test_the_markdown_table_shows_the_same_figures_rounded_for_reading(
    store: str, three_runs: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    experiment, _ = three_runs
    report = run_compare(store, experiment, tmp_path / "out")
    text = report.markdown.read_text()

    header = markdown_row(report, "run")
    fast = dict(zip(header, markdown_row(report, "fast")))
    private = dict(zip(header, markdown_row(report, "private")))
    assert (fast["final acc."], fast["best acc."], fast["fed. acc."]) == ("0.9000", "0.9200", "0.9100")
    assert (fast["rounds to 0.9"], fast["wall time (s)"], fast["s/round"]) == ("2", "61.5", "2.00")
    assert (fast["bytes/node"], fast["epsilon"]) == ("200", MISSING)
    assert (private["epsilon"], private["rounds to 0.9"]) == ("4.00", NOT_REACHED)
    assert f"# Comparison of 3 runs: experiment `{experiment}`" in text
    assert f"Read from `{store}`" in text
    assert "![Central accuracy per round](accuracy_per_round.png)" in text
    assert "Not drawn: privacy audit: attack quality by mode: no run logged privacy audit figures." in text


def test_each_plot_is_a_png_with_one_series_per_run_that_has_the_data(
    store: str, three_runs: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    experiment, _ = three_runs
    report = run_compare(store, experiment, tmp_path / "out")
    charts = {chart.file: chart for chart in report.drawn}

    assert [path.name for path in report.plots] == list(charts) == [
        "accuracy_per_round.png", "accuracy_vs_epsilon.png", "seconds_per_round_by_mode.png"]
    for path in report.plots:
        assert path.read_bytes().startswith(PNG_SIGNATURE)
        height, width, _ = imread(path).shape
        assert height > 100 and width > 100
    labels = {"fast": "privacy.mode=none, secure.mode=plaintext, strategy.name=fedavg",
              "private": "privacy.mode=central, secure.mode=secagg, strategy.name=fedprox"}
    accuracy = charts["accuracy_per_round.png"]
    assert isinstance(accuracy, LineChart)
    assert [(series.label, series.points) for series in accuracy.series] == [
        (labels["fast"], ((0.0, 0.1), (1.0, 0.5), (2.0, 0.92), (3.0, 0.9))),
        (labels["private"], ((0.0, 0.1), (1.0, 0.3), (2.0, 0.6))),
    ]
    epsilon = charts["accuracy_vs_epsilon.png"]
    assert isinstance(epsilon, LineChart)
    assert [(series.label, series.points) for series in epsilon.series] == [("privacy=central", ((4.0, 0.6),))]
    assert [(line.label, line.y) for line in epsilon.references] == [(f"{labels['fast']} (no epsilon)", 0.9)]
    seconds = charts["seconds_per_round_by_mode.png"]
    assert isinstance(seconds, ModeChart)
    assert [panel.values for panel in seconds.panels] == [(("plaintext", (2.0,)), ("secagg", (4.0,)))]
    assert seconds.notes == ("not shown, no round timings: bare",)

    _, figure = draw(accuracy, tmp_path / "again")
    (axes,) = figure.axes
    assert [text.get_text() for text in axes.get_legend().get_texts()] == [labels["fast"], labels["private"]]
    assert [list(line.get_ydata()) for line in axes.get_lines()] == [[0.1, 0.5, 0.92, 0.9], [0.1, 0.3, 0.6]]


def test_the_comparison_run_holds_the_report_and_is_never_compared_itself(
    store: str, three_runs: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    experiment, ids = three_runs
    first = run_compare(store, experiment, tmp_path / "first")
    second = run_compare(store, experiment, tmp_path / "second")

    assert [run.run_id for run in second.runs] == [run.run_id for run in first.runs] == list(ids.values())
    client = MlflowClient(store)
    logged = client.get_run(first.logged.run_id)
    assert logged.info.status == "FINISHED"
    assert logged.data.tags[COMPARISON_TAG] == "true"
    assert logged.data.tags[COMPARED_RUNS_TAG] == ",".join(ids.values())
    assert logged.data.params["compare.target"] == "0.9"
    artifacts = {Path(entry.path).name for entry in client.list_artifacts(first.logged.run_id, ARTIFACT_FOLDER)}
    assert artifacts == {MARKDOWN_FILE, CSV_FILE, *(path.name for path in first.plots)}
    downloaded = client.download_artifacts(first.logged.run_id, f"{ARTIFACT_FOLDER}/{CSV_FILE}", str(tmp_path))
    assert Path(downloaded).read_bytes() == first.csv.read_bytes()


def test_audit_figures_get_columns_and_a_plot_by_the_mode_each_audit_attacked(
    store: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    experiment = request.node.name
    training = log_run(store, experiment, FAST)
    audits = {
        "audit-plaintext-1": ("plaintext",
                              {INVERSION_PSNR: 25.0, INVERSION_SSIM: 0.8, MIA_AUC: 0.7, MIA_ADVANTAGE: 0.3}),
        "audit-plaintext-2": ("plaintext", {INVERSION_PSNR: 23.0}),
        "audit-secagg": ("secagg", {INVERSION_PSNR: 8.0, INVERSION_SSIM: 0.1}),
        "audit-dp": ("secagg+central", {MIA_AUC: 0.52, MIA_ADVANTAGE: 0.04}),
    }
    for order, (name, (mode, figures)) in enumerate(audits.items()):  # runs are compared in order of start
        log_run(store, experiment, PlannedRun(name, metrics={metric: [(0, value)] for metric, value in figures.items()},
                                              tags={AUDITED_MODE_TAG: mode}, start_ms=START_MS + 1000 * (order + 1)))

    report = run_compare(store, experiment, tmp_path / "out")

    rows = csv_rows(report)
    assert rows["fast"]["run_id"] == training
    assert rows["fast"]["audit_inversion_psnr"] == "" and rows["fast"]["audited_mode"] == ""
    assert float(rows["audit-plaintext-1"]["audit_mia_advantage"]) == 0.3
    assert rows["audit-dp"]["audited_mode"] == "secagg+central" and rows["audit-dp"]["audit_inversion_psnr"] == ""
    header = markdown_row(report, "run")
    assert {"inversion PSNR (dB)", "inversion SSIM", "MIA AUC", "MIA advantage", "audited mode"} <= set(header)
    (attack,) = [chart for chart in report.drawn if chart.file == "attack_quality_by_mode.png"]
    assert isinstance(attack, ModeChart)
    assert [(panel.ylabel, panel.values) for panel in attack.panels] == [
        ("inversion PSNR (dB)", (("plaintext", (25.0, 23.0)), ("secagg", (8.0,)))),
        ("inversion SSIM", (("plaintext", (0.8,)), ("secagg", (0.1,)))),
        ("MIA AUC", (("plaintext", (0.7,)), ("secagg+central", (0.52,)))),
        ("MIA advantage", (("plaintext", (0.3,)), ("secagg+central", (0.04,)))),
    ]
    assert attack.panels[0].median("plaintext") == 24.0
    _, figure = draw(attack, tmp_path / "again")
    assert len(figure.axes) == 4
    assert [tick.get_text() for tick in figure.axes[0].get_xticklabels()] == ["plaintext", "secagg"]
