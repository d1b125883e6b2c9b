"""Kits: the folder each party keeps its own identity key, its pinned roster and its policy in.

A node kit holds `identity.key` (its private signing key, mode 0600), `roster.json`,
optionally `policy.yaml` (the unit's node policy) and `state/` (what the node keeps
between runs). The coordinator's kit holds its own key and the roster. Provisioning a
real federation (`fl_protocol.provisioning`) and a simulated one run the same functions
here: a party makes its key in its own kit; only public keys travel to the roster.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from fl_protocol.identity.keys import IdentityKey
from fl_protocol.identity.roster import Roster

IDENTITY_FILE = "identity.key"
ROSTER_FILE = "roster.json"
POLICY_FILE = "policy.yaml"
STATE_DIR = "state"
COORDINATOR_KIT = "coordinator"


def new_identity(kit: Path) -> bytes:
    """Create `kit` (owner-only) with a fresh identity key; return its public key."""
    kit.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = IdentityKey.generate()
    key.save(kit / IDENTITY_FILE)
    return key.public


def identity_public_key(kit: Path) -> bytes:
    """The public key of the identity key already in `kit`."""
    return IdentityKey.load(kit / IDENTITY_FILE).public


def federation_roster(federation: str, coordinator_key: bytes, node_keys: Mapping[str, bytes]) -> Roster:
    """The roster every kit pins: the coordinator, named after its kit, and each node's identity key."""
    return Roster(federation, COORDINATOR_KIT, coordinator_key, dict(node_keys))


def make_state_dir(kit: Path) -> None:
    """The node's own folder for what it keeps between runs (owner-only)."""
    (kit / STATE_DIR).mkdir(mode=0o700, exist_ok=True)


def simulated_node_kit(folder: Path, partition_id: int) -> Path:
    """Where a simulated node's kit lies in a simulation's kit folder."""
    return folder / f"node-{partition_id}"


@dataclass(frozen=True)
class SimulatedKits:
    """The kits of one simulated federation: the coordinator's and one per node."""

    folder: Path
    coordinator: Path
    nodes: list[Path]


def provision_simulation(
    folder: Path, federation: str, num_nodes: int, node_policy: dict[str, object] | None = None
) -> SimulatedKits:
    """Kits for a coordinator and `num_nodes` nodes in `folder`, as provisioning makes them.

    Every party's key is made in its own kit; the roster of their public keys is pinned in
    every kit; each node kit gets `node_policy` as its `policy.yaml` (None: the defaults).
    """
    coordinator = folder / COORDINATOR_KIT
    server_key = new_identity(coordinator)
    nodes = [simulated_node_kit(folder, index) for index in range(num_nodes)]
    roster = federation_roster(federation, server_key, {kit.name: new_identity(kit) for kit in nodes})
    for kit in [coordinator, *nodes]:
        roster.save(kit / ROSTER_FILE)
    for kit in nodes:
        make_state_dir(kit)
        if node_policy is not None:
            write_policy(kit, node_policy)
    os.chmod(folder, 0o700)
    return SimulatedKits(folder, coordinator, nodes)


def write_policy(kit: Path, node_policy: dict[str, object]) -> None:
    """Write a node's `policy.yaml` (a unit writes its own by hand)."""
    (kit / POLICY_FILE).write_text(yaml.safe_dump(node_policy, sort_keys=False))
