"""The coordinator's kit: its identity key and the roster it provisioned.

Its key signs the run keys of secure aggregation, so that every node can check, against
the roster it pinned, that it talks to its federation's coordinator.
"""

from dataclasses import dataclass
from pathlib import Path

from fedtriage.errors import ConfigError
from fl_protocol.identity import kits
from fl_protocol.identity.keys import IdentityKey
from fl_protocol.identity.roster import Roster
from fl_protocol.settings import RunSettings


@dataclass(frozen=True)
class CoordinatorKit:
    path: Path
    identity: IdentityKey
    roster: Roster


def load_coordinator_kit(path: Path) -> CoordinatorKit:
    """The kit in `path`; its key must be the roster's coordinator key."""
    identity = IdentityKey.load(path / kits.IDENTITY_FILE)
    roster = Roster.load(path / kits.ROSTER_FILE)
    if roster.server_key != identity.public:
        raise ConfigError("kit", f"the roster in {path} names another coordinator key than this kit's own")
    return CoordinatorKit(path, identity, roster)


def coordinator_kit(settings: RunSettings) -> CoordinatorKit:
    """The kit `settings.kit` names; secure aggregation cannot run without one."""
    if not settings.kit:
        raise ConfigError(
            "kit",
            f"secure.mode={settings.secure.mode} signs its keys with the coordinator's kit (identity key and "
            "roster): give its folder (a simulation provisions one)",
        )
    return load_coordinator_kit(Path(settings.kit))
