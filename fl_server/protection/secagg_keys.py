"""The server's run keys for secure aggregation, and each node's confirmed, signed key.

Stage 0 of `fl_protocol.protection.secagg.session`: once per run (and for late joiners),
the server sends its run key signed with the coordinator's identity key; a node answers
with its long-term encryption public key `c`, a key-confirmation tag, its roster name and
its identity signature over both keys and its node id. The server checks tag and
signature against its own roster and from then on authenticates every reply of that
node with the derived key; the name and signature travel on to the node's peers, who
check them against their own rosters. A node that fails either check, or claims a
roster name is not registered (it counts as dropped at setup). A member that comes back under a
new node id (its SuperNode restarted) replaces its old registration.
"""

import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from flwr.app import ConfigRecord, Message, RecordDict

from fl_protocol.identity.keys import verify
from fl_protocol.protection import messages
from fl_protocol.protection.secagg import keys, session
from fl_protocol.protection.secagg.wire import id_bytes
from fl_server.kit import CoordinatorKit
from fl_server.node_exchange import NodeExchange


@dataclass(frozen=True)
class RegisteredNode:
    """A node's confirmed run key, as its peers will check it."""

    c_pk: bytes
    auth: bytes
    name: str
    signature: bytes


class SecAggRunKeys:
    """The server's X25519 run key, signed by the coordinator, and the nodes registered under it."""

    def __init__(self, kit: CoordinatorKit) -> None:
        self._private = keys.new_private_key()
        self._roster = kit.roster
        self.public = keys.public_bytes(self._private)
        self.run_key_id = secrets.token_bytes(16)
        self.signature = kit.identity.sign(session.SERVER_RUN_KEY, self.run_key_id, self.public)
        self._nodes: dict[int, RegisteredNode] = {}

    def ensure_setup(self, exchange: NodeExchange, node_ids: Iterable[int]) -> set[int]:
        """Run stage 0 with the nodes not registered yet; return the registered ones."""
        node_ids = list(node_ids)
        missing = [node for node in node_ids if node not in self._nodes]
        if missing:
            record = ConfigRecord(
                {"run-key-id": self.run_key_id, "server-pk": self.public, "server-sig": self.signature}
            )
            request = RecordDict({messages.SETUP_RECORD: record})
            setups = [Message(request, dst_node_id=node, message_type=messages.SECAGG_SETUP) for node in missing]
            for reply in exchange.send_and_receive(setups, "secagg-setup"):
                self._register(reply)
        return {node for node in node_ids if node in self._nodes}

    def node(self, node_id: int) -> RegisteredNode:
        return self._nodes[node_id]

    def c_pk(self, node_id: int) -> bytes:
        return self._nodes[node_id].c_pk

    def auth_key(self, node_id: int) -> bytes:
        return self._nodes[node_id].auth

    def roster_key(self, node_id: int) -> bytes:
        """The identity key the roster holds for the member node `node_id` registered as."""
        return self._roster.nodes[self._nodes[node_id].name]

    def forget(self, node_id: int) -> None:
        """Drop a node's registration (it will have to confirm its key again)."""
        self._nodes.pop(node_id, None)

    def _register(self, reply: Message) -> None:
        node_id = reply.metadata.src_node_id
        record = reply.content.get(messages.KEYS_RECORD)
        if record is None:
            return
        c_pk, confirm = bytes(record["c-pk"]), bytes(record["confirm"])
        name, signature = str(record["name"]), bytes(record["sig"])
        roster_key = self._roster.node_key(name)
        if roster_key is None:
            return
        signed = (self.run_key_id, self.public, id_bytes(node_id), name.encode(), c_pk)
        if not verify(roster_key, signature, session.NODE_RUN_KEY, *signed):
            return
        try:
            auth = keys.derive_key(self._private, c_pk, session.AUTH_PURPOSE, self.run_key_id)
        except ValueError:  # not a valid X25519 public key
            return
        if keys.verify_tag(auth, confirm, b"confirm", id_bytes(node_id), c_pk, self.public):
            for other in [other for other, node in self._nodes.items() if node.name == name]:
                del self._nodes[other]
            self._nodes[node_id] = RegisteredNode(c_pk, auth, name, signature)
