"""Kits for test federations, made by the same provisioning code a simulation uses."""

import json
import tempfile
from pathlib import Path

from fl_client.kit import KIT_KEY
from fl_protocol.identity.kits import provision_simulation
from fl_server.kit import CoordinatorKit, load_coordinator_kit

# Test federations compare modes: their nodes take part in each (a real unit's default: secagg only).
EVERY_MODE = {"modes": ["plaintext", "secagg", "ckks"]}
# Small test federations: a node accepts one peer and a sum over two nodes.
SMALL_FEDERATION_POLICY = {"secure": {"min_peers": 1, "min_threshold": 2, "min_cohort": 2}}
# The same for simulated nodes, as overrides of a run's settings.
SMALL_FEDERATION = ["simulation.node_policy.secure.min_peers=1", "simulation.node_policy.secure.min_cohort=2"]


def provision_nodes(
    folder: Path, node_ids: list[int], policy: dict[str, object] | None = None
) -> tuple[CoordinatorKit, dict[int, dict[str, bool | int | float | str]]]:
    """The coordinator's kit and node configs naming each node's kit, for nodes `node_ids`; their policy
    is `policy`, in every mode unless it names its `protection`."""
    kits = provision_simulation(folder, "test-federation", len(node_ids), {"protection": EVERY_MODE, **(policy or {})})
    configs: dict[int, dict[str, bool | int | float | str]] = {
        node: {KIT_KEY: str(kit)} for node, kit in zip(node_ids, kits.nodes)
    }
    return load_coordinator_kit(kits.coordinator), configs


_KITS_FOLDER = tempfile.TemporaryDirectory(prefix="fedtriage-test-kits-")
NodeConfigs = dict[int, dict[str, bool | int | float | str]]
_PROVISIONED: dict[tuple[tuple[int, ...], str], tuple[CoordinatorKit, NodeConfigs]] = {}


def shared_node_kits(
    node_ids: list[int], policy: dict[str, object] | None = SMALL_FEDERATION_POLICY
) -> tuple[CoordinatorKit, dict[int, dict[str, bool | int | float | str]]]:
    """`provision_nodes` once per process for each set of nodes: for tests without a tmp_path
    (property tests draw many federations); node state lives in each grid, so sharing is safe."""
    key = (tuple(node_ids), json.dumps(policy, sort_keys=True))
    if key not in _PROVISIONED:
        _PROVISIONED[key] = provision_nodes(Path(_KITS_FOLDER.name) / str(len(_PROVISIONED)), node_ids, policy)
    return _PROVISIONED[key]
