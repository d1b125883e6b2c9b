"""Which simulations provision kits: secure ones for their keys, local DP-SGD ones for the nodes' ledgers."""

from pathlib import Path

import pytest

from cli.simulation.kits import provision_simulated_kits
from fedtriage.errors import ConfigError
from fl_client.kit import SIMULATED_KITS_VARIABLE, node_kit
from fl_protocol.identity import kits
from fl_protocol.run_config import load_settings


@pytest.fixture(autouse=True)
def own_kits_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Provisioning sets the variable for the simulated nodes; no test leaves it behind."""
    monkeypatch.delenv(SIMULATED_KITS_VARIABLE, raising=False)


def test_a_plaintext_simulation_under_local_dp_gives_every_node_a_kit_to_keep_its_ledger_in(tmp_path: Path) -> None:
    settings = provision_simulated_kits(
        load_settings(["secure=plaintext", "privacy=local_dpsgd", f"output_dir={tmp_path}"])
    )
    assert settings.kit == str(tmp_path / "kits" / kits.COORDINATOR_KIT)
    for index in range(settings.federation.num_nodes):
        kit = node_kit({"partition-id": index})  # as a simulated node finds it
        assert kit.name == f"node-{index}" and kit.state_dir.is_dir()


def test_a_plaintext_simulation_without_local_dp_provisions_nothing(tmp_path: Path) -> None:
    settings = load_settings(["secure=plaintext", f"output_dir={tmp_path}"])
    assert provision_simulated_kits(settings) is settings
    assert not (tmp_path / "kits").exists()


def test_a_plaintext_job_after_a_secure_one_in_the_same_process_leaves_its_nodes_without_the_earlier_kits(
    tmp_path: Path,
) -> None:
    provision_simulated_kits(load_settings(["secure=secagg", f"output_dir={tmp_path / 'job-0'}"]))
    assert node_kit({"partition-id": 0}).name == "node-0"  # the secure job's nodes find their kits

    provision_simulated_kits(load_settings(["secure=plaintext", f"output_dir={tmp_path / 'job-1'}"]))

    with pytest.raises(ConfigError):
        node_kit({"partition-id": 0})  # as in a fresh process: no kit, no policy from an earlier job


def test_a_local_dp_simulation_needs_an_output_dir_for_its_kits() -> None:
    with pytest.raises(ConfigError, match="output_dir"):
        provision_simulated_kits(load_settings(["secure=plaintext", "privacy=local_dpsgd"]))


def test_a_rerun_in_the_same_folder_keeps_the_nodes_identities_and_state(tmp_path: Path) -> None:
    settings = load_settings(["secure=plaintext", "privacy=local_dpsgd", f"output_dir={tmp_path}"])
    provision_simulated_kits(settings)
    kept = node_kit({"partition-id": 0})
    (kept.state_dir / "ledger").write_text("kept")
    provision_simulated_kits(settings)
    again = node_kit({"partition-id": 0})
    assert again.identity.public == kept.identity.public
    assert (again.state_dir / "ledger").read_text() == "kept"
