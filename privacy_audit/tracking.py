"""The audit's figures in MLflow, where `fedtriage compare` reads them.

One run per attacked setting, named by the metric names and tags of
`fl_server.tracking.audit_metrics` (the module both sides import), grouped under one parent
run tagged as a sweep parent: `fedtriage compare --experiment NAME --sweep AUDIT_ID` compares
one audit's runs, and a comparison of the whole experiment leaves the parent out. The parent
holds the claims table and the reconstruction figure as artifacts.
"""

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from fl_protocol.protection.modes import PrivacyMode
from fl_protocol.settings import RunSettings
from fl_server.tracking.audit_metrics import (
    AUDITED_COHORT_TAG,
    AUDITED_MODE_TAG,
    INVERSION_PSNR,
    INVERSION_SSIM,
    MIA_ADVANTAGE,
    MIA_AUC,
)
from fl_server.tracking.mlflow_experiment import experiment_id
from fl_server.tracking.mlflow_tracker import resolve_tracking_uri
from fl_server.tracking.mlflow_writes import SWEEP_TAG
from fl_server.tracking.sweep_parent import sweep_parent_run_id
from privacy_audit.report import AuditReport

# Where a federation run logs its epsilon (central DP; local DP-SGD), so comparisons find the audit's too.
_EPSILON_METRICS = {PrivacyMode.central: "protocol/dp-epsilon", PrivacyMode.local_dpsgd: "train/local-epsilon"}
# Which attack an audit run holds: `gradient-inversion`, `loss-threshold` or `lira`.
AUDIT_ATTACK_TAG = "fedtriage.audit.attack"
INVERSION_ATTACK = "gradient-inversion"


@dataclass(frozen=True)
class TrackedAudit:
    """Where the audit's runs went."""

    tracking_uri: str
    experiment_id: str
    audit_id: str
    parent_run_id: str
    runs: int


def log_audit(report: AuditReport, run: RunSettings, audit_id: str, artifacts: list[Path]) -> TrackedAudit:
    """Log every attacked setting as a child run of the audit's parent; `artifacts` go to the parent."""
    uri = resolve_tracking_uri(run.tracking.tracking_uri)
    client = MlflowClient(uri)
    experiment = experiment_id(client, run.tracking.experiment_name, uri)
    parent = sweep_parent_run_id(client, experiment, audit_id)
    common = {
        "holdings.source": run.holdings.source,
        "model.name": run.model.name,
        "train.lr": str(run.train.lr),
        "privacy.noise_multiplier": str(run.privacy.noise_multiplier),
    }
    count = 0
    for finding in report.inversion:
        _child_run(
            client, experiment, parent, audit_id,
            name=f"audit-inversion-{finding.mode.label}-cohort{finding.mode.cohort}-images{finding.images_per_node}",
            mode=finding.mode.label, cohort=finding.mode.cohort, attack=INVERSION_ATTACK,
            params={**common, "secure.mode": str(finding.mode.protection), "privacy.mode": str(finding.mode.privacy),
                    "audit.images_per_node": str(finding.images_per_node),
                    "audit.iterations": str(report.settings.inversion.iterations),
                    "audit.trials": str(finding.trials)},
            metrics={INVERSION_PSNR: finding.psnr, INVERSION_SSIM: finding.ssim,
                     **_epsilon_metric(finding.mode.privacy, finding.epsilon)},
        )
        count += 1
    for membership in report.membership:
        _child_run(
            client, experiment, parent, audit_id,
            name=f"audit-mia-{membership.mode.label}-{membership.attack}",
            mode=membership.mode.label, cohort=membership.mode.cohort, attack=membership.attack,
            params={**common, "secure.mode": str(membership.mode.protection),
                    "privacy.mode": str(membership.mode.privacy), "audit.members": str(membership.members),
                    "audit.rounds": str(report.settings.membership.rounds),
                    "audit.shadow_models": str(membership.shadow_models)},
            metrics={MIA_AUC: membership.auc, MIA_ADVANTAGE: membership.advantage,
                     **_epsilon_metric(membership.mode.privacy, membership.epsilon)},
        )
        count += 1
    for artifact in artifacts:
        client.log_artifact(parent, str(artifact))
    client.set_terminated(parent)
    return TrackedAudit(uri, experiment, audit_id, parent, count)


def _child_run(
    client: MlflowClient, experiment: str, parent: str, audit_id: str, name: str, mode: str, cohort: int,
    attack: str, params: Mapping[str, str], metrics: Mapping[str, float],
) -> None:
    tags = {MLFLOW_PARENT_RUN_ID: parent, SWEEP_TAG: audit_id, AUDITED_MODE_TAG: mode,
            AUDITED_COHORT_TAG: str(cohort), AUDIT_ATTACK_TAG: attack}
    run_id = client.create_run(experiment, run_name=name, tags=tags).info.run_id
    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(key, float(value), now, 0) for key, value in metrics.items()],
        params=[Param(key, value) for key, value in params.items()],
    )
    client.set_terminated(run_id)


def _epsilon_metric(privacy: PrivacyMode, epsilon: float | None) -> dict[str, float]:
    return {} if epsilon is None or privacy not in _EPSILON_METRICS else {_EPSILON_METRICS[privacy]: epsilon}
