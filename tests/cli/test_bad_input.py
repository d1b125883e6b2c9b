"""Every bad setting or holdings path is one clear error, before any node trains."""

import os
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from cli.simulation.preflight import preflight
from fedtriage.errors import ConfigError
from fl_client.holdings import HoldingsError
from fl_protocol.run_config import load_settings
from tests.support.kits import SMALL_FEDERATION
from tests.support.project import FEDTRIAGE


def make_holdings(root: Path, classes: dict[str, int]) -> Path:
    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (12, 12), (40 * i % 255, 80, 120)).save(root / name / f"{i}.png")
    return root


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["model.name=vgg99"], "model.name"),
        (["+model.params.depth=3"], "model.params.depth"),
        (["strategy.name=fedsgd"], "strategy.name"),
        (["+strategy.params.proximal_mu=0.1"], "strategy.params.proximal_mu"),
        (["partition=dirichlet", "partition.alpha=0"], "partition.alpha"),
        (["partition=dirichlet", "partition.alpha=-1"], "partition.alpha"),
        (["federation.num_nodes=2000"], "federation.num_nodes"),
        (["federation.num_nodes=400"], "federation.num_nodes"),  # 400 nodes x 4 examples > pool
        (["federation.min_available_nodes=9"], "federation.min_available_nodes"),
        (["model.weights_path=/nonexistent/weights.pt"], "model.weights_path"),
        (["checkpoint.resume_from=/nonexistent/round_0003.pt"], "checkpoint.resume_from"),
        (["privacy=local_dpsgd", "model=resnet18"], "privacy.mode"),
        (["strategy=krum"], "strategy.name"),
        (["secure.secagg.threshold=0.4"], "secure.secagg.threshold"),
        (["secure.secagg.neighbours=3"], "secure.secagg.neighbours"),
        (["secure.secagg.quantization_bits=30"], "secure.secagg.quantization_bits"),
        (["secure.secagg.clip_range=0"], "secure.secagg.clip_range"),
        (["secure.secagg.max_weight=0"], "secure.secagg.max_weight"),
        (["secure=ckks", "secure.ckks.poly_modulus_degree=1000"], "secure.ckks.poly_modulus_degree"),
        # The default moduli (200 bits) exceed the 109 bits SEAL allows at degree 4096.
        (["secure=ckks", "secure.ckks.poly_modulus_degree=4096"], "secure.ckks.coeff_mod_bit_sizes"),
        (["secure=ckks", "secure.ckks.coeff_mod_bit_sizes=[61,40,40,60]"], "secure.ckks.coeff_mod_bit_sizes"),
        (["secure=ckks", "secure.ckks.encrypted_layers=[]"], "secure.ckks.encrypted_layers"),
        (["privacy=central", "privacy.noise_multiplier=0"], "privacy.noise_multiplier"),
        # Simulated nodes' policy: no round of these federations could meet it.
        (["federation.num_nodes=3"], "simulation.node_policy.secure.min_peers"),
        (["federation.fraction_train=0.5"], "simulation.node_policy.secure.min_peers"),
        (["simulation.node_policy.secure.min_cohort=5"], "simulation.node_policy.secure.min_cohort"),
        (["simulation.node_policy.secure.min_threshold=1"], "simulation.node_policy.secure.min_threshold"),
    ],
)
def test_bad_setting_is_one_error_naming_it(overrides: list[str], named: str) -> None:
    with pytest.raises(ConfigError) as raised:
        preflight(load_settings(overrides))
    assert named in str(raised.value)


def test_missing_holdings_path_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-holdings"
    with pytest.raises(HoldingsError, match=str(missing)):
        preflight(load_settings(["holdings=folder", f"holdings.path={missing}"]))


def test_empty_holdings_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(HoldingsError, match=str(tmp_path)):
        preflight(load_settings(["holdings=folder", f"holdings.path={tmp_path}"]))


def test_class_folder_without_a_readable_image_names_the_folder(tmp_path: Path) -> None:
    root = make_holdings(tmp_path / "holdings", {"benign": 12, "relevant": 0})
    (root / "relevant" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(HoldingsError, match=str(root / "relevant")):
        preflight(load_settings(["holdings=folder", f"holdings.path={root}"]))


def test_a_central_test_set_that_cannot_be_used_names_evaluation_test_set(tmp_path: Path) -> None:
    empty = tmp_path / "validation"
    empty.mkdir()
    with pytest.raises(ConfigError, match=f"evaluation.test_set: class folder {empty / '0'} does not exist"):
        preflight(load_settings([f"evaluation.test_set={empty}"]))


def test_folder_classes_are_discovered_once_for_every_node(tmp_path: Path) -> None:
    root = make_holdings(tmp_path / "holdings", {"b": 20, "a": 20})
    settings = preflight(
        load_settings(
            ["holdings=folder", f"holdings.path={root}", "federation.num_nodes=2", f"output_dir={tmp_path / 'out'}",
             *SMALL_FEDERATION]
        )
    )
    assert settings.holdings.classes == ["a", "b"]


def test_the_command_line_reports_a_bad_setting_and_trains_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    completed = subprocess.run(
        [FEDTRIAGE, "simulate", "partition=dirichlet", "partition.alpha=-0.5",
         f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
    )
    assert completed.returncode == 2
    assert "fedtriage: error: partition.alpha: must be > 0, got -0.5" in completed.stderr
    assert "round 1" not in completed.stdout
    assert not (tmp_path / "mlflow.db").exists()  # not even a tracking run was opened


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["federation.num_node=10"], "federation.num_node: no such setting; did you mean federation.num_nodes?"),
        (["+federation.num_node=10"], "federation.num_node: no such setting; did you mean federation.num_nodes?"),
        (["stratgy=fedavg"], "stratgy: no such setting; did you mean strategy?"),
        (["strategy=fedavgg"], "strategy: unknown option 'fedavgg'; did you mean fedavg? choose one of"),
        (["secure=none"], "secure: unknown option 'none'; did you mean plaintext?"),
        (["-m", "strategy=fedavg,fedavgg"], "strategy: unknown option 'fedavgg'; did you mean fedavg?"),
        (["seed=-1"], "seed: must be in [0, 1073741824], got -1"),
        (["federation.num_nodes=four"], "federation.num_nodes: must be a whole number, got 'four'"),
        (["holdings.classes=7"], "holdings.classes: must be a list, e.g. holdings.classes=[a,b]"),
        # The privacy-audit preset's settings are checked as the audit reads them, before it starts.
        (["+experiment=privacy-audit", "-m", "audit.inversion.iterations=0"],
         "audit.inversion.iterations: must be >= 1"),
        (["+experiment=privacy-audit", "-m", "holdings=synthetic,folder"], "holdings.source: the privacy audit"),
    ],
)
def test_a_bad_setting_on_the_command_line_is_one_line_and_exit_2(
    tmp_path: Path, args: list[str], line: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    completed = subprocess.run(
        [FEDTRIAGE, "simulate", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
    )
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr.splitlines() == [completed.stderr.splitlines()[0]]  # one line, nothing else
    assert completed.stderr.startswith(f"fedtriage: error: {line}")
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "mlflow.db").exists()
