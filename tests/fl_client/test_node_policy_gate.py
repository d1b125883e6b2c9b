"""A unit's policy against the coordinator's run config, through the real ClientApp: outside policy is refused,
the coordinator learns the rule and nothing else, and the node goes on."""

import datetime
from pathlib import Path

import pytest

from fedtriage.errors import FederationFailed
from fl_client.client_app import app
from fl_client.holdings import write_synthetic_holdings
from fl_client.kit import KIT_KEY
from fl_client.node_holdings import HOLDINGS_PATH_KEY
from fl_client.protection.dispatch import EVALUATION_METRIC_KEYS
from fl_protocol import records
from fl_protocol.run_config import load_settings, node_run_config
from fl_protocol.settings import RunSettings
from fl_protocol.settings.policy import EVALUATION_METRICS
from fl_server.server_app import run_federation
from tests.support.inprocess_grid import InProcessGrid
from tests.support.kits import provision_nodes

NODES = [1, 2, 3]
# The settings every run below shares: a small plaintext-or-secure run without central evaluation.
CLASSES = ["disc", "square"]
COMMON = ["federation.num_nodes=3", "federation.min_train_nodes=3", "federation.num_rounds=1",
          "federation.max_consecutive_failed_rounds=1", "evaluation.central=false", "tracking.enabled=false",
          "holdings=folder", f"holdings.classes=[{','.join(CLASSES)}]", "train.batch_size=8"]


def _refusals(tmp_path: Path, policy: dict[str, object], overrides: list[str]) -> list[str]:
    """The error reasons the server received when every node holds `policy` and the run asks `overrides`."""
    grid, settings = _federation(tmp_path, policy, overrides)
    with pytest.raises(FederationFailed):
        run_federation(grid, settings, flower_run_id=1)
    assert not [reply for reply in grid.received if reply.has_content() and records.ARRAYS_KEY in reply.content]
    return sorted({reply.error.reason for reply in grid.received if reply.has_error()})


def _federation(tmp_path: Path, policy: dict[str, object], overrides: list[str]) -> tuple[InProcessGrid, RunSettings]:
    """Nodes holding `policy` (kits provisioned once per folder) and a run that asks `overrides`."""
    kits = tmp_path / "kits"
    if not kits.exists():
        provision_nodes(kits, NODES, policy)
        for index in range(len(NODES)):
            write_synthetic_holdings(tmp_path / f"holdings-{index}", CLASSES, 8, 32, "png", seed=index)
    configs = {node: {KIT_KEY: str(kits / f"node-{index}"), HOLDINGS_PATH_KEY: str(tmp_path / f"holdings-{index}")}
               for index, node in enumerate(NODES)}
    settings = load_settings([*COMMON, f"output_dir={tmp_path / 'out'}", f"kit={kits / 'coordinator'}", *overrides])
    return InProcessGrid(app, configs, node_run_config(settings)), settings


def test_plaintext_asked_of_a_node_whose_policy_allows_secagg_only_is_refused(tmp_path: Path) -> None:
    refusals = _refusals(tmp_path, {"protection": {"modes": ["secagg"]}}, ["secure=plaintext", "privacy=none"])
    assert refusals == ["refused: policy protection-mode"]


def test_weaker_differential_privacy_than_the_policy_is_refused(tmp_path: Path) -> None:
    policy = {"protection": {"modes": ["plaintext"]}, "privacy": {"required": True, "min_noise_multiplier": 1.0}}
    assert _refusals(tmp_path, policy, ["secure=plaintext", "privacy=none"]) == ["refused: policy privacy-required"]
    assert _refusals(tmp_path / "again", policy, ["secure=plaintext", "privacy=local_dpsgd",
                                                  "privacy.noise_multiplier=0.5"]) == ["refused: policy privacy-noise"]


def test_training_outside_the_policys_ranges_is_refused(tmp_path: Path) -> None:
    policy = {"protection": {"modes": ["plaintext"]}, "training": {"max_local_epochs": 2, "models": ["cnn"]}}
    assert _refusals(tmp_path, policy, ["secure=plaintext", "train.local_epochs=5"]) == [
        "refused: policy training-epochs"]
    assert _refusals(tmp_path / "again", policy, ["secure=plaintext", "model=resnet18"]) == [
        "refused: policy training-model"]


def test_a_refusal_carries_no_local_path_or_count_and_the_node_goes_on(tmp_path: Path) -> None:
    policy = {"protection": {"modes": ["plaintext"]}}
    refusals = _refusals(tmp_path, policy, ["secure=secagg"])
    assert refusals == ["refused: policy protection-mode"]
    assert not any(str(tmp_path) in reason or any(ch.isdigit() for ch in reason) for reason in refusals)
    # The same nodes (same kits) take the next run their policy allows.
    grid, settings = _federation(tmp_path, policy, ["secure=plaintext"])
    summary = run_federation(grid, settings, flower_run_id=2)
    assert summary.rounds_completed == 1
    assert not [reply for reply in grid.received if reply.has_error()]


def _run(tmp_path: Path, policy: dict[str, object], overrides: list[str], run_id: int = 1,
         ) -> tuple[InProcessGrid, list[str]]:
    """Run to its end (finished or failed); the grid and the error reasons the server received."""
    grid, settings = _federation(tmp_path, policy, overrides)
    try:
        run_federation(grid, settings, flower_run_id=run_id)
    except FederationFailed:
        pass
    return grid, sorted({reply.error.reason for reply in grid.received if reply.has_error()})


def test_the_unit_maps_the_federations_class_names_to_its_own_folders(tmp_path: Path) -> None:
    policy = {"protection": {"modes": ["plaintext"]}, "holdings": {"categories": {"round": ["disc"], "box": "square"}}}
    grid, refusals = _run(tmp_path, policy, ["secure=plaintext", "holdings.classes=[round,box]"])
    assert refusals == []
    assert [reply for reply in grid.received if reply.has_content() and records.ARRAYS_KEY in reply.content]
    # A class the unit did not map: refused by rule, whether or not a folder of that name exists here.
    for guessed in ("disc", "operation-daybreak"):
        assert _refusals(tmp_path, policy, ["secure=plaintext", f"holdings.classes=[round,{guessed}]"]) == [
            "refused: policy class-not-mapped"]


def test_a_guessed_class_name_fails_without_naming_a_folder_path_or_the_name(tmp_path: Path) -> None:
    policy = {"protection": {"modes": ["plaintext"]}}  # no mapping: each class is the folder of its name
    refusals = _refusals(tmp_path, policy, ["secure=plaintext", "holdings.classes=[disc,operation-daybreak]"])
    assert refusals == ["failed: holdings"]


def test_a_model_larger_than_the_policy_allows_is_refused(tmp_path: Path) -> None:
    policy = {"protection": {"modes": ["plaintext"]}, "training": {"max_parameters": 1000}}
    assert _refusals(tmp_path, policy, ["secure=plaintext"]) == ["refused: policy training-parameters"]


def test_work_outside_the_units_hours_is_refused(tmp_path: Path) -> None:
    now = datetime.datetime.now()
    later = f"{(now + datetime.timedelta(hours=2)):%H:%M}-{(now + datetime.timedelta(hours=3)):%H:%M}"
    policy = {"protection": {"modes": ["plaintext"]}, "schedule": {"hours": later}}
    assert _refusals(tmp_path, policy, ["secure=plaintext"]) == ["refused: policy hours"]


def test_rounds_past_the_policys_limits_per_run_and_per_day_are_refused(tmp_path: Path) -> None:
    per_run = {"protection": {"modes": ["plaintext"]}, "schedule": {"max_rounds_per_run": 1}}
    grid, refusals = _run(tmp_path, per_run, ["secure=plaintext", "federation.num_rounds=2"])
    assert refusals == ["refused: policy rounds-per-run"]
    assert len([reply for reply in grid.received if reply.has_content() and records.ARRAYS_KEY in reply.content]) == 3
    per_day = {"protection": {"modes": ["plaintext"]}, "schedule": {"max_rounds_per_day": 1}}
    assert _run(tmp_path / "day", per_day, ["secure=plaintext"], run_id=1)[1] == []
    assert _run(tmp_path / "day", per_day, ["secure=plaintext"], run_id=2)[1] == ["refused: policy rounds-per-day"]


def test_a_node_that_takes_no_part_in_evaluation_refuses_it_and_still_trains(tmp_path: Path) -> None:
    policy = {"protection": {"modes": ["plaintext"]}, "evaluation": {"federated": False}}
    grid, refusals = _run(tmp_path, policy, ["secure=plaintext"])
    assert refusals == ["refused: policy evaluation"]
    assert len([reply for reply in grid.received if reply.has_content() and records.ARRAYS_KEY in reply.content]) == 3


def test_a_node_releases_only_the_evaluation_metrics_its_policy_names(tmp_path: Path) -> None:
    policy = {"protection": {"modes": ["plaintext"]}, "evaluation": {"metrics": ["accuracy"]}}
    grid, refusals = _run(tmp_path, policy, ["secure=plaintext"])
    assert refusals == []
    evaluations = [reply.content[records.METRICS_KEY] for reply in grid.received
                   if reply.has_content() and records.ARRAYS_KEY not in reply.content
                   and records.METRICS_KEY in reply.content]
    assert evaluations and all(records.EVAL_ACCURACY in metrics for metrics in evaluations)
    assert not any(key in metrics for metrics in evaluations
                   for key in (records.EVAL_LOSS, records.EVAL_MACRO_F1, records.EVAL_ROC_AUC))


def test_the_policys_metric_names_are_the_ones_replies_can_withhold() -> None:
    assert tuple(EVALUATION_METRIC_KEYS) == EVALUATION_METRICS
