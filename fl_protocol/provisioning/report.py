"""What a provisioning command did, file by file, and what its people must do next."""

from dataclasses import dataclass, field
from pathlib import Path

from fl_protocol.identity.roster import Roster


@dataclass(frozen=True)
class FileChange:
    """One file or folder under KITS: `created`, `updated`, `kept`, `renewed` or `retired` (to `detail`)."""

    action: str
    path: str
    detail: str = ""


@dataclass(frozen=True)
class RotatedUnit:
    """A unit's old and new public key fingerprints: the coordinator swaps the registered SuperNode key."""

    unit: str
    old_supernode: str | None
    new_supernode: str
    old_identity: str | None
    new_identity: str


@dataclass
class ProvisionReport:
    out: Path
    federation: str
    # None on the first provisioning; else the roster the coordinator's kit held before.
    previous_roster: Roster | None
    # The roster every kit pins now (set once every party's key is known).
    roster: Roster | None = None
    changes: list[FileChange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # unit -> fingerprint of its SuperNode public key, as `ssh-keygen -l` prints it.
    supernode_fingerprints: dict[str, str] = field(default_factory=dict)
    rotated: RotatedUnit | None = None

    @property
    def roster_changed(self) -> bool:
        return self.previous_roster != self.roster

    def add(self, action: str, path: str, detail: str = "") -> None:
        self.changes.append(FileChange(action, path, detail))

    def paths(self, action: str) -> list[str]:
        return [change.path for change in self.changes if change.action == action]
