"""A tracking store that cannot be reached never stops (or stalls) training, and loses nothing:
what it would record waits on disk and is sent, once and in order, when it answers again.

The fast tests use a real SQLite store that cannot be opened (its folder's place is taken by
a file) and then can; the slow ones (test_tracking_server*.py) a real `mlflow server` process.
"""

import json
import logging
import os
import socket
import time
from pathlib import Path

import mlflow
import pytest
import torch
from mlflow import MlflowClient

from fl_protocol.run_config import load_settings
from fl_server.round_record import RoundRecord
from fl_server.tracking import MlflowTracker, RunOutcome, read_history
from fl_server.tracking.flush import main as flush_main
from fl_server.tracking.tracking_buffer import BufferState, TrackingBuffer
from models import MODEL_SPEC_METADATA, ModelSpec
from models.spec import MODEL_FILE_FORMAT
from tests.support.inprocess_grid import federate_in_process
from triage.model_source import TriageModel, load_triage_model

pytestmark = pytest.mark.usefixtures("isolated_mlflow_env")


@pytest.fixture
def dead_uri() -> str:
    """A loopback port nobody listens on (bound once to pick it, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class BlockedStore:
    """A SQLite store MLflow cannot open while a file sits where its folder goes."""

    def __init__(self, root: Path) -> None:
        self.folder = root / "store"
        self.folder.write_text("not a folder yet")
        self.uri = f"sqlite:///{self.folder / 'mlflow.db'}"

    def unblock(self) -> None:
        self.folder.unlink()
        self.folder.mkdir()


def history(last: int) -> list[RoundRecord]:
    return [RoundRecord(round=0, central_eval={"eval-accuracy": 0.1})] + [
        RoundRecord(round=r, train_metrics={"train-loss": 1.0 / r}, federated_eval={"eval-accuracy": 0.2 * r},
                    nodes_replied=2)
        for r in range(1, last + 1)
    ]


def steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return sorted(metric.step for metric in client.get_metric_history(run_id, key))


def test_an_unreachable_server_costs_two_warnings_and_every_record_waits_on_disk(
    dead_uri: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(["tracking.experiment_name=test", f"tracking.tracking_uri={dead_uri}"])
    tracker = MlflowTracker(settings.tracking, tmp_path / "out")
    rounds = history(2)
    started = time.monotonic()

    with caplog.at_level(logging.WARNING):
        tracker.start(settings)
        tracker.log_holdings({"node-0": {"loaded": 10, "skipped": 0}})
        for record in rounds:
            tracker.log_round(record)
        tracker.log_failed_round(RoundRecord(round=3), "no replies")
        tracked = tracker.finish(RunOutcome("FINISHED", rounds, torch.nn.Linear(4, 2), None))

    assert time.monotonic() - started < 30
    buffer = tmp_path / "out" / "tracking-buffer"
    # Only fedtriage's: no line per HTTP retry from urllib3.
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2, warnings  # when MLflow stops answering, and at the end
    assert "does not answer" in warnings[0] and dead_uri in warnings[0] and str(buffer) in warnings[0]
    assert warnings[1].startswith(f"MLflow at {dead_uri} did not answer by the end of the run")
    assert f"python -m fl_server.tracking.flush {buffer}" in warnings[1] and "history.json" in warnings[1]
    assert tracked.run_id is None and tracked.tracking_uri == dead_uri
    assert tracked.gaps is not None and str(buffer) in tracked.gaps
    records = [json.loads(line) for line in (buffer / "records.jsonl").read_text().splitlines()]
    kinds = [record["kind"] for record in records]
    assert kinds[:3] == ["open_run", "params", "text"]
    assert kinds[-4:] == ["text", "file", "model", "close"]  # history, plot, model, close
    kept = torch.load(next(buffer.glob("files/*/model.pt")), weights_only=True)  # weights, not a pickled module
    assert kept["format"] == MODEL_FILE_FORMAT and set(kept["model_state"]) == {"weight", "bias"}
    assert read_history(tmp_path / "out" / "history.json") == rounds


def test_http_retries_are_kept_short_unless_the_operator_set_them(
    dead_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(["tracking.experiment_name=test", f"tracking.tracking_uri={dead_uri}"])
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")

    MlflowTracker(settings.tracking, tmp_path).start(settings)

    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "1"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "30"


def test_the_runs_closing_line_names_the_buffer_and_how_to_send_it(
    dead_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = load_settings(
        ["federation.num_rounds=1", f"tracking.tracking_uri={dead_uri}", f"output_dir={tmp_path / 'run'}"]
    )
    summary, _ = federate_in_process(settings)
    closing = capsys.readouterr().out.strip().splitlines()[-2:]
    buffer = tmp_path / "run" / "tracking-buffer"
    assert closing[0].startswith(f"MLflow at {dead_uri} did not answer by the end of the run")
    assert f"python -m fl_server.tracking.flush {buffer}" in closing[0]
    assert str(tmp_path / "run" / "history.json") in closing[0]
    assert summary.tracking_gaps is not None and str(buffer) in summary.tracking_gaps


def test_a_store_that_answers_again_mid_run_gets_every_record_once_in_order(
    settings_for, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    store = BlockedStore(tmp_path)
    settings = settings_for(f"tracking.tracking_uri={store.uri}")
    tracker = MlflowTracker(settings.tracking, tmp_path / "out")
    rounds = history(4)
    before = int(time.time() * 1000)

    tracker.start(settings)  # no run can be created yet
    tracker.log_holdings({"node-0": {"loaded": 10, "skipped": 0}})
    for record in rounds[:3]:
        tracker.log_round(record)
    assert tracker.run_id is None
    outage_ended = int(time.time() * 1000)
    store.unblock()
    for record in rounds[3:]:
        tracker.log_round(record)  # sends the buffer first, then round 3
    assert tracker.run_id is not None
    assert not (tmp_path / "out" / "tracking-buffer").exists()
    tracked = tracker.finish(RunOutcome("FINISHED", rounds, torch.nn.Linear(4, 2), None))

    assert tracked.gaps is None and tracked.model_uri is not None
    client = MlflowClient(store.uri)
    run = client.get_run(tracked.run_id)
    assert run.info.status == "FINISHED"
    assert before <= run.info.start_time < outage_ended  # the run's own start, not when it reached MLflow
    assert run.data.params["federation.num_rounds"] == str(settings.federation.num_rounds)
    assert steps(client, tracked.run_id, "train/train-loss") == [1, 2, 3, 4]
    assert steps(client, tracked.run_id, "central/eval-accuracy") == [0]
    assert steps(client, tracked.run_id, "holdings/node-0/loaded") == [0]
    round_1 = client.get_metric_history(tracked.run_id, "train/train-loss")[0]
    assert round_1.step == 1 and round_1.timestamp < outage_ended  # logged when round 1 ended
    assert {a.path for a in client.list_artifacts(tracked.run_id)} >= {"config", "holdings", "plots", "history.json"}


def test_a_buffer_left_at_the_end_is_sent_later_once_and_only_once(
    settings_for, tmp_path: Path, capsys: pytest.CaptureFixture[str]  # type: ignore[no-untyped-def]
) -> None:
    store = BlockedStore(tmp_path)
    settings = settings_for(f"tracking.tracking_uri={store.uri}")
    tracker = MlflowTracker(settings.tracking, tmp_path / "out")
    rounds = history(3)
    checkpoint = tmp_path / "out" / "checkpoints" / "round_0003.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"a checkpoint")
    tracker.start(settings)
    for record in rounds:
        tracker.log_round(record)
    tracked = tracker.finish(RunOutcome("FAILED", rounds, None, checkpoint))
    assert tracked.run_id is None and tracked.gaps is not None
    checkpoint.unlink()  # the buffer keeps its own copy

    assert flush_main([str(tmp_path / "out")]) == 1  # still blocked: nothing sent, nothing lost
    assert "still wait" in capsys.readouterr().out
    store.unblock()
    assert flush_main([str(tmp_path / "out")]) == 0
    sent = capsys.readouterr().out
    run_id = sent.strip().rsplit(" ", 1)[-1]
    assert not (tmp_path / "out" / "tracking-buffer").exists()
    assert flush_main([str(tmp_path / "out")]) == 2  # nothing left to send

    client = MlflowClient(store.uri)
    assert client.get_run(run_id).info.status == "FAILED"
    assert steps(client, run_id, "train/train-loss") == [1, 2, 3]
    assert [a.path for a in client.list_artifacts(run_id, "checkpoints")] == ["checkpoints/round_0003.pt"]
    assert len(client.search_runs([client.get_run(run_id).info.experiment_id])) == 1


def test_a_buffered_model_is_kept_and_sent_as_weights_only_file_and_loads_for_triage(
    settings_for, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    store = BlockedStore(tmp_path)
    settings = settings_for(f"tracking.tracking_uri={store.uri}")
    spec = ModelSpec.from_settings(settings)
    torch.manual_seed(5)
    model = spec.build()
    tracker = MlflowTracker(settings.tracking, tmp_path / "out")
    tracker.start(settings)
    tracked = tracker.finish(RunOutcome("FINISHED", history(1), model, None, {MODEL_SPEC_METADATA: spec.to_dict()}))
    assert tracked.run_id is None

    kept = torch.load(next((tmp_path / "out").glob("tracking-buffer/files/*/model.pt")), weights_only=True)
    assert kept["model_spec"] == spec.to_dict()
    store.unblock()
    assert flush_main([str(tmp_path / "out")]) == 0

    client = MlflowClient(store.uri)
    [run] = client.search_runs([client.get_experiment_by_name(settings.tracking.experiment_name).experiment_id])
    uri = f"runs:/{run.info.run_id}/model"
    triage_model = load_triage_model(uri, None, store.uri)
    assert triage_model.spec == spec
    assert triage_model.weights_sha256 == TriageModel(model, spec, "original", "-").weights_sha256
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)  # MLflow finds a run's logged model in its process-wide store
    logged = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path / "logged")))
    sent = torch.load(logged / "model.pt", weights_only=True)
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(sent["model_state"][name], tensor)


class RunsCodeWhenUnpickled:
    """What a pickled module can hold: unpickling it creates `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.mkdir, (str(self.marker),)


def test_a_buffer_holding_a_pickled_module_is_refused_without_running_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """As fedtriage buffered a model before its weights-only file: flushing such a buffer runs no code."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("old-buffer")).info.run_id
    buffer = TrackingBuffer.create(tmp_path / "buffer", BufferState(uri, run_id=run_id))
    marker = tmp_path / "code-ran"
    pickled = buffer.file_slot() / "model.pt"
    torch.save(RunsCodeWhenUnpickled(marker), pickled)
    buffer.append({"kind": "model", "path": str(pickled), "metadata": {}, "input_shape": None, "outputs": None})
    buffer.append({"kind": "close", "status": "FINISHED", "end_time": 1})

    with caplog.at_level(logging.WARNING):
        assert flush_main([str(tmp_path / "buffer")]) == 0

    assert not marker.exists()
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "'model' record" in warning and "not a weights-only model file" in warning
    assert client.get_run(run_id).info.status == "FINISHED"
    assert client.search_logged_models(experiment_ids=[client.get_run(run_id).info.experiment_id]) == []


def test_a_run_mlflow_refuses_to_create_is_not_buffered(settings_for, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings = settings_for(f"tracking.tracking_uri={uri}")
    client = MlflowClient(uri)
    client.delete_experiment(client.create_experiment(settings.tracking.experiment_name))
    tracker = MlflowTracker(settings.tracking, tmp_path / "out")

    tracker.start(settings)
    tracker.log_round(history(1)[1])
    tracked = tracker.finish(RunOutcome("FINISHED", history(1), None, None))

    assert tracked.run_id is None
    assert tracked.gaps is not None and tracked.gaps.startswith("nothing was recorded in MLflow")
    assert "is deleted" in tracked.gaps
    assert not (tmp_path / "out" / "tracking-buffer").exists()


def test_the_buffer_survives_a_line_cut_short_and_its_files_their_originals(tmp_path: Path) -> None:
    original = tmp_path / "plot.png"
    original.write_bytes(b"png")
    buffer = TrackingBuffer.create(tmp_path / "buffer", BufferState("sqlite:///x.db"))
    buffer.append({"kind": "metrics", "metrics": [["a", 1.0, 5, 1]]})
    with (tmp_path / "buffer" / "records.jsonl").open("a") as sink:
        sink.write('{"kind": "metr')  # a crash mid-write
    buffer.append({"kind": "file", "path": str(original), "artifact_path": "plots"}, files=("path",))
    original.unlink()
    buffer.state.sent = 1
    buffer.save_state()

    reopened = TrackingBuffer.open(tmp_path / "buffer")
    assert len(reopened) == 1
    [record] = reopened.pending()
    assert record["kind"] == "file" and Path(record["path"]).read_bytes() == b"png"
