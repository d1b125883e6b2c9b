"""Protection is attached to a ClientApp once: every reply with a node's results leaves through it.

`attach_protection` registers the app's train and evaluate handlers and a handler for
every protocol query of `fl_protocol.protection.messages`. Each message goes to the
`NodeProtection` of the mode in the node's settings, which decides what of the node's
work may leave and in which form; the app itself only says how to do the work.
"""

import logging
from collections.abc import Callable
from typing import Protocol

from flwr.app import ConfigRecord, Context, Error, Message
from flwr.clientapp import ClientApp
from flwr.common.constant import ErrorCode

from fl_client.policy_gate import PolicyRefused, check_instruction, node_policy_of
from fl_client.protection.release import PlaintextRelease
from fl_client.protection.secure_node import CkksNode, SecAggNode
from fl_client.protection.work import NodeWork
from fl_protocol import packed_content
from fl_protocol.protection import messages
from fl_protocol.protection.modes import ProtectionMode
from fl_protocol.settings import NodeSettings

logger = logging.getLogger(__name__)

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
    """Route every instruction `app` takes through the protection of the node's mode."""

    def handler(kind: str) -> Callable[[Message, Context], Message]:
        def handle(msg: Message, context: Context) -> Message:
            # Content travels packed into one record (`fl_protocol.packed_content`), both ways.
            msg.content = packed_content.unpack(msg.content)
            settings = settings_for(context)
            try:
                policy = node_policy_of(context.node_config)
                if policy is not None:
                    check_instruction(settings, policy)
            except PolicyRefused as refusal:  # the coordinator learns the rule, the node's log why
                logger.warning("refused %s: %s", msg.metadata.message_type, refusal.detail)
                return Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=str(refusal)), reply_to=msg)
            protection = node_protection(settings, node_info(context))
            reply: Message = getattr(protection, kind)(msg, context, work_for(msg, context, settings))
            if reply.has_content():
                reply.content = packed_content.pack(reply.content)
            return reply

        return handle

    app.train()(handler("train"))
    app.evaluate()(handler("evaluate"))
    for message_type in messages.QUERIES:
        app.query(messages.action(message_type))(handler("query"))
