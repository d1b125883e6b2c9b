"""The roster: the federation's members and their identity keys, as one party pinned it.

A unit inspects its roster (`fingerprints`) before pinning it; from then on its node
accepts a coordinator and peers only by the keys written here. The file is JSON:

    {"federation": "...", "server": {"name": "...", "key": "<base64>"},
     "nodes": {"<name>": "<base64>", ...}}
"""

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from fedtriage.errors import ConfigError
from fl_protocol.identity.keys import PUBLIC_KEY_BYTES, fingerprint


@dataclass(frozen=True)
class Roster:
    """Member name -> identity public key (raw Ed25519), and the coordinator's key."""

    federation: str
    server_name: str
    server_key: bytes
    nodes: dict[str, bytes] = field(default_factory=dict)

    def node_key(self, name: str) -> bytes | None:
        return self.nodes.get(name)

    def name_of(self, public: bytes) -> str | None:
        """The member whose identity key is `public`."""
        return next((name for name, key in self.nodes.items() if key == public), None)

    def digest(self) -> str:
        """SHA-256 (hex) of the roster's canonical form: two parties holding the same roster agree on it."""
        return hashlib.sha256(json.dumps(self._document(), sort_keys=True).encode()).hexdigest()

    def fingerprints(self) -> list[tuple[str, str, str]]:
        """(role, name, key fingerprint) of every member, coordinator first: what a unit checks."""
        rows = [("coordinator", self.server_name, fingerprint(self.server_key))]
        rows.extend(("node", name, fingerprint(key)) for name, key in sorted(self.nodes.items()))
        return rows

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self._document(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path) -> "Roster":
        """The roster in `path`; anything malformed is a `ConfigError` naming the file."""
        try:
            document = json.loads(path.read_text())
        except OSError as err:
            raise ConfigError("kit", f"cannot read roster {path}: {err.strerror}") from err
        except ValueError as err:
            raise ConfigError("kit", f"roster {path} is not JSON: {err}") from err
        try:
            server = document["server"]
            nodes = {str(name): _key(value) for name, value in dict(document["nodes"]).items()}
            return cls(str(document["federation"]), str(server["name"]), _key(server["key"]), nodes)
        except (KeyError, TypeError, AttributeError, ValueError) as err:
            raise ConfigError(
                "kit", f"roster {path} needs federation, server.name, server.key and nodes (name: key): {err}"
            ) from err

    def _document(self) -> dict[str, object]:
        return {
            "federation": self.federation,
            "server": {"name": self.server_name, "key": _text(self.server_key)},
            "nodes": {name: _text(key) for name, key in sorted(self.nodes.items())},
        }


def _key(value: object) -> bytes:
    try:
        raw = base64.b64decode(str(value), validate=True)
    except binascii.Error as err:
        raise ValueError(f"{value!r} is not base64") from err
    if len(raw) != PUBLIC_KEY_BYTES:
        raise ValueError(f"an identity key is {PUBLIC_KEY_BYTES} bytes, got {len(raw)}")
    return raw


def _text(key: bytes) -> str:
    return base64.b64encode(key).decode()
