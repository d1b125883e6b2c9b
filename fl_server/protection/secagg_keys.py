"""The server's run keys for secure aggregation, and each node's confirmed key.

Stage 0 of `fl_protocol.protection.secagg.session`: once per run (and for late joiners), a node
sends its long-term encryption public key with a key-confirmation tag; the server
checks the tag and from then on authenticates every reply of that node with the
derived key. A node whose confirmation fails is not registered, so it cannot take
part (it counts as dropped at setup).
"""

import secrets
from collections.abc import Iterable

from flwr.app import ConfigRecord, Message, RecordDict

from fl_protocol.protection import messages
from fl_protocol.protection.secagg import keys, session
from fl_protocol.protection.secagg.wire import id_bytes
from fl_server.node_exchange import NodeExchange


class SecAggRunKeys:
    """The server's X25519 run key and the nodes registered under it."""

    def __init__(self) -> None:
        self._private = keys.new_private_key()
        self.public = keys.public_bytes(self._private)
        self.run_key_id = secrets.token_bytes(16)
        self._c_pks: dict[int, bytes] = {}
        self._auth: dict[int, bytes] = {}

    def ensure_setup(self, exchange: NodeExchange, node_ids: Iterable[int]) -> set[int]:
        """Run stage 0 with the nodes not registered yet; return the registered ones."""
        missing = [node for node in node_ids if node not in self._c_pks]
        if missing:
            request = RecordDict(
                {messages.SETUP_RECORD: ConfigRecord({"run-key-id": self.run_key_id, "server-pk": self.public})}
            )
            setups = [Message(request, dst_node_id=node, message_type=messages.SECAGG_SETUP) for node in missing]
            for reply in exchange.send_and_receive(setups, "secagg-setup"):
                self._register(reply)
        return {node for node in node_ids if node in self._c_pks}

    def c_pk(self, node_id: int) -> bytes:
        return self._c_pks[node_id]

    def auth_key(self, node_id: int) -> bytes:
        return self._auth[node_id]

    def forget(self, node_id: int) -> None:
        """Drop a node's registration (it will have to confirm its key again)."""
        self._c_pks.pop(node_id, None)
        self._auth.pop(node_id, None)

    def _register(self, reply: Message) -> None:
        node_id = reply.metadata.src_node_id
        record = reply.content.get(messages.KEYS_RECORD)
        if record is None:
            return
        c_pk, confirm = bytes(record["c-pk"]), bytes(record["confirm"])
        try:
            auth = keys.derive_key(self._private, c_pk, session.AUTH_PURPOSE, self.run_key_id)
        except ValueError:  # not a valid X25519 public key
            return
        if keys.verify_tag(auth, confirm, b"confirm", id_bytes(node_id), c_pk, self.public):
            self._c_pks[node_id] = c_pk
            self._auth[node_id] = auth
