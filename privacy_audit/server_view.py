"""What the server receives in each mode, made by the project's own node and server code.

- plaintext: the node's trained arrays pass `fl_client.protection.release.release_update`
  (the one gate a plaintext reply leaves a node through); the server subtracts the model it sent.
- secagg: each node encodes its contribution with `fl_client.protection.contribution`
  (central DP's clipping, the weighting, the quantization); the server's unmasked total is
  the uint32 sum of those vectors, which `fl_protocol.protection.secagg.session.layout`
  decodes as `fl_server.protection.secagg_session.run_session` does; central DP adds
  `fl_server.protection.central_dp.CentralPrivacy`'s noise; the mean is taken as
  `fl_server.protection.secagg.SecAggAggregation.train_round` takes it.

The key agreement, masks and Shamir shares are left out: they cancel exactly in the sum the
server unmasks, so they change no bit of it. `tests/privacy_audit/test_server_view.py`
checks that against a full SecAgg+ session with the real ClientApp protection.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from flwr.app import Array, ArrayRecord

from fl_client.protection.contribution import encode_contribution
from fl_client.protection.release import release_update
from fl_protocol.protection import array_vector
from fl_protocol.protection.secagg import session
from fl_protocol.settings import NodeSettings, RunSettings
from fl_server.protection.central_dp import CentralPrivacy
from models import EvaluationResult
from privacy_audit.audited_model import ModelArrays
from privacy_audit.node_updates import NodeUpdate

# Nodes of an audited round contribute no evaluation (what a node whose policy withholds it sends).
_NO_EVALUATION = EvaluationResult(loss=math.nan, accuracy=math.nan, macro_f1=math.nan, roc_auc=None, num_examples=0)


@dataclass(frozen=True)
class SecureSum:
    """The server's view of one secure round: the cohort's (noised) unmasked update sum, decoded."""

    update_sum: np.ndarray
    # The sum of the nodes' weights in the mean (the number of nodes under weighting=equal).
    total_weight: float
    contributors: int

    def mean_delta(self, template: ModelArrays) -> ModelArrays:
        """The mean update the strategy is given, shaped like the global model."""
        return array_vector.unflatten(self.update_sum / self.total_weight, template)


def plaintext_delta(settings: NodeSettings, received: ModelArrays, update: NodeUpdate) -> ModelArrays:
    """What the server reads from one node's plaintext reply: its trained arrays minus the model it sent."""
    released = release_update(ArrayRecord({name: Array(array) for name, array in update.trained.items()}),
                              settings.secure)
    return {name: released[name].numpy().astype(np.float64) - received[name] for name in received}


def secure_sum(
    settings: RunSettings, received: ModelArrays, updates: Sequence[NodeUpdate], privacy: CentralPrivacy | None = None
) -> SecureSum:
    """The unmasked sum of the cohort `updates` as the server decodes it; `privacy` adds central DP's noise.

    `settings.federation.num_nodes` sizes the vector layout (its quantization bits), as it does
    for the server; under central DP the release is entered in `privacy`'s ledger.
    """
    node_settings = settings.for_nodes()
    secagg = settings.secure.secagg
    layout = session.layout(sum(array.size for array in received.values()), secagg, settings.federation.num_nodes)
    total = np.zeros(layout.length, dtype=np.uint32)
    for update in updates:
        contribution = encode_contribution(
            node_settings, received, update.trained, update.result, _NO_EVALUATION,
            local_epsilon=update.result.epsilon or 0.0,
        )
        total += contribution.encoded.vector
    sums = layout.decode_sum(total, len(updates))
    update_sum = sums[session.UPDATE]
    if privacy is not None:
        update_sum = privacy.add_noise(update_sum)
        privacy.record_round(len(updates))
    return SecureSum(update_sum, float(sums[session.WEIGHT][0]) / secagg.weight_scale, len(updates))
