"""A node's local DP-SGD ledger, kept on its own disk in its kit's state folder.

A run's `Context` lives only as long as the run; a resumed run (a new Flower run) or any
later run of the same federation would hand the node a fresh budget. The ledger is
therefore a file per federation and node name in `<kit>/state/`, written atomically
(temporary file + `os.replace`, mode 0600) and read under a lock at the start of every
DP-SGD training. Each training is entered in it before it starts (`reserve`), so a node
killed mid-round, or two runs training at once, never spends what the ledger does not show.
A ledger that cannot be read is an error naming the file, never a reset to zero.
"""

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

from fedtriage.errors import Refused
from fl_client.file_lock import locked_beside
from fl_client.kit import NodeKit
from fl_protocol.protection.dp_ledger import LedgerEntry, ledger_entry

_FORMAT = "fedtriage-dpsgd-ledger-1"


class PrivacyBudgetExhausted(Refused):
    """Training another round would exceed this node's epsilon budget."""

    code = "privacy-budget"


class LedgerUnreadable(Refused):
    """The node's ledger file exists but cannot be trusted: the node trains no more under DP-SGD."""

    code = "privacy-ledger"


class NodePrivacyLedger:
    """The DP-SGD ledger of one node (`kit.name`) in one federation (`kit.roster.federation`)."""

    def __init__(self, kit: NodeKit) -> None:
        self._federation = kit.roster.federation
        self._node = kit.name
        self.path = kit.state_dir / ledger_file_name(self._federation, self._node)

    def entries(self) -> list[LedgerEntry]:
        """Every training entered so far ([] before the first)."""
        with locked_beside(self.path):
            return self._read()

    def epsilon(self, delta: float) -> float:
        return epsilon_of(self.entries(), delta)

    def reserve(self, entry: LedgerEntry, delta: float, budget: float) -> float:
        """Enter one training before it runs and return the epsilon it takes the node to.

        Raises `PrivacyBudgetExhausted` (and enters nothing) when that would exceed `budget`.
        """
        with locked_beside(self.path):
            entries = [*self._read(), entry]
            planned = epsilon_of(entries, delta)
            if planned > budget:
                raise PrivacyBudgetExhausted(
                    f"this round would take the node's epsilon to {planned:.3f} > privacy.epsilon_budget="
                    f"{budget:g} (ledger {self.path}); the node sits it out"
                )
            self._write(entries)
            return planned

    def _read(self) -> list[LedgerEntry]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as err:
            raise self._unreadable(f"cannot be read: {err}") from err
        try:
            document = json.loads(text)
            if not isinstance(document, dict) or document.get("format") != _FORMAT:
                raise ValueError(f"not a {_FORMAT} file")
            if (document.get("federation"), document.get("node")) != (self._federation, self._node):
                raise ValueError(
                    f"it belongs to node {document.get('node')!r} of federation {document.get('federation')!r}"
                )
            entries = [ledger_entry(raw) for raw in document["entries"]]
        except (ValueError, TypeError, KeyError) as err:
            raise self._unreadable(str(err) or type(err).__name__) from err
        return entries

    def _write(self, entries: list[LedgerEntry]) -> None:
        document = {
            "format": _FORMAT,
            "federation": self._federation,
            "node": self._node,
            "entries": [list(entry) for entry in entries],
        }
        descriptor, partial = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".partial")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as out:  # mkstemp made it 0600
                json.dump(document, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, self.path)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise

    def _unreadable(self, problem: str) -> LedgerUnreadable:
        return LedgerUnreadable(
            f"the node's DP-SGD ledger {self.path} is unusable ({problem}); it will not train under "
            "privacy=local_dpsgd until the file is restored (its budget never restarts at zero)"
        )


def ledger_file_name(federation: str, node: str) -> str:
    """A file name for `federation` and `node` that no other pair shares (names may hold any character)."""
    digest = hashlib.sha256(json.dumps([federation, node]).encode()).hexdigest()[:16]
    return f"dpsgd-ledger-{_slug(federation)}-{_slug(node)}-{digest}.json"


def epsilon_of(entries: list[LedgerEntry], delta: float) -> float:
    """Epsilon at `delta` of `entries` composed by Opacus's RDP accountant (0 for none)."""
    if not entries:
        return 0.0
    from opacus.accountants import RDPAccountant  # slow to import; only DP-SGD nodes need it

    accountant = RDPAccountant()
    accountant.history = list(entries)
    return float(accountant.get_epsilon(delta))


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:40] or "_"
