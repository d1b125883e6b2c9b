"""A node's kit: its policy and roster are its own, and a bad one is one error naming the key."""

from pathlib import Path

import pytest

from fedtriage.errors import ConfigError
from fl_client.kit import load_node_kit, node_kit
from fl_protocol.identity import kits
from fl_protocol.identity.roster import Roster


@pytest.fixture
def node_kits(tmp_path: Path) -> kits.SimulatedKits:
    return kits.provision_simulation(tmp_path / "kits", "test-federation", 2)


def test_a_kit_without_a_policy_file_takes_the_defaults_and_its_name_from_the_roster(
    node_kits: kits.SimulatedKits,
) -> None:
    kit = node_kit({"kit": str(node_kits.nodes[1])})
    assert kit.name == "node-1"
    assert (kit.policy.secure.min_peers, kit.policy.secure.min_threshold, kit.policy.secure.min_cohort) == (3, 2, 3)


def test_a_unit_policy_overrides_key_by_key_and_is_read_again_when_it_changes(node_kits: kits.SimulatedKits) -> None:
    path = node_kits.nodes[0]
    kits.write_policy(path, {"secure": {"min_cohort": 5}})
    assert load_node_kit(path).policy.secure.min_cohort == 5
    assert load_node_kit(path).policy.secure.min_peers == 3
    kits.write_policy(path, {"secure": {"min_cohort": 7}})
    assert load_node_kit(path).policy.secure.min_cohort == 7


@pytest.mark.parametrize(
    ("policy", "named"),
    [
        ({"secure": {"min_threshold": 1}}, "policy.secure.min_threshold"),
        ({"secure": {"min_peers": 2, "min_threshold": 4}}, "policy.secure.min_threshold"),
        ({"secure": {"min_cohortt": 4}}, "min_cohortt"),
    ],
)
def test_a_bad_policy_is_one_error_naming_the_key(node_kits: kits.SimulatedKits, policy: dict, named: str) -> None:
    kits.write_policy(node_kits.nodes[0], policy)
    with pytest.raises(ConfigError, match=named):
        load_node_kit(node_kits.nodes[0])


def test_a_roster_without_the_nodes_own_key_is_refused(node_kits: kits.SimulatedKits) -> None:
    path = node_kits.nodes[0]
    roster = Roster.load(path / kits.ROSTER_FILE)
    Roster(roster.federation, roster.server_name, roster.server_key, {"node-1": roster.nodes["node-1"]}).save(
        path / kits.ROSTER_FILE
    )
    with pytest.raises(ConfigError, match="does not list this node's own identity key"):
        load_node_kit(path)


def test_a_node_without_a_kit_is_told_how_to_give_one() -> None:
    with pytest.raises(ConfigError, match="--node-config"):
        node_kit({})
