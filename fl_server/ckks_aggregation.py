"""Mode `ckks`: the weighted delta of the chosen layers is added under CKKS encryption.

Each round is a SecAgg+ session as in `secure_aggregation` (counts, metrics and any
layers not encrypted travel masked); the encrypted layers arrive as CKKS ciphertexts
under a key only nodes hold. The server adds the ciphertexts of the nodes whose
masked vectors it uses, with a public context that cannot decrypt, and asks one of
those nodes to decrypt the sum.
"""

import numpy as np
import tenseal as ts
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.serverapp.strategy import Strategy

from fl_protocol import array_vector
from fl_protocol.ckks_contexts import server_context
from fl_protocol.secagg import keys, session
from fl_protocol.settings import RunSettings
from fl_server.node_exchange import NodeExchange
from fl_server.secagg_session import SessionResult
from fl_server.secure_aggregation import SecAggAggregation
from fl_server.update_aggregation import TrainOutcome


class CkksError(RuntimeError):
    """No node could decrypt the summed ciphertexts, or they were inconsistent."""


class CkksAggregation(SecAggAggregation):
    """SecAgg+ for counts and metrics, CKKS for the chosen layers of the update."""

    mode = "ckks"

    def __init__(self, settings: RunSettings) -> None:
        super().__init__(settings)
        self._ckks = settings.secure.ckks
        self._public = server_context(self._ckks)
        self.last_expansion = 0.0

    def train_round(
        self, exchange: NodeExchange, strategy: Strategy, server_round: int, arrays: ArrayRecord
    ) -> TrainOutcome:
        outcome = super().train_round(exchange, strategy, server_round, arrays)
        if self.last_expansion:
            # Ciphertext bytes per encrypted float32 byte.
            outcome.protocol_metrics["ckks-expansion"] = self.last_expansion
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
            total[encrypted] = self._decrypted_sum(exchange, result, count)
        return total

    def _encrypted(self, template: dict[str, np.ndarray]) -> np.ndarray:
        return array_vector.selected(template, self._ckks.encrypted_layers)

    def _decrypted_sum(self, exchange: NodeExchange, result: SessionResult, count: int) -> np.ndarray:
        sums: list[ts.CKKSVector] | None = None
        for node in result.used:
            vectors = [ts.ckks_vector_from(self._public, chunk) for chunk in result.attachments[node]]
            if sums is None:
                sums = vectors
            elif len(vectors) != len(sums):
                raise CkksError(f"node {node} sent {len(vectors)} ciphertexts, others {len(sums)}")
            else:
                sums = [total + vector for total, vector in zip(sums, vectors)]
        assert sums is not None
        chunks = [vector.serialize() for vector in sums]
        self.last_expansion = sum(len(c) for c in result.attachments[result.used[0]]) / (4 * count)
        request = RecordDict({session.CKKS_SUM_RECORD: ConfigRecord({"chunks": chunks, "length": count})})
        for node in result.used:  # the first node that answers correctly decrypts
            message = Message(request, dst_node_id=node, message_type=session.CKKS_DECRYPT)
            for reply in exchange.send_and_receive([message], "ckks-decrypt"):
                values = reply.content[session.CKKS_PLAIN_SUM]["sum"].numpy()
                tag = bytes(reply.content[session.CKKS_SUM_RECORD]["tag"])
                if values.shape == (count,) and keys.verify_tag(
                    self.run_keys.auth_key(node), tag, b"ckks-decrypt", keys.digest(b"".join(chunks)),
                    keys.digest(values.tobytes()),
                ):
                    return values
        raise CkksError("no node decrypted the summed ciphertexts")
