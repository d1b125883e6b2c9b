"""`fedtriage compare`: on real simulated runs, and every kind of bad input as one line and exit 2."""

import csv
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from matplotlib.image import imread
from mlflow import MlflowClient
from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_TIMEOUT

from cli.app import main
from comparison.comparison_run import ARTIFACT_FOLDER
from comparison.logged_metrics import (
    BYTES_PER_NODE,
    CENTRAL_ACCURACY,
    EPSILON_METRICS,
    FEDERATED_ACCURACY,
    ROUND_SECONDS,
)
from comparison.selection import COMPARISON_TAG
from tests.support.logged_runs import PlannedRun, log_run
from tests.support.mlflow_server import free_port
from tests.support.project import FEDTRIAGE

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def mlflow_env(isolated_mlflow_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The patience `fedtriage compare` sets for a dead server, set here so that it is undone after the test."""
    monkeypatch.setenv(MLFLOW_HTTP_REQUEST_MAX_RETRIES.name, "1")
    monkeypatch.setenv(MLFLOW_HTTP_REQUEST_TIMEOUT.name, "5")


@pytest.fixture(scope="module")
def known_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store with one run in experiment `known`; a file beside it that is not a database."""
    folder = tmp_path_factory.mktemp("store")
    (folder / "notes.db").write_text("not a database\n")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    log_run(uri, "known", PlannedRun("only", metrics={CENTRAL_ACCURACY: [(0, 0.1), (1, 0.5)]}))
    return uri


def bad_inputs(store: str) -> dict[str, tuple[list[str], str]]:
    """Case -> (arguments besides --out, what the error line must say)."""
    folder = store.removeprefix("sqlite:///").rsplit("/", 1)[0]
    known = ["--experiment", "known", "--tracking-uri", store]
    return {
        "unknown experiment": (["--experiment", "knwon", "--tracking-uri", store],
                               "--experiment: no experiment 'knwon' in this MLflow store; did you mean 'known'?"),
        "no run has the tag": ([*known, "--tag", "team=y"], "--tag: no run of experiment 'known' has the tags team=y"),
        "unknown sweep": ([*known, "--sweep", "09-00-00"], "--sweep: no run of sweep '09-00-00' in experiment 'known'"),
        "tag without =": ([*known, "--tag", "secagg"], "--tag: expected KEY=VALUE"),
        "target above 1": ([*known, "--target", "1.5"], "--target: an accuracy between 0 (excluded) and 1, got 1.5"),
        "target not a number": ([*known, "--target", "high"], "argument --target: invalid float value: 'high'"),
        "missing database": (["--experiment", "known", "--tracking-uri", f"sqlite:///{folder}/missing.db"],
                             f"--tracking-uri: no MLflow database at {folder}/missing.db"),
        "not a database": (["--experiment", "known", "--tracking-uri", f"sqlite:///{folder}/notes.db"],
                           "--tracking-uri: cannot read the MLflow store"),
        "no server": (["--experiment", "known", "--tracking-uri", f"http://127.0.0.1:{free_port()}"],
                      "--tracking-uri: cannot read the MLflow store http://127.0.0.1:"),
        "no experiment given": (["--tracking-uri", store], "the following arguments are required: --experiment"),
    }


@pytest.mark.parametrize("case", list(bad_inputs("sqlite:////store/mlflow.db")))
def test_bad_input_is_exit_2_with_one_line_naming_the_option_and_nothing_written(
    case: str, known_store: str, mlflow_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args, named = bad_inputs(known_store)[case]
    out = tmp_path / "report"

    code = main(["compare", *args, "--out", str(out)])

    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("fedtriage: error: ")
    assert named in err
    assert not out.exists()
    experiment = MlflowClient(known_store).get_experiment_by_name("known")
    assert [run.info.run_name for run in MlflowClient(known_store).search_runs([experiment.experiment_id])] == ["only"]


def test_the_default_store_is_mlflow_db_in_this_folder_and_a_missing_one_is_not_made(
    mlflow_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)

    assert main(["compare", "--experiment", "fedtriage", "--out", "report"]) == 2

    assert f"--tracking-uri: no MLflow database at {tmp_path / 'mlflow.db'}" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_an_output_path_that_is_a_file_is_refused(
    known_store: str, mlflow_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    out.write_text("keep me\n")

    assert main(["compare", "--experiment", "known", "--tracking-uri", known_store, "--out", str(out)]) == 2

    assert f"--out: {out} is a file" in capsys.readouterr().err
    assert out.read_text() == "keep me\n"


def test_model_register_latest_passes_over_a_comparison_run(
    mlflow_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ended = int(time.time() * 1000) - 1000  # before the comparison run's own end
    trained = log_run(store, "fedtriage", PlannedRun("trained", metrics={CENTRAL_ACCURACY: [(0, 0.1), (1, 0.5)]},
                                                    start_ms=ended - 60_000, end_ms=ended))
    assert main(["compare", "--experiment", "fedtriage", "--tracking-uri", store, "--out", str(tmp_path / "r")]) == 0
    capsys.readouterr()

    # The training run logged no model: the refusal names it, not the newer comparison run.
    assert main(["model", "register", "latest", "--tracking-uri", store]) == 2
    assert f"RUN: run {trained} logged no model" in capsys.readouterr().err


# --- on real simulated runs -------------------------------------------------------------------------------------

EXPERIMENT = "compare-e2e"
SWEEP = "protection"
ROUNDS = 2


@dataclass(frozen=True)
class SimulatedRuns:
    workdir: Path

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.workdir / 'mlflow.db'}"


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "FLWR_", "RAY_"))}
    env.pop("PYTHONPATH", None)
    return env


def fedtriage(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run([FEDTRIAGE, *args], cwd=workdir, env=clean_env(), capture_output=True, text=True,
                               timeout=600)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return completed


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> SimulatedRuns:
    """A sweep over plaintext and secagg, and a run under central DP, short, in one experiment."""
    workdir = tmp_path_factory.mktemp("compare-e2e")
    common = [f"federation.num_rounds={ROUNDS}", f"tracking.experiment_name={EXPERIMENT}", "tracking.log_model=false"]
    fedtriage(workdir, "simulate", "-m", "secure=plaintext,secagg", f"tracking.sweep_id={SWEEP}", *common,
              f"hydra.sweep.dir={workdir / 'multirun'}")
    fedtriage(workdir, "simulate", "privacy=central", *common, f"hydra.run.dir={workdir / 'central'}")
    return SimulatedRuns(workdir)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


@pytest.mark.slow
def test_the_names_compare_reads_are_among_what_a_real_run_logs(simulated: SimulatedRuns) -> None:
    client = MlflowClient(simulated.tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = {run.data.tags.get("fedtriage.update_protection"): run for run in client.search_runs(
        [experiment.experiment_id], "params.`privacy.mode` = 'central'")}
    logged = set(runs["secagg"].data.metrics)
    assert {CENTRAL_ACCURACY, FEDERATED_ACCURACY, ROUND_SECONDS, BYTES_PER_NODE, EPSILON_METRICS[0]} <= logged


@pytest.mark.slow
def test_compare_of_real_runs_writes_tables_and_plots_that_match_mlflow_and_logs_them(
    simulated: SimulatedRuns, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    completed = fedtriage(simulated.workdir, "compare", "--experiment", EXPERIMENT, "--out", str(out))

    client = MlflowClient(simulated.tracking_uri)
    rows = read_csv(out / "comparison.csv")
    assert len(rows) == 3
    assert sorted((row["protection"], row["privacy"]) for row in rows) == [
        ("plaintext", "none"), ("secagg", "central"), ("secagg", "none")]
    for row in rows:
        accuracy = sorted((m.step, m.value) for m in client.get_metric_history(row["run_id"], CENTRAL_ACCURACY))
        assert [step for step, _ in accuracy] == list(range(ROUNDS + 1))
        assert float(row["final_accuracy"]) == accuracy[-1][1]
        assert float(row["best_accuracy"]) == max(value for _, value in accuracy)
        assert row["rounds"] == str(ROUNDS) and row["status"] == "FINISHED"
        assert float(row["seconds_per_round"]) > 0 and float(row["bytes_per_node"]) > 0
        epsilon = client.get_metric_history(row["run_id"], EPSILON_METRICS[0])
        assert row["epsilon"] == (repr(max(epsilon, key=lambda m: m.step).value) if epsilon else "")
    assert sum(1 for row in rows if row["epsilon"]) == 1

    for name in ("accuracy_per_round.png", "accuracy_vs_epsilon.png", "seconds_per_round_by_mode.png"):
        assert (out / name).read_bytes().startswith(PNG_SIGNATURE)
        assert min(imread(out / name).shape[:2]) > 100
    assert not (out / "attack_quality_by_mode.png").exists()
    text = (out / "comparison.md").read_text()
    assert text in completed.stdout
    assert "Not drawn: privacy audit: attack quality by mode" in text

    experiment = client.get_experiment_by_name(EXPERIMENT)
    (comparison,) = client.search_runs([experiment.experiment_id], f"tags.`{COMPARISON_TAG}` = 'true'")
    listed = client.list_artifacts(comparison.info.run_id, ARTIFACT_FOLDER)
    artifacts = sorted(Path(entry.path).name for entry in listed)
    assert artifacts == sorted(path.name for path in out.iterdir())


@pytest.mark.slow
def test_compare_of_a_sweep_holds_only_its_jobs_and_joins_its_group(simulated: SimulatedRuns, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    fedtriage(simulated.workdir, "compare", "--experiment", EXPERIMENT, "--sweep", SWEEP, "--out", str(out),
              "--tracking-uri", simulated.tracking_uri)

    rows = read_csv(out / "comparison.csv")
    assert sorted(row["protection"] for row in rows) == ["plaintext", "secagg"]
    assert {row["privacy"] for row in rows} == {"none"}
    assert not (out / "accuracy_vs_epsilon.png").exists()  # no run of the sweep spent privacy
    client = MlflowClient(simulated.tracking_uri)
    parents = {client.get_run(row["run_id"]).data.tags["mlflow.parentRunId"] for row in rows}
    experiment = client.get_experiment_by_name(EXPERIMENT)
    comparisons = client.search_runs([experiment.experiment_id], "params.`compare.sweep` = 'protection'")
    assert [run.data.tags["mlflow.parentRunId"] for run in comparisons] == list(parents)
