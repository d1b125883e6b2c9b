"""The experiment presets run as a researcher runs them, `fedtriage simulate +experiment=NAME -m`, in Flower's
engine: each sweep leaves its MLflow runs with the settings it varies, under one parent run that
`fedtriage compare --sweep` reads, and the centralized baseline joins such a comparison under the same names.

`protection-cost` runs its whole quick form (and `privacy-audit` its quick form in tests/cli/test_readme.py);
the other presets run a job or two of their own sweep (chosen by overrides after -m, as their headers
show), one round each, and the audit on a tiny budget: every preset in a few minutes.
"""

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Run

from comparison.logged_metrics import BYTES_PER_NODE, CENTRAL_ACCURACY, EPSILON_METRICS, ROUND_SECONDS
from comparison.report import ComparisonRequest, compare
from comparison.selection import RunSelection
from fl_server.tracking.audit_metrics import AUDITED_MODE_TAG, INVERSION_PSNR, MIA_ADVANTAGE
from fl_server.tracking.sweep_parent import SWEEP_PARENT_TAG
from tests.support.project import FEDTRIAGE

pytestmark = pytest.mark.slow

EXPERIMENT = "fedtriage"  # the presets leave the experiment as configured: the default one
ONE_ROUND = "federation.num_rounds=1"


@dataclass(frozen=True)
class Sweep:
    """One preset's sweep as MLflow holds it."""

    sweep_id: str
    runs: tuple[Run, ...]

    def params(self, name: str) -> list[str]:
        return sorted(run.data.params[name] for run in self.runs)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder, hence one MLflow store (its mlflow.db), for every preset: as a researcher's working folder."""
    return tmp_path_factory.mktemp("presets")


def simulate(workdir: Path, *arguments: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "FLWR_", "RAY_"))}
    env.pop("PYTHONPATH", None)
    completed = subprocess.run([FEDTRIAGE, "simulate", *arguments], cwd=workdir, env=env, capture_output=True,
                               text=True, timeout=900)
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]


def client(workdir: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")


def run_preset(workdir: Path, preset: str, *overrides: str) -> Sweep:
    """`fedtriage simulate +experiment=PRESET -m OVERRIDES`, and the sweep it left in MLflow."""
    before = set((workdir / "multirun").glob(f"{preset}-*")) if (workdir / "multirun").is_dir() else set()
    simulate(workdir, f"+experiment={preset}", "-m", *overrides)
    (folder,) = set((workdir / "multirun").glob(f"{preset}-*")) - before
    mlflow = client(workdir)
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    (parent,) = mlflow.search_runs([experiment.experiment_id], f"tags.`{SWEEP_PARENT_TAG}` = '{folder.name}'")
    runs = mlflow.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert {run.info.status for run in runs} == {"FINISHED"}
    return Sweep(folder.name, tuple(runs))


@pytest.fixture(scope="module")
def protection_cost(workdir: Path) -> Sweep:
    """The whole quick form of one preset, end to end."""
    return run_preset(workdir, "protection-cost")


def test_protection_cost_runs_its_whole_quick_sweep_with_seconds_and_bytes_per_mode(protection_cost: Sweep) -> None:
    assert protection_cost.sweep_id.startswith("protection-cost-")
    assert protection_cost.params("secure.mode") == ["ckks", "plaintext", "secagg"]
    for run in protection_cost.runs:
        assert {CENTRAL_ACCURACY, ROUND_SECONDS, BYTES_PER_NODE} <= set(run.data.metrics)


def test_the_centralized_baseline_joins_a_sweeps_comparison_under_the_same_names(
    workdir: Path, protection_cost: Sweep
) -> None:
    simulate(workdir, "+experiment=centralized", f"tracking.sweep_id={protection_cost.sweep_id}",
             "federation.num_rounds=2")
    report = compare(ComparisonRequest(RunSelection(EXPERIMENT, protection_cost.sweep_id), workdir / "report", 0.9,
                                       f"sqlite:///{workdir / 'mlflow.db'}"))
    assert len(report.runs) == 4
    mlflow = client(workdir)
    (baseline,) = [mlflow.get_run(run.run_id) for run in report.runs
                   if mlflow.get_run(run.run_id).data.tags.get("fedtriage.baseline") == "centralized"]
    assert baseline.data.params["federation.num_nodes"] == "1" and CENTRAL_ACCURACY in baseline.data.metrics
    (row,) = [run for run in report.runs if run.run_id == baseline.info.run_id]
    assert row.rounds == 2 and row.final_accuracy is not None and row.final_accuracy > 0.5
    assert "centralized-baseline" in report.markdown.read_text(encoding="utf-8")


def test_noniid_runs_dirichlet_skew_and_label_shards(workdir: Path) -> None:
    sweep = run_preset(workdir, "noniid", "+experiment/noniid=dirichlet-0.1,shards", ONE_ROUND)
    assert sweep.params("partition.scheme") == ["dirichlet", "shards"]
    (dirichlet,) = [run for run in sweep.runs if run.data.params["partition.scheme"] == "dirichlet"]
    assert dirichlet.data.params["partition.alpha"] == "0.1"


def test_strategies_runs_a_robust_rule_in_plaintext_and_a_mean_based_one_under_secagg(workdir: Path) -> None:
    sweep = run_preset(workdir, "strategies", "+experiment/strategies=plaintext-krum,secagg-fedadam", ONE_ROUND)
    assert sorted((run.data.params["secure.mode"], run.data.params["strategy.name"]) for run in sweep.runs) == [
        ("plaintext", "krum"), ("secagg", "fedadam")]


def test_privacy_utility_logs_the_epsilon_each_mode_spent(workdir: Path) -> None:
    sweep = run_preset(workdir, "privacy-utility", "privacy.noise_multiplier=2.0", ONE_ROUND)
    assert sweep.params("privacy.mode") == ["central", "local_dpsgd"]
    for run in sweep.runs:
        assert set(EPSILON_METRICS) & set(run.data.metrics), run.data.params["privacy.mode"]


def test_robustness_runs_attacks_by_simulated_nodes_against_a_robust_rule(workdir: Path) -> None:
    sweep = run_preset(workdir, "robustness", "+experiment/robustness=plaintext-fedmedian",
                       "simulation.adversaries.attack=label_flip,scale", ONE_ROUND)
    assert sweep.params("simulation.adversaries.attack") == ["label_flip", "scale"]
    assert set(sweep.params("simulation.adversaries.share")) == {"0.3"}
    assert set(sweep.params("strategy.name")) == {"fedmedian"}


def test_robustness_dropouts_drop_nodes_at_the_stage_asked_and_secure_aggregation_goes_on(workdir: Path) -> None:
    sweep = run_preset(workdir, "robustness-dropouts", "simulation.dropouts.stage=unmask", ONE_ROUND)
    (run,) = sweep.runs
    assert run.data.metrics["protocol/secagg-dropped-at-unmask"] == 2  # node-8 and node-9 of 10
    assert run.data.metrics[CENTRAL_ACCURACY] > 0


def test_privacy_audit_attacks_each_mode_as_one_sweep_with_its_files_in_the_jobs_folder(workdir: Path) -> None:
    sweep = run_preset(workdir, "privacy-audit", "audit.inversion.iterations=5", "audit.membership.rounds=1",
                       "audit.membership.shadow_models=2", "audit.membership.privacy=[none,central]",
                       "audit.membership.members_per_node=10")
    inversion = {run.data.tags[AUDITED_MODE_TAG] for run in sweep.runs if INVERSION_PSNR in run.data.metrics}
    assert inversion == {"plaintext", "secagg", "secagg+central", "plaintext+local_dpsgd"}
    membership = sorted(run.data.params["privacy.mode"] for run in sweep.runs if MIA_ADVANTAGE in run.data.metrics)
    assert membership == ["central", "central", "none", "none"]  # loss threshold and LiRA, each
    job = workdir / "multirun" / sweep.sweep_id / "0"
    assert {"reconstructions.png", "claims.md", "figures.json"} <= {path.name for path in job.iterdir()}
    report = compare(ComparisonRequest(RunSelection(EXPERIMENT, sweep.sweep_id), workdir / "audit-report", 0.9,
                                       f"sqlite:///{workdir / 'mlflow.db'}"))
    assert len(report.runs) == 8 and (workdir / "audit-report" / "attack_quality_by_mode.png").is_file()
