"""`fedtriage privacy-audit`: its table, its files, its MLflow runs; proxy data only."""

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient
from PIL import Image

from experiments.privacy_audit import main
from fedtriage.errors import ConfigError
from fl_server.tracking.audit_metrics import (
    AUDITED_COHORT_TAG,
    AUDITED_MODE_TAG,
    INVERSION_PSNR,
    INVERSION_SSIM,
    MIA_ADVANTAGE,
    MIA_AUC,
)
from fl_server.tracking.sweep_parent import SWEEP_PARENT_TAG
from privacy_audit.settings import load_audit_configuration

# A tiny audit: every mode and attack, on a budget that only exercises the plumbing.
TINY = [
    "audit.inversion.images_per_node=[1]",
    "audit.inversion.cohort_sizes=[3]",
    "audit.inversion.iterations=20",
    "audit.inversion.trials=1",
    "audit.membership.members_per_node=8",
    "audit.membership.rounds=2",
    "audit.membership.local_epochs=1",
    "audit.membership.shadow_models=2",
    "audit.membership.privacy=[none,local_dpsgd]",
]
INVERSION_MODES = {("plaintext", "1"), ("secagg", "3"), ("secagg+central", "4"), ("plaintext+local_dpsgd", "1")}


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["holdings=folder", "holdings.path=/srv/holdings"], "holdings.source"),
        (["train=adam"], "train.optimizer"),
        (["audit.membership.privacy=[none,shuffled]"], "audit.membership.privacy"),
    ],
)
def test_settings_the_audit_cannot_honour_are_refused_naming_the_key(overrides: list[str], key: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_audit_configuration(overrides)
    assert refused.value.key == key


@pytest.mark.slow
def test_the_audit_prints_its_figures_writes_its_files_and_logs_one_mlflow_run_per_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_mlflow_env: None
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "audit"

    assert main(["--out", str(out), f"tracking.tracking_uri={uri}", "tracking.experiment_name=audit", *TINY]) == 0

    lines = capsys.readouterr().out.splitlines()
    figures = json.loads(lines[-1])
    for mode, cohort in INVERSION_MODES:
        assert isinstance(figures[f"inversion.{mode}.cohort{cohort}.images1.psnr"], float)
    for privacy in ("secagg", "secagg+local_dpsgd"):
        for attack in ("loss-threshold", "lira"):
            assert 0.0 <= figures[f"mia.{privacy}.{attack}.auc"] <= 1.0
    assert any(line.startswith("plaintext+local_dpsgd") for line in lines)
    with Image.open(out / "reconstructions.png") as figure:
        assert figure.format == "PNG" and figure.size[0] > 100
    claims = (out / "claims.md").read_text()
    rows = [line for line in claims.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == len(INVERSION_MODES) + 4
    assert json.loads((out / "figures.json").read_text()) == figures

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("audit").experiment_id
    runs = client.search_runs([experiment])
    (parent,) = [run for run in runs if SWEEP_PARENT_TAG in run.data.tags]
    children = [run for run in runs if run is not parent]
    inversion = {(run.data.tags[AUDITED_MODE_TAG], run.data.tags[AUDITED_COHORT_TAG]): run for run in children
                 if INVERSION_PSNR in run.data.metrics}
    assert set(inversion) == INVERSION_MODES
    plaintext = inversion[("plaintext", "1")].data
    assert plaintext.metrics[INVERSION_PSNR] == pytest.approx(figures["inversion.plaintext.cohort1.images1.psnr"],
                                                               abs=0.01)
    assert INVERSION_SSIM in plaintext.metrics and plaintext.params["secure.mode"] == "plaintext"
    membership = [run for run in children if MIA_AUC in run.data.metrics]
    assert {run.data.tags[AUDITED_MODE_TAG] for run in membership} == {"secagg", "secagg+local_dpsgd"}
    assert all(MIA_ADVANTAGE in run.data.metrics for run in membership) and len(membership) == 4
    artifacts = {item.path for item in client.list_artifacts(parent.info.run_id)}
    assert artifacts == {"reconstructions.png", "claims.md"}
