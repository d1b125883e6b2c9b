"""Round listeners the ServerApp wires to the round loop: tracking and checkpoints,
and the fan-out that feeds one round's results to all of them."""

from pathlib import Path

from flwr.app import ArrayRecord
from flwr.serverapp.strategy import Strategy

from fl_server.checkpoint import Checkpoint, save_checkpoint, strategy_state
from fl_server.federation_rounds import RoundListener
from fl_server.protection.central_dp import CentralPrivacy
from fl_server.round_record import RoundRecord
from fl_server.tracking import RunTracker
from models import ModelSpec


class FanOut:
    """Passes every event to each listener, in order."""

    def __init__(self, *listeners: RoundListener) -> None:
        self._listeners = listeners

    def holdings_reported(self, reports: dict[str, dict[str, int | str]]) -> None:
        for listener in self._listeners:
            listener.holdings_reported(reports)

    def round_finished(self, record: RoundRecord, arrays: ArrayRecord) -> None:
        for listener in self._listeners:
            listener.round_finished(record, arrays)

    def round_failed(self, record: RoundRecord, reason: str) -> None:
        for listener in self._listeners:
            listener.round_failed(record, reason)

    def federated_evaluation(self, record: RoundRecord) -> None:
        for listener in self._listeners:
            listener.federated_evaluation(record)


class TrackingListener:
    """Hands round results to the tracker (which tolerates tracking outages)."""

    def __init__(self, tracker: RunTracker) -> None:
        self._tracker = tracker

    def holdings_reported(self, reports: dict[str, dict[str, int | str]]) -> None:
        self._tracker.log_holdings(reports)

    def round_finished(self, record: RoundRecord, arrays: ArrayRecord) -> None:
        self._tracker.log_round(record)

    def round_failed(self, record: RoundRecord, reason: str) -> None:
        self._tracker.log_failed_round(record, reason)

    def federated_evaluation(self, record: RoundRecord) -> None:
        self._tracker.log_federated_evaluation(record.round, record.federated_eval)


class CheckpointListener:
    """Writes a checkpoint after every completed round (not after round 0), with central DP's
    ledger when there is one (a resumed run must not restart its epsilon at 0)."""

    def __init__(
        self,
        directory: Path,
        strategy: Strategy,
        keep_last: int,
        history: list[RoundRecord],
        spec: ModelSpec,
        tracked_run_id: str | None = None,
        privacy: CentralPrivacy | None = None,
    ) -> None:
        self._spec = spec
        self._privacy = privacy
        self._tracked_run_id = tracked_run_id
        self._directory = directory
        self._strategy = strategy
        self._keep_last = keep_last
        self._history = list(history)
        self.latest: Path | None = None

    def holdings_reported(self, reports: dict[str, dict[str, int | str]]) -> None:
        """Holdings reports are tracked, not checkpointed."""

    def round_finished(self, record: RoundRecord, arrays: ArrayRecord) -> None:
        self._history.append(record)
        if record.round == 0:
            return
        checkpoint = Checkpoint(
            round=record.round,
            model_state=arrays.to_torch_state_dict(),
            strategy_state=strategy_state(self._strategy),
            history=self._history,
            model_spec=self._spec.to_dict(),
            tracked_run_id=self._tracked_run_id,
            privacy_ledger=self._privacy.ledger() if self._privacy is not None else None,
        )
        self.latest = save_checkpoint(self._directory, checkpoint, self._keep_last)

    def round_failed(self, record: RoundRecord, reason: str) -> None:
        self._history.append(record)

    def federated_evaluation(self, record: RoundRecord) -> None:
        """The record is shared with the history: the next checkpoint carries it."""
