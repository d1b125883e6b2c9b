"""Mode `secagg`: the strategy sees only the securely aggregated weighted mean.

Each round is one SecAgg+ session (`secagg_session`). Nodes send their model delta,
losses and the evaluation of the model they received, all inside the masked vector,
so the server learns sums over the surviving nodes and nothing about any single node.
Under `secure.secagg.weighting=equal` (the default) every node counts once and no example
count leaves a node; under `examples` the counts travel inside the sum, which nodes send
only if their policy allows it. Sums no honest cohort could have sent fail the round.
"""

import logging

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict
from flwr.serverapp.strategy import Strategy

from fl_protocol import records
from fl_protocol.protection import array_vector, messages
from fl_protocol.protection.modes import PrivacyMode, ProtectionMode, Weighting
from fl_protocol.protection.secagg import session
from fl_protocol.settings import RunSettings, SecAggSettings
from fl_server.kit import coordinator_kit
from fl_server.node_exchange import NodeExchange
from fl_server.protection.aggregation import EvaluationOutcome, TrainOutcome, apply_strategy_to_mean
from fl_server.protection.central_dp import CentralPrivacy
from fl_server.protection.secagg_keys import SecAggRunKeys
from fl_server.protection.secagg_session import KeysAhead, SessionResult, run_session

logger = logging.getLogger("fedtriage.server")


class SecAggAggregation:
    """Secure aggregation of every round's updates (SecAgg+ on the Message API)."""

    mode = ProtectionMode.secagg
    evaluates_received_model = True

    def __init__(self, settings: RunSettings) -> None:
        self._settings = settings
        self._secagg = settings.secure.secagg
        self._min_nodes = max(2, settings.federation.min_train_nodes)
        self._max_contributors = settings.federation.num_nodes
        self.run_keys = SecAggRunKeys(coordinator_kit(settings))
        self.privacy = CentralPrivacy(settings) if settings.privacy.mode is PrivacyMode.central else None
        self._noise_checked = False
        # Nodes whose misbehaviour failed a round (`SessionResult.suspects`): one node fails one round, not the run.
        self._excluded: set[int] = set()
        # The next session's stage 1, done during the last one's unmasking. Only when every node is
        # sampled each round: a session with other participants starts its own stage 1.
        self._share_ahead = settings.federation.fraction_train >= 1.0
        self._ahead: KeysAhead | None = None

    def train_round(
        self, exchange: NodeExchange, strategy: Strategy, server_round: int, arrays: ArrayRecord
    ) -> TrainOutcome:
        instructions = list(strategy.configure_train(server_round, arrays, ConfigRecord(), exchange.grid))
        template = _numpy_arrays(arrays)
        if self.privacy is not None and not self._noise_checked:
            self._noise_checked = True
            if warning := self.privacy.noise_warning(sum(a.size for a in template.values()), len(instructions)):
                logger.warning(warning)
        result = self._session(exchange, instructions[0].content, messages.SECAGG_TRAIN,
                               [m.metadata.dst_node_id for m in instructions], self.update_values(template))
        outcome = TrainOutcome(
            arrays=None,
            failure=result.failure,
            nodes_sampled=len(instructions),
            nodes_contributed=len(result.used),
            protocol_metrics=_protocol_metrics(result),
        )
        if result.sums is None:
            return outcome
        sums = result.sums
        weight = float(sums[session.WEIGHT][0])
        if failure := self._impossible_weight(weight, len(result.used)):
            outcome.failure = failure
            return outcome
        try:
            update = self.update_sum(exchange, result, template)
        except RuntimeError as err:
            outcome.failure = f"{type(err).__name__}: {err}"
            return outcome
        if self.privacy is not None:
            update = self.privacy.add_noise(update)
            outcome.protocol_metrics.update(self.privacy.record_round(len(instructions)))
        alpha_total = weight / self._secagg.weight_scale
        mean = array_vector.flatten(template) + update / alpha_total
        mean_arrays = ArrayRecord({name: Array(part) for name, part in array_vector.unflatten(mean, template).items()})
        train_loss = float(sums[session.TRAIN_LOSS][0]) / alpha_total
        assert result.instruction is not None
        new_arrays = apply_strategy_to_mean(
            strategy, server_round, result.instruction, mean_arrays, {records.TRAIN_LOSS: train_loss}
        )
        if new_arrays is None:
            outcome.failure = f"{type(strategy).__name__} produced no aggregate"
            return outcome
        outcome.arrays = new_arrays
        outcome.metrics = {records.TRAIN_LOSS: train_loss}
        if self._secagg.weighting is Weighting.examples:
            outcome.metrics["examples"] = float(sums[session.EXAMPLES][0])
        if at_bound := float(sums[session.TRAIN_LOSS_AT_BOUND][0]):
            # Some nodes' losses reached the bound the secure vector carries: the mean is a floor.
            outcome.metrics[records.TRAIN_LOSS_AT_BOUND] = at_bound
        outcome.received_model_eval = _evaluation_metrics(sums, self._secagg)
        outcome.protocol_metrics["values-clipped"] = float(sums[session.CLIPPED][0])
        epsilon_sum = float(sums[session.LOCAL_EPSILON][0]) / session.EPSILON_RESOLUTION
        if epsilon_sum > 0:
            outcome.metrics["local-epsilon-mean"] = epsilon_sum / len(result.used)
        return outcome

    def stop_before(self, server_round: int, connected: int) -> str | None:
        """Central DP: stop before a round whose release would exceed the epsilon budget."""
        return self.privacy.refuses_round(server_round, connected) if self.privacy is not None else None

    def evaluate(
        self, exchange: NodeExchange, strategy: Strategy, server_round: int, arrays: ArrayRecord
    ) -> EvaluationOutcome:
        instructions = list(strategy.configure_evaluate(server_round, arrays, ConfigRecord(), exchange.grid))
        if not instructions:
            return EvaluationOutcome()
        result = self._session(exchange, instructions[0].content, messages.SECAGG_EVALUATE,
                               [m.metadata.dst_node_id for m in instructions], 0)
        if result.sums is None:
            logger.warning("federated evaluation after round %d failed: %s", server_round, result.failure)
            return EvaluationOutcome()
        return EvaluationOutcome(
            metrics=_evaluation_metrics(result.sums, self._secagg), nodes=len(result.used)
        )

    def _impossible_weight(self, weight: float, contributors: int) -> str | None:
        """Why a training round's weight sum cannot come from `contributors` honest nodes, or None.

        Every node that trained has a weight of at least 1 (exactly 1 under weighting=equal);
        the layout already bounds it from above. A node wrapping its weight modulo 2^32 to
        shrink the sum (and so scale up its own update) is caught here.
        """
        if self._secagg.weighting is Weighting.equal and weight != contributors:
            return (
                f"the weight sum is {weight:g}, but {contributors} nodes trained and each counts once "
                "(secure.secagg.weighting=equal): a node sent a weight out of range; the round is discarded"
            )
        if weight < contributors:
            return (
                f"the weight sum is {weight:g}, below the {contributors} nodes that trained (each has at least one "
                "example): a node sent a weight out of range; the round is discarded"
            )
        return None

    def update_values(self, template: dict[str, np.ndarray]) -> int:
        """How many model values travel in the masked vector (all of them in this mode)."""
        return sum(array.size for array in template.values())

    def update_sum(self, exchange: NodeExchange, result: SessionResult, template: dict[str, np.ndarray]) -> np.ndarray:
        """The sum over used nodes of their weighted deltas, as one flat vector."""
        assert result.sums is not None
        return result.sums[session.UPDATE]

    def _session(
        self, exchange: NodeExchange, content: RecordDict, message_type: str, sampled: list[int], update_values: int
    ) -> SessionResult:
        candidates = [node for node in sampled if node not in self._excluded]
        registered = self.run_keys.ensure_setup(exchange, candidates)
        ahead, self._ahead = self._ahead, None  # used by this session or by none
        result = run_session(
            exchange,
            self.run_keys,
            self._secagg,
            session.layout(update_values, self._secagg, self._max_contributors),
            content,
            message_type,
            sorted(registered),
            self._min_nodes,
            ahead=ahead,
            share_ahead=self._share_ahead,
        )
        self._ahead = result.ahead
        result.counts["dropped-at-setup"] = float(len(candidates) - len(registered))
        if result.suspects:
            self._excluded.update(result.suspects)
            logger.warning(
                "nodes %s failed this round (%s); they are left out of this run's later rounds",
                ", ".join(exchange.label_of(node) for node in result.suspects), result.failure,
            )
        result.counts["excluded"] = float(len(self._excluded))
        return result


def _numpy_arrays(arrays: ArrayRecord) -> dict[str, np.ndarray]:
    return {name: array.numpy() for name, array in arrays.items()}


def _evaluation_metrics(sums: dict[str, np.ndarray], secagg: SecAggSettings) -> dict[str, float]:
    """Means (weighted as `secure.secagg.weighting` says) of the nodes' evaluation of the model they received.

    Evaluation examples are reported only under weighting=examples: under equal, the sum
    holds the number of nodes that evaluated, not their counts.
    """
    scale = secagg.weight_scale
    weight = float(sums[session.EVAL_WEIGHT][0]) / scale
    if weight <= 0:
        return {}
    metrics = {
        records.EVAL_LOSS: float(sums[session.EVAL_LOSS][0]) / weight,
        records.EVAL_ACCURACY: float(sums[session.EVAL_ACCURACY][0]) / weight,
        records.EVAL_MACRO_F1: float(sums[session.EVAL_F1][0]) / weight,
    }
    if secagg.weighting is Weighting.examples:
        metrics["eval-examples"] = float(sums[session.EVAL_WEIGHT][0])
    if at_bound := float(sums[session.EVAL_LOSS_AT_BOUND][0]):
        metrics[records.EVAL_LOSS_AT_BOUND] = at_bound
    roc_weight = float(sums[session.EVAL_ROC_WEIGHT][0]) / scale
    if roc_weight > 0:
        metrics[records.EVAL_ROC_AUC] = float(sums[session.EVAL_ROC_AUC][0]) / roc_weight
    return metrics


def _protocol_metrics(result: SessionResult) -> dict[str, float]:
    return {f"secagg-{name}": value for name, value in result.counts.items()}
