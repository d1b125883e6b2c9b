"""Protection is attached to a ClientApp once: every reply with a node's results leaves through it.

`attach_protection` registers the app's train and evaluate handlers and a handler for
every protocol query of `fl_protocol.protection.messages`. Each message goes to the
`NodeProtection` of the mode in the node's settings, which decides what of the node's
work may leave and in which form; the app itself only says how to do the work.
"""

from collections.abc import Callable
from typing import Protocol

from flwr.app import ConfigRecord, Context, Message
from flwr.clientapp import ClientApp

from fl_client.protection.release import PlaintextRelease
from fl_client.protection.secure_node import CkksNode, SecAggNode
from fl_client.protection.work import NodeWork
from fl_protocol import packed_arrays
from fl_protocol.protection import messages
from fl_protocol.protection.modes import ProtectionMode
from fl_protocol.settings import NodeSettings

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
            # A model travels packed into one array (`fl_protocol.packed_arrays`), both ways.
            msg.content = packed_arrays.unpack(msg.content)
            settings = settings_for(context)
            protection = node_protection(settings, node_info(context))
            reply: Message = getattr(protection, kind)(msg, context, work_for(msg, context, settings))
            if reply.has_content():
                reply.content = packed_arrays.pack(reply.content)
            return reply

        return handle

    app.train()(handler("train"))
    app.evaluate()(handler("evaluate"))
    for message_type in messages.QUERIES:
        app.query(messages.action(message_type))(handler("query"))
