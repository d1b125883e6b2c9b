"""A Flower `Grid` that delivers messages to a real ClientApp in this process.

The fast path for round-loop tests: no Ray, no SuperLink, ~milliseconds a round.
It relies on Flower internals (TaskIdentity, message ids), hence flwr's exact pin.
End-to-end tests run Flower's real engine instead.
"""

import uuid
from collections.abc import Callable, Iterable

from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.server.superlink.linkstate.utils import create_message_error_unavailable_res_message
from flwr.serverapp import Grid
from flwr.supercore.task_identity import TaskIdentity

from fl_protocol import packed_content
from fl_protocol.run_config import node_run_config
from fl_protocol.settings import RunSettings
from fl_server.run_summary import RunSummary
from fl_server.server_app import run_federation

RUN_ID = 4242


class InProcessGrid(Grid):
    """Nodes are (node id -> node config).

    `drop(node_id, message)` makes a node vanish for that message (no reply); `lost(node_id,
    message)` makes the SuperLink answer for it that the node is unavailable, as Flower does;
    `tamper(node_id, reply)` may alter a reply in place on its way to the server.
    Every reply the server pulls is kept in `received`: the server's whole view.
    """

    def __init__(
        self,
        client_app: ClientApp,
        node_configs: dict[int, dict[str, bool | int | float | str]],
        run_config: dict[str, bool | int | float | str],
        drop: Callable[[int, Message], bool] | None = None,
        tamper: Callable[[int, Message], None] | None = None,
        lost: Callable[[int, Message], bool] | None = None,
    ) -> None:
        TaskIdentity.task_id = 1
        TaskIdentity.run_id = RUN_ID
        TaskIdentity.node_id = SUPERLINK_NODE_ID
        self._app = client_app
        self._drop = drop or (lambda node_id, message: False)
        self._tamper = tamper or (lambda node_id, reply: None)
        self._lost = lost or (lambda node_id, message: False)
        self.contexts = {
            node_id: Context(
                run_id=RUN_ID, node_id=node_id, node_config=config, state=RecordDict(), run_config=run_config
            )
            for node_id, config in node_configs.items()
        }
        self.delivered: list[Message] = []
        self.received: list[Message] = []
        self._replies: dict[str, Message] = {}

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for message in messages:
            message_id = uuid.uuid4().hex
            message.metadata.__dict__["_message_id"] = message_id
            ids.append(message_id)
            node_id = message.metadata.dst_node_id
            # Content travels packed (`fl_protocol.packed_content`): tests see and alter it decoded,
            # both ways, as the attacker on either side would (the ClientApp and NodeExchange take both).
            message.content = packed_content.unpack(message.content)
            self.delivered.append(message)
            if self._lost(node_id, message):
                # The SuperLink lost the node: it answers itself, with Flower's own error reply.
                lost_reply = create_message_error_unavailable_res_message(message.metadata, "node_unavail")
                self._replies[message_id] = lost_reply
                continue
            if self._drop(node_id, message):
                continue
            try:
                reply = self._app(message, self.contexts[node_id])
            except Exception as err:  # what a SuperNode turns into an error reply
                reply = Message(Error(code=0, reason=f"{type(err).__name__}: {err}"), reply_to=message)
            if reply.has_content():
                reply.content = packed_content.unpack(reply.content)
                self._tamper(node_id, reply)
            self._replies[message_id] = reply
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        pulled = [self._replies.pop(message_id) for message_id in message_ids if message_id in self._replies]
        self.received.extend(pulled)
        return pulled

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        return self.pull_messages(self.push_messages(messages))

    # The rest of the Grid interface is not used by the round loop.
    def set_run(self, run_id: int) -> None:  # type: ignore[override]
        raise NotImplementedError

    @property
    def run(self):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def create_message(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise NotImplementedError


def simulated_nodes(count: int) -> dict[int, dict[str, bool | int | float | str]]:
    """Node configs of `count` simulated nodes, as Flower's engine gives them (ids from 10)."""
    return {10 + i: {"partition-id": i, "num-partitions": count} for i in range(count)}


def federate_in_process(
    settings: RunSettings,
    drop: Callable[[int, Message], bool] | None = None,
    tamper: Callable[[int, Message], None] | None = None,
    client_app: ClientApp | None = None,
    lost: Callable[[int, Message], bool] | None = None,
) -> tuple[RunSummary, InProcessGrid]:
    """One whole federation of `federation.num_nodes` simulated nodes through the real
    ServerApp and ClientApp, with the central test set and the kits a simulation gives them."""
    from cli.flower_app import central_test_set
    from cli.simulation.kits import provision_simulated_kits
    from fl_client.client_app import app

    settings = provision_simulated_kits(settings)
    nodes = simulated_nodes(settings.federation.num_nodes)
    grid = InProcessGrid(client_app or app, nodes, node_run_config(settings), drop=drop, tamper=tamper,
                         lost=lost)
    summary = run_federation(grid, settings, flower_run_id=1, central_test_set=central_test_set)
    return summary, grid
