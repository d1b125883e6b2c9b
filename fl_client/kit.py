"""The node's kit: its identity key, the roster it pinned, its policy and its state folder.

A deployed unit names its kit when it starts its SuperNode
(`--node-config 'kit="/etc/fedtriage/unit-a"'`, as `fedtriage node start` does, with
`policy=` and `state=` where the unit keeps its policy file or state folder elsewhere);
a simulated node finds the kit the
simulation provisioned for its partition through `SIMULATED_KITS_VARIABLE`, set by the
process that started the simulation. Never from a run config: the coordinator chooses
nothing here.
"""

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fedtriage.errors import ConfigError
from fl_client.node_holdings import PARTITION_ID_KEY
from fl_protocol.identity import kits
from fl_protocol.identity.keys import IdentityKey
from fl_protocol.identity.roster import Roster
from fl_protocol.settings.policy import NodePolicy, load_node_policy

KIT_KEY = "kit"
POLICY_KEY = "policy"
STATE_KEY = "state"
# The folder of a simulation's kits, for its simulated nodes (`kits.simulated_node_kit`).
SIMULATED_KITS_VARIABLE = "FEDTRIAGE_SIMULATED_KITS"


@dataclass(frozen=True)
class NodeKit:
    """What a node holds for itself: who it is, whom it trusts, what it allows."""

    path: Path
    identity: IdentityKey
    name: str
    roster: Roster
    policy: NodePolicy
    state: Path | None = None

    @property
    def state_dir(self) -> Path:
        return self.state or self.path / kits.STATE_DIR


def node_kit(node_config: Mapping[str, bool | int | float | str]) -> NodeKit:
    """The kit of the node with `node_config`; none is a `ConfigError` saying how to give one."""
    if KIT_KEY in node_config:
        policy = Path(str(node_config[POLICY_KEY])) if POLICY_KEY in node_config else None
        state = Path(str(node_config[STATE_KEY])) if STATE_KEY in node_config else None
        return load_node_kit(Path(str(node_config[KIT_KEY])), policy, state)
    folder = os.environ.get(SIMULATED_KITS_VARIABLE)
    if folder and PARTITION_ID_KEY in node_config:
        return load_node_kit(kits.simulated_node_kit(Path(folder), int(node_config[PARTITION_ID_KEY])))
    raise ConfigError(KIT_KEY, "this node has no kit: start its SuperNode with --node-config 'kit=\"FOLDER\"'")


def load_node_kit(path: Path, policy: Path | None = None, state: Path | None = None) -> NodeKit:
    """The kit in `path` (with the policy file `policy`, default the kit's own, and the state
    folder `state`, default the kit's), parsed again only when one of its (small) files changed.

    Keyed by content, not modification time: two edits within one clock tick differ too.
    """
    policy = policy or path / kits.POLICY_FILE
    files = (path / kits.IDENTITY_FILE, path / kits.ROSTER_FILE, policy)
    return _read_kit(path, policy, state, tuple(_content(file) for file in files))


def _content(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


@functools.lru_cache(maxsize=64)
def _read_kit(path: Path, policy: Path, state: Path | None, contents: tuple[bytes, ...]) -> NodeKit:
    """Read a kit; its name is the roster entry of its own key."""
    identity = IdentityKey.load(path / kits.IDENTITY_FILE)
    roster = Roster.load(path / kits.ROSTER_FILE)
    name = roster.name_of(identity.public)
    if name is None:
        raise ConfigError(KIT_KEY, f"the roster in {path} does not list this node's own identity key")
    return NodeKit(path, identity, name, roster, load_node_policy(policy), state)
