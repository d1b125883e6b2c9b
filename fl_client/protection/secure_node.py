"""Modes `secagg` and `ckks` as a node runs them: which stage a message is, and what it contributes.

A protected node answers only the stages of secure aggregation (`fl_protocol.protection.messages`):
its evaluation of the model it received and its trained update leave it only inside the
masked vector of stage 2 (CKKS mode: the chosen layers as ciphertexts beside it). A
plain `evaluate` instruction, or a round without secure aggregation, is refused.
"""

import logging

import numpy as np
from flwr.app import ConfigRecord, Context, Message

from fl_client.holdings import HoldingsReport
from fl_client.kit import NodeKit, node_kit
from fl_client.protection import ckks, secagg
from fl_client.protection.contribution import encode_contribution
from fl_client.protection.release import UpdateProtectionError
from fl_client.protection.work import LocalTraining, NodeWork
from fl_client.training import TrainResult
from fl_protocol import records
from fl_protocol.protection import messages
from fl_protocol.settings import NodeSettings
from models import EvaluationResult

logger = logging.getLogger("fedtriage.client")

# The relative error of its own quantized update above which a node warns: the secure mean
# should stay within this of the plaintext mean.
UPDATE_ERROR_WARNING = 1e-3

# Set in a node's Context.state once its holdings summary has been logged.
_LOGGED_STATE_KEY = "fedtriage-holdings-logged"


class SecAggNode:
    """Mode `secagg`: everything the node reports travels in one masked vector per round."""

    def __init__(self, settings: NodeSettings, node_info: ConfigRecord) -> None:
        self._settings = settings
        self._node_info = node_info

    def train(self, msg: Message, context: Context, work: NodeWork) -> Message:
        """Stage 2 of a training round: evaluate the received model, train it, send both masked."""
        checked = self._require_session(msg, context)
        self._log_holdings(context, work.holdings_report())
        evaluation = work.evaluate()
        return self._contribute(msg, context, evaluation, work.train(), checked)

    def evaluate(self, msg: Message, context: Context, work: NodeWork) -> Message:
        raise UpdateProtectionError(
            f"secure.mode={self._settings.secure.mode}: per-node evaluation would reveal this node's example count"
        )

    def query(self, msg: Message, context: Context, work: NodeWork) -> Message:
        """The protocol's other stages, by message type."""
        message_type = msg.metadata.message_type
        if message_type == messages.SECAGG_SETUP:
            return secagg.setup(msg, context, node_kit(context.node_config), self._node_info)
        if message_type == messages.SECAGG_SHARE_KEYS:
            kit = node_kit(context.node_config)
            return secagg.share_keys(msg, context, self._settings.secure.secagg, kit, self._node_info)
        if message_type == messages.SECAGG_EVALUATE:
            # Stage 2 of an evaluation-only session (after the last round).
            checked = self._require_session(msg, context)
            self._log_holdings(context, work.holdings_report())
            return self._contribute(msg, context, work.evaluate(), None, checked)
        if message_type == messages.SECAGG_DISPUTE:
            return secagg.dispute(msg, context, self._node_info)
        if message_type == messages.SECAGG_CONSISTENCY:
            return secagg.sign_cohort(msg, context, node_kit(context.node_config), self._node_info)
        if message_type == messages.SECAGG_UNMASK:
            kit = node_kit(context.node_config)
            return secagg.unmask(msg, context, self._settings.secure.secagg, kit, self._node_info)
        raise secagg.ProtocolViolation(f"secure.mode={self._settings.secure.mode} has no stage {message_type}")

    def _contribute(
        self,
        msg: Message,
        context: Context,
        evaluation: EvaluationResult,
        training: LocalTraining | None,
        checked: secagg.MaskingRequest,
    ) -> Message:
        settings = self._settings
        received = {name: array.numpy() for name, array in msg.content[records.ARRAYS_KEY].items()}
        result: TrainResult | None = training.result if training is not None else None
        epsilon = result.epsilon if result is not None and result.epsilon is not None else 0.0
        contribution = encode_contribution(
            settings, received, training.trained if training is not None else None, result, evaluation,
            local_epsilon=epsilon,
        )
        if contribution.encoded.out_of_range:
            logger.warning(
                "%d values of this node's update lie outside secure.secagg.clip_range=%g; they were clipped and "
                "are counted in the round's report",
                contribution.encoded.out_of_range, settings.secure.secagg.clip_range,
            )
        if contribution.update_error > UPDATE_ERROR_WARNING:
            logger.warning(
                "this node's update may lose up to %.2g of its size to quantization (more than %g): raise "
                "secure.secagg.quantization_bits, lower secure.secagg.clip_range, or under secure.secagg.weighting="
                "examples lower secure.secagg.max_weight towards this node's example count",
                contribution.update_error, UPDATE_ERROR_WARNING,
            )
        kit = node_kit(context.node_config)
        attachments = self._attachments(contribution.encrypted_update, kit)
        return secagg.masked(msg, context, kit, contribution.encoded.vector, self._node_info, attachments, checked)

    def _attachments(self, encrypted_update: np.ndarray, kit: NodeKit) -> list[bytes] | None:
        """What travels beside the masked vector under its tag (none in this mode)."""
        return None

    def _require_session(self, msg: Message, context: Context) -> secagg.MaskingRequest:
        """A round without secure aggregation, or a request its protocol does not allow, is
        refused before holdings or model are touched."""
        if messages.PEERS_RECORD not in msg.content:
            raise UpdateProtectionError(
                f"secure.mode={self._settings.secure.mode}: refusing a round without secure aggregation"
            )
        return secagg.check_masking_request(msg, context)

    def _log_holdings(self, context: Context, report: HoldingsReport) -> None:
        """Counts stay on the node in protected modes: its operator sees them here, once."""
        if _LOGGED_STATE_KEY not in context.state:
            logger.info("holdings of %s: %s", self._node_info[records.NODE_LABEL], report.summary())
            context.state[_LOGGED_STATE_KEY] = ConfigRecord({"logged": True})


class CkksNode(SecAggNode):
    """Mode `ckks`: the chosen layers encrypted under CKKS, the rest as in `secagg`; a cohort member
    decrypts the cohort's sum."""

    def query(self, msg: Message, context: Context, work: NodeWork) -> Message:
        if msg.metadata.message_type == messages.CKKS_DECRYPT:
            return ckks.decrypt_sum(msg, context, node_kit(context.node_config), self._node_info)
        return super().query(msg, context, work)

    def _attachments(self, encrypted_update: np.ndarray, kit: NodeKit) -> list[bytes] | None:
        if not encrypted_update.size:
            return None
        return ckks.encrypt(encrypted_update, self._settings.secure.ckks, kit)
