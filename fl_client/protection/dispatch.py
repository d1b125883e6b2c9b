"""Protection is attached to a ClientApp once: every reply with a node's results leaves through it.

`attach_protection` registers the app's train and evaluate handlers and a handler for
every protocol query of `fl_protocol.protection.messages`. Each message goes to the
`NodeProtection` of the mode in the node's settings, which decides what of the node's
work may leave and in which form; the app itself only says how to do the work.
"""

import math
from collections.abc import Callable
from typing import Protocol

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from fl_client.failure_reply import failure_reply
from fl_client.kit import node_kit
from fl_client.policy_gate import Instruction, Work, check_instruction, node_policy_of, releases_evaluation
from fl_client.protection.release import PlaintextRelease
from fl_client.protection.secure_node import CkksNode, SecAggNode
from fl_client.protection.work import NodeWork, WithheldEvaluation
from fl_client.round_quota import RoundQuota
from fl_client.simulated_faults import SimulatedDropout, node_faults
from fl_protocol import packed_content, records
from fl_protocol.protection import messages
from fl_protocol.protection.modes import ProtectionMode
from fl_protocol.settings import NodeSettings

# How a plaintext evaluation reply names each metric of the policy's `evaluation.metrics`.
EVALUATION_METRIC_KEYS = {
    "loss": records.EVAL_LOSS,
    "accuracy": records.EVAL_ACCURACY,
    "macro-f1": records.EVAL_MACRO_F1,
    "roc-auc": records.EVAL_ROC_AUC,
}

SettingsFor = Callable[[Context], NodeSettings]
WorkFor = Callable[[Message, Context, NodeSettings], NodeWork]
NodeInfoFor = Callable[[Context], ConfigRecord]


class NodeProtection(Protocol):
    """One mode's answer to each kind of instruction."""

    def train(self, msg: Message, context: Context, work: NodeWork) -> Message: ...

    def evaluate(self, msg: Message, context: Context, work: NodeWork) -> Message: ...

    def query(self, msg: Message, context: Context, work: NodeWork) -> Message: ...


_MODES: dict[ProtectionMode, Callable[[NodeSettings, ConfigRecord], NodeProtection]] = {
    ProtectionMode.plaintext: PlaintextRelease,
    ProtectionMode.secagg: SecAggNode,
    ProtectionMode.ckks: CkksNode,
}


def node_protection(settings: NodeSettings, node_info: ConfigRecord) -> NodeProtection:
    """The protection of `settings.secure.mode`."""
    return _MODES[settings.secure.mode](settings, node_info)


def attach_protection(app: ClientApp, settings_for: SettingsFor, work_for: WorkFor, node_info: NodeInfoFor) -> None:
    """Route every instruction `app` takes through the node's policy, then the protection of the node's mode."""

    def handler(kind: str) -> Callable[[Message, Context], Message]:
        def handle(msg: Message, context: Context) -> Message:
            # Content travels packed into one record (`fl_protocol.packed_content`), both ways.
            msg.content = packed_content.unpack(msg.content)
            try:
                reply = _answer(kind, msg, context)
            except Exception as error:  # noqa: BLE001 - every failure leaves as a code, its text stays here
                return failure_reply(msg, error)
            if reply.has_content():
                reply.content = packed_content.pack(reply.content)
            return reply

        return handle

    def _answer(kind: str, msg: Message, context: Context) -> Message:
        if node_faults(context.node_config).drops_at(msg.metadata.message_type):  # simulated nodes only
            raise SimulatedDropout(f"this simulated node drops out at {msg.metadata.message_type}")
        settings = settings_for(context)
        policy = node_policy_of(context.node_config)
        work_kind = _work_of(kind, msg)
        if policy is not None:
            check_instruction(Instruction(settings, work_kind, model_values(msg.content)), policy)
            if work_kind is Work.train:
                RoundQuota(node_kit(context.node_config).state_dir).admit(msg.metadata.run_id, policy.schedule)
        protection = node_protection(settings, node_info(context))
        work = work_for(msg, context, settings)
        if not releases_evaluation(policy):
            work = WithheldEvaluation(work)
        reply: Message = getattr(protection, kind)(msg, context, work)
        if policy is not None and kind == "evaluate" and reply.has_content():
            withhold_metrics(reply.content, policy.evaluation.metrics)
        return reply

    app.train()(handler("train"))
    app.evaluate()(handler("evaluate"))
    for message_type in messages.QUERIES:
        app.query(messages.action(message_type))(handler("query"))


def _work_of(kind: str, msg: Message) -> Work:
    """What `msg` makes the node do with its holdings."""
    if kind == "train":
        return Work.train
    if kind == "evaluate" or msg.metadata.message_type == messages.SECAGG_EVALUATE:
        return Work.evaluate
    return Work.protocol


def model_values(content: RecordDict) -> int:
    """Values in the model arrays an instruction carries (0: none)."""
    if records.ARRAYS_KEY not in content.array_records:
        return 0
    return sum(math.prod(array.shape) for array in content.array_records[records.ARRAYS_KEY].values())


def withhold_metrics(content: RecordDict, released: list[str]) -> None:
    """Leave out of a plaintext evaluation reply the metrics the node's policy does not release."""
    if records.METRICS_KEY not in content.metric_records:
        return
    metrics = content.metric_records[records.METRICS_KEY]
    for name, key in EVALUATION_METRIC_KEYS.items():
        if name not in released and key in metrics:
            del metrics[key]
