"""The app bundles (FABs) a unit approved for its node, by SHA-256: `state/approved-apps.json`.

Flower runs the app bundle a run names on every node, and anyone who reaches the
coordinator's Control API can name any. The node's ClientApp worker therefore hashes the
bundle it was sent and installs, imports and runs it only if the hash is approved here or
given on its command line (the bundle of the fedtriage release installed on the node, when the
unit's policy says `code.approve_installed_release`). A hash, not a signature: the unit
approves exactly the code it reviewed, with nothing to trust but its own list, and the bundle
`flwr build` makes from the same files has the same hash.

Standard library only: the ClientApp worker loads this file by path (see the package docstring).
"""

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

APPROVALS_FILE = "approved-apps.json"
# What the node answers for a bundle it did not approve (the coordinator learns no more).
REFUSAL = "refused: app-not-approved"
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Approval:
    sha256: str
    name: str = ""
    version: str = ""
    files: int = 0
    approved_at: str = ""


def bundle_hash(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def is_sha256(text: str) -> bool:
    return bool(_SHA256.fullmatch(text))


def read_approvals(path: Path) -> list[Approval]:
    """The approvals kept at `path` (none if it does not exist); a damaged file approves nothing."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        return [Approval(**entry) for entry in document["apps"] if is_sha256(entry["sha256"])]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a readable list of approved apps: {err}") from err


def approved_hashes(path: Path, also: tuple[str, ...] = ()) -> set[str]:
    return {approval.sha256 for approval in read_approvals(path)} | set(also)


def write_approvals(path: Path, approvals: list[Approval]) -> None:
    """Replace the file in one rename, owner-only, so a reader sees the old list or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as sink:
        json.dump({"apps": [asdict(approval) for approval in approvals]}, sink, indent=2)
        sink.flush()
        os.fsync(sink.fileno())
    os.replace(partial, path)
