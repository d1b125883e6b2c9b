"""Mode `ckks`: the weighted delta of the chosen layers is added under CKKS encryption.

Each round is a SecAgg+ session as in `secagg` (counts, metrics and any
layers not encrypted travel masked); the encrypted layers arrive as CKKS ciphertexts
under a key only nodes hold, each signed by its sender. The server checks that the
cohort's ciphertexts parse (public context, no secret key) and sends them, with their
signatures, to a node of the cohort, which adds them itself and decrypts only that sum,
once per round (`fl_client.protection.ckks`).
"""

from collections.abc import Mapping, Sequence

import numpy as np
import tenseal as ts
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.serverapp.strategy import Strategy

from fedtriage.errors import ConfigError
from fl_protocol.protection import array_vector, messages
from fl_protocol.protection.ckks_contexts import server_context, slot_count
from fl_protocol.protection.modes import ProtectionMode
from fl_protocol.protection.secagg import keys, session
from fl_protocol.protection.secagg.wire import ids_to_bytes
from fl_protocol.settings import RunSettings
from fl_server.kit import coordinator_kit
from fl_server.node_exchange import NodeExchange
from fl_server.protection.aggregation import TrainOutcome
from fl_server.protection.secagg import SecAggAggregation
from fl_server.protection.secagg_session import SessionResult


class CkksError(RuntimeError):
    """No node could decrypt the summed ciphertexts, or a node's ciphertexts were malformed.

    A `RuntimeError`, so `SecAggAggregation.train_round` fails the round instead of the run.
    """


class CkksAggregation(SecAggAggregation):
    """SecAgg+ for counts and metrics, CKKS for the chosen layers of the update."""

    mode = ProtectionMode.ckks

    def __init__(self, settings: RunSettings) -> None:
        super().__init__(settings)
        self._ckks = settings.secure.ckks
        self._public = server_context(coordinator_kit(settings).path)
        self._slots = slot_count(self._ckks)
        self._round_expansion: float | None = None

    def train_round(
        self, exchange: NodeExchange, strategy: Strategy, server_round: int, arrays: ArrayRecord
    ) -> TrainOutcome:
        # Set by this round's `update_sum` only, so a failed round reports no figure of an earlier one.
        self._round_expansion = None
        outcome = super().train_round(exchange, strategy, server_round, arrays)
        if self._round_expansion is not None:
            # Ciphertext bytes per encrypted float32 byte.
            outcome.protocol_metrics["ckks-expansion"] = self._round_expansion
        return outcome

    def update_values(self, template: dict[str, np.ndarray]) -> int:
        return int(np.count_nonzero(~self._encrypted(template)))

    def update_sum(self, exchange: NodeExchange, result: SessionResult, template: dict[str, np.ndarray]) -> np.ndarray:
        assert result.sums is not None
        encrypted = self._encrypted(template)
        total = np.zeros(encrypted.size)
        total[~encrypted] = result.sums[session.UPDATE]
        count = int(np.count_nonzero(encrypted))
        if count:
            total[encrypted], self._round_expansion = self._decrypted_sum(exchange, result, count)
        return total

    def _encrypted(self, template: dict[str, np.ndarray]) -> np.ndarray:
        _check_prefixes(self._ckks.encrypted_layers, template)
        return array_vector.selected(template, self._ckks.encrypted_layers)

    def _decrypted_sum(self, exchange: NodeExchange, result: SessionResult, count: int) -> tuple[np.ndarray, float]:
        """The decrypted sum of the used nodes' ciphertexts, and their expansion (bytes per float32 byte)."""
        contributions = {exchange.label_of(node): result.attachments[node] for node in result.used}
        check_ciphertexts(self._public, contributions, chunk_sizes(count, self._slots))
        expansion = sum(len(c) for c in result.attachments[result.used[0]]) / (4 * count)
        senders = result.used
        chunks = [chunk for node in senders for chunk in result.attachments[node]]
        record = ConfigRecord(
            {
                "round-id": result.round_id,
                "senders": ids_to_bytes(senders),
                "chunks": chunks,
                "signatures": [result.attachment_signatures[node] for node in senders],
                "length": count,
            }
        )
        request = RecordDict({messages.CKKS_SUM_RECORD: record})
        for node in senders:  # the first node that answers correctly decrypts; each decrypts once a round
            message = Message(request, dst_node_id=node, message_type=messages.CKKS_DECRYPT)
            for reply in exchange.send_and_receive([message], "ckks-decrypt"):
                values = reply.content[messages.CKKS_PLAIN_SUM]["sum"].numpy()
                tag = bytes(reply.content[messages.CKKS_SUM_RECORD]["tag"])
                if values.shape == (count,) and keys.verify_tag(
                    self.run_keys.auth_key(node), tag, b"ckks-decrypt", result.round_id, values.tobytes()
                ):
                    return values, expansion
        raise CkksError("no node of the cohort decrypted the sum of its ciphertexts")


def chunk_sizes(count: int, slots: int) -> list[int]:
    """Values in each of a node's ciphertexts: ceil(count / slots) chunks, as nodes cut them (`encrypt`)."""
    return [min(slots, count - start) for start in range(0, count, slots)]


def check_ciphertexts(public: ts.Context, contributions: Mapping[str, Sequence[bytes]], sizes: Sequence[int]) -> None:
    """Every node's ciphertexts parse as vectors of the expected sizes, or `CkksError` naming the node.

    The node that decrypts adds them itself; this check only lets a malformed contribution fail
    the round with its sender's name, without adding anything here.
    """
    if not contributions:
        raise CkksError("no node's ciphertexts to add")
    for node, chunks in contributions.items():
        _parsed(public, node, chunks, sizes)


def _parsed(public: ts.Context, node: str, chunks: Sequence[bytes], sizes: Sequence[int]) -> list[ts.CKKSVector]:
    """`chunks` as vectors of one ciphertext and the expected size each: TenSEAL may crash adding other ones."""
    if len(chunks) != len(sizes):
        raise CkksError(f"node {node} sent {len(chunks)} ciphertexts, {len(sizes)} expected")
    vectors = []
    for chunk, size in zip(chunks, sizes):
        try:
            vector = ts.ckks_vector_from(public, chunk)
        except (ValueError, RuntimeError) as err:
            raise CkksError(f"node {node} sent a ciphertext that does not parse: {err}") from err
        if vector.size() != size or len(vector.ciphertext()) != 1:
            raise CkksError(f"node {node} sent a ciphertext of {vector.size()} values, {size} expected")
        vectors.append(vector)
    return vectors


def _check_prefixes(prefixes: Sequence[str] | None, template: Mapping[str, np.ndarray]) -> None:
    """A prefix that matches no layer would silently leave those values unencrypted: refuse it."""
    unmatched = [prefix for prefix in prefixes or () if not any(name.startswith(prefix) for name in template)]
    if unmatched:
        layers = sorted({name.split(".")[0] for name in template})
        raise ConfigError(
            "secure.ckks.encrypted_layers", f"{unmatched} match no layer of the model (its layers: {layers})"
        )
