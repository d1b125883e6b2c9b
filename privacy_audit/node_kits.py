"""Kits for the audit's nodes, provisioned by the same code a simulation uses.

Only local DP-SGD needs them: a node keeps its privacy ledger in its kit's state folder.
Each trained model gets fresh kits, so the epsilon it reports is its own, not the sum of
every model the audit trained.
"""

from pathlib import Path

from fl_client.kit import NodeKit, load_node_kit
from fl_protocol.identity.kits import provision_simulation

AUDIT_FEDERATION = "privacy-audit"


def provision_node_kits(folder: Path, count: int) -> list[NodeKit]:
    """Kits for `count` nodes in `folder` (which must not hold kits yet)."""
    kits = provision_simulation(folder, AUDIT_FEDERATION, count)
    return [load_node_kit(path) for path in kits.nodes]
