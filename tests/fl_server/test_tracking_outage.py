"""A tracking store that cannot be reached never stops (or stalls) training."""

import logging
import os
import socket
import time
from pathlib import Path

import pytest
import torch

from fl_protocol.run_config import load_settings
from fl_server.round_record import RoundRecord
from fl_server.tracking import MlflowTracker, RunOutcome, read_history
from tests.support.inprocess_grid import federate_in_process

pytestmark = pytest.mark.usefixtures("isolated_mlflow_env")

@pytest.fixture
def dead_uri() -> str:
    """A loopback port nobody listens on (bound once to pick it, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_unreachable_server_turns_tracking_off_with_one_warning_and_keeps_the_local_record(
    dead_uri: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(["tracking.experiment_name=test", f"tracking.tracking_uri={dead_uri}"])
    tracker = MlflowTracker(settings.tracking, tmp_path / "out")
    history = [RoundRecord(round=0, central_eval={"eval-accuracy": 0.1})] + [
        RoundRecord(round=r, train_metrics={"train-loss": 1.0 / r}) for r in (1, 2)
    ]
    started = time.monotonic()

    with caplog.at_level(logging.WARNING, logger="fedtriage.tracking"):
        tracker.start(settings)
        tracker.log_holdings({"node-0": {"loaded": 10, "skipped": 0}})
        for record in history:
            tracker.log_round(record)
        tracker.log_failed_round(RoundRecord(round=3), "no replies")
        tracked = tracker.finish(RunOutcome("FINISHED", history, torch.nn.Linear(4, 2), None))

    assert time.monotonic() - started < 30
    warnings = [r.getMessage() for r in caplog.records if r.name == "fedtriage.tracking"]
    assert len(warnings) == 2  # when tracking goes off, and again at the end
    assert "OFF" in warnings[0] and dead_uri in warnings[0]
    assert warnings[1].startswith("nothing was recorded in MLflow") and "history.json" in warnings[1]
    assert tracked.run_id is None and tracked.tracking_uri == dead_uri
    assert tracked.gaps is not None and dead_uri in tracked.gaps
    assert read_history(tmp_path / "out" / "history.json") == history


def test_http_retries_are_kept_short_unless_the_operator_set_them(
    dead_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(["tracking.experiment_name=test", f"tracking.tracking_uri={dead_uri}"])
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")

    MlflowTracker(settings.tracking, tmp_path).start(settings)

    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "1"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "30"


def test_the_runs_closing_lines_say_that_nothing_was_recorded_in_mlflow(
    dead_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = load_settings(
        ["federation.num_rounds=1", f"tracking.tracking_uri={dead_uri}", f"output_dir={tmp_path / 'run'}"]
    )
    summary, _ = federate_in_process(settings)
    closing = capsys.readouterr().out.strip().splitlines()[-2:]
    assert closing[0].startswith("nothing was recorded in MLflow")
    assert str(tmp_path / "run" / "history.json") in closing[0]
    assert summary.tracking_gaps is not None and dead_uri in summary.tracking_gaps
