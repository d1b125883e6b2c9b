"""The ServerApp a coordinator runs: one federation run from settings to tracked model.

Flow: settings (from the run config) -> global model and strategy -> rounds
(`FederationRounds`) -> listeners (progress, MLflow, checkpoints) -> final model,
summary. Whoever starts the server hands it its central test set (`build_server_app`);
the same app runs in Flower's simulation engine and on a SuperLink.
"""

import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from flwr.app import ArrayRecord, Context
from flwr.serverapp import Grid, ServerApp

from fedtriage.console import configure_console_logging
from fedtriage.environment import disable_phone_home
from fedtriage.errors import ConfigError, Interrupted
from fl_protocol.run_config import settings_from_run_config
from fl_protocol.settings import RunSettings
from fl_server.central_evaluation import CentralEvaluator, CentralTestSet
from fl_server.checkpoint import load_checkpoint, restore_strategy_state, resumed_privacy_ledger
from fl_server.federation_rounds import FederationRounds
from fl_server.grid_object_pulls import fit_reply_object_retry
from fl_server.progress_report import ProgressReport, format_final_table
from fl_server.protection import build_update_aggregation
from fl_server.protection.central_dp import CentralPrivacy
from fl_server.round_record import RoundRecord
from fl_server.run_listeners import CheckpointListener, FanOut, TrackingListener
from fl_server.run_summary import RunSummary, write_summary
from fl_server.strategy_factory import build_strategy
from fl_server.tracking import ResumedRun, RunOutcome, build_tracker
from models import MODEL_SPEC_METADATA, ModelSpec, build_model, save_model_file

disable_phone_home()

# What hands the server its central test set for a run's settings (None: no central evaluation).
CentralTestSource = Callable[[RunSettings], CentralTestSet | None]


def build_server_app(central_test_set: CentralTestSource) -> ServerApp:
    """The ServerApp, with the source of its central test set."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        """Flower entry point: read the settings and run the federation."""
        configure_console_logging()
        settings = settings_from_run_config(context.run_config)
        fit_reply_object_retry(settings.federation.reply_object_retry_s)
        run_federation(grid, settings, flower_run_id=context.run_id, central_test_set=central_test_set)

    return app


def run_federation(
    grid: Grid, settings: RunSettings, flower_run_id: int, central_test_set: CentralTestSource | None = None
) -> RunSummary:
    """Run every round of one federation and record it; returns the summary written.

    With `evaluation.central`, `central_test_set` hands over the labelled set the global model is scored on.
    """
    if not settings.holdings.classes:
        raise ConfigError("holdings.classes", "the server needs the list of classes to build the model")
    central_test = central_test_set(settings) if central_test_set is not None else None
    if settings.evaluation.central and central_test is None:
        raise ConfigError(
            "evaluation.central",
            "no central test set was handed to the server: set evaluation.test_set to a folder of labelled "
            "images, or evaluation.central=false",
        )
    output_dir = _output_dir(settings, flower_run_id)
    _seed_everything(settings.seed)
    model = build_model(
        settings.model,
        num_classes=len(settings.holdings.classes),
        in_channels=settings.holdings.channels,
        image_size=settings.holdings.image_size,
    )
    strategy = build_strategy(settings)
    aggregation = build_update_aggregation(settings)
    arrays, history, resumes = _starting_point(settings, model, strategy, aggregation.privacy)
    first_round = resumes.after_round + 1 if resumes else 1
    evaluator = CentralEvaluator(settings, central_test) if central_test is not None else None

    spec = ModelSpec.from_settings(settings)
    tracker = build_tracker(settings, output_dir)
    tracker.start(settings, resumes)
    checkpoints = CheckpointListener(
        output_dir / "checkpoints", strategy, settings.checkpoint.keep_last, history, spec, tracker.run_id,
        aggregation.privacy,
    )
    fed = settings.federation
    rounds = FederationRounds(
        grid=grid,
        strategy=strategy,
        aggregation=aggregation,
        federation=fed,
        listener=FanOut(ProgressReport(fed.num_rounds), TrackingListener(tracker), checkpoints),
        central_evaluation=evaluator,
        first_round=first_round,
    )
    print(
        f"fedtriage: {settings.strategy.name} over {fed.num_nodes} nodes, {fed.num_rounds} rounds, "
        f"model {settings.model.name}, update protection: {settings.secure.mode}; outputs in {output_dir}",
        flush=True,
    )
    try:
        outcome = rounds.run(arrays, history)
    except BaseException as err:
        # Stopped by its user (KILLED, as MLflow calls it) or failed: what was recorded is kept.
        stopped = isinstance(err, (Interrupted, KeyboardInterrupt))
        tracked = tracker.finish(
            RunOutcome("KILLED" if stopped else "FAILED", rounds.history, checkpoint_path=checkpoints.latest)
        )
        write_summary(
            RunSummary(
                status="INTERRUPTED" if stopped else "FAILED",
                output_dir=str(output_dir),
                rounds_completed=_completed_rounds(rounds.history),
                latest_checkpoint=str(checkpoints.latest) if checkpoints.latest else None,
                mlflow_run_id=tracked.run_id,
                tracking_uri=tracked.tracking_uri,
                mlflow_ui_command=tracked.ui_command,
                error=f"{type(err).__name__}: {err}",
                tracking_gaps=tracked.gaps,
            )
        )
        raise

    model.load_state_dict(outcome.arrays.to_torch_state_dict())
    final_model_path = save_model_file(output_dir / "final_model.pt", model, spec)
    tracked = tracker.finish(
        RunOutcome(
            "FINISHED", outcome.history, model, checkpoints.latest, {MODEL_SPEC_METADATA: spec.to_dict()},
            model_input_shape=(spec.channels, spec.image_size, spec.image_size), model_outputs=len(spec.classes),
        )
    )
    summary = RunSummary(
        status="FINISHED",
        output_dir=str(output_dir),
        rounds_completed=_completed_rounds(outcome.history),
        final_metrics=_final_metrics(outcome.history),
        final_model_path=str(final_model_path),
        latest_checkpoint=str(checkpoints.latest) if checkpoints.latest else None,
        mlflow_run_id=tracked.run_id,
        tracking_uri=tracked.tracking_uri,
        mlflow_ui_command=tracked.ui_command,
        registered_model_version=tracked.registered_model_version,
        stopped_early=outcome.stop_reason,
        tracking_gaps=tracked.gaps,
    )
    write_summary(summary)
    print("\n" + format_final_table(outcome.history), flush=True)
    if outcome.stop_reason:
        print(f"\nstopped after round {summary.rounds_completed}: {outcome.stop_reason}", flush=True)
    if tracked.run_id:
        print(f"\nMLflow run {tracked.run_id} in {tracked.tracking_uri}", flush=True)
        print(f"open it with: {tracked.ui_command}", flush=True)
    if tracked.gaps:
        print(f"\n{tracked.gaps}; the local record is {output_dir / 'history.json'}", flush=True)
    print(f"outputs: {output_dir}", flush=True)
    return summary


def _output_dir(settings: RunSettings, flower_run_id: int) -> Path:
    # Flower runs a ServerApp in the SuperLink's working directory: keep paths absolute.
    path = Path(settings.output_dir) if settings.output_dir else Path.cwd() / "outputs" / f"flower-run-{flower_run_id}"
    path = path.resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _seed_everything(seed: int) -> None:
    random.seed(seed)  # Flower's strategies sample nodes with `random`
    np.random.seed(seed)
    torch.manual_seed(seed)


def _starting_point(
    settings: RunSettings, model: torch.nn.Module, strategy: object, privacy: CentralPrivacy | None
) -> tuple[ArrayRecord, list[RoundRecord], ResumedRun | None]:
    """Fresh weights, or the model, strategy state, history and central-DP ledger of a checkpoint
    (and the run it resumes)."""
    if not settings.checkpoint.resume_from:
        return ArrayRecord(model.state_dict()), [], None
    checkpoint = load_checkpoint(Path(settings.checkpoint.resume_from))
    ledger = resumed_privacy_ledger(settings, checkpoint)
    if checkpoint.round >= settings.federation.num_rounds:
        raise ConfigError(
            "federation.num_rounds",
            f"the checkpoint already completed round {checkpoint.round}; "
            "raise federation.num_rounds to train further",
        )
    try:
        model.load_state_dict(checkpoint.model_state)
    except RuntimeError as err:
        raise ConfigError(
            "checkpoint.resume_from", f"checkpoint does not fit model {settings.model.name}: {err}"
        ) from err
    restore_strategy_state(strategy, checkpoint.strategy_state)  # type: ignore[arg-type]
    if privacy is not None and ledger is not None:
        privacy.resume(ledger)
    print(f"fedtriage: resuming after round {checkpoint.round} from {settings.checkpoint.resume_from}", flush=True)
    return ArrayRecord(model.state_dict()), checkpoint.history, ResumedRun(checkpoint.tracked_run_id, checkpoint.round)


def _completed_rounds(history: list[RoundRecord]) -> int:
    return max((record.round for record in history if record.train_metrics), default=0)


def _final_metrics(history: list[RoundRecord]) -> dict[str, float]:
    """The last completed round's metrics, prefixed by where they were measured."""
    for record in reversed(history):
        if record.round and record.train_metrics:
            metrics = {f"train/{k}": v for k, v in record.train_metrics.items()}
            metrics.update({f"federated/{k}": v for k, v in record.federated_eval.items()})
            metrics.update({f"central/{k}": v for k, v in record.central_eval.items()})
            return metrics
    return {}
