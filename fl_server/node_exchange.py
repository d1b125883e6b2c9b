"""One exchange with the nodes: send instructions, wait for replies, account for each node.

Every protocol stage (plaintext training, evaluation, each stage of secure
aggregation) goes through here, so failures, bytes and node names are kept the same
way everywhere. Replies are polled with a short, growing interval: Flower's own
`send_and_receive` sleeps 0.1 s between polls, which alone would add 0.1 s to every
stage of a multi-stage protocol.
"""

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid

from fedtriage.errors import Interrupted
from fl_protocol import packed_content, records
from fl_server.stop_request import stop_requested

_FIRST_POLL_S = 0.002
# Polls stay this frequent for the first seconds of a wait (a stage's replies usually
# arrive then), and back off to _MAX_POLL_S for long waits such as a slow round.
_BRISK_POLL_S = 0.02
_BRISK_PERIOD_S = 5.0
_MAX_POLL_S = 0.1


@dataclass
class StageReport:
    """What one stage cost and who failed in it."""

    name: str
    sent: int = 0
    replied: int = 0
    seconds: float = 0.0
    bytes_received: int = 0
    # Node label -> reason, for error replies and missing replies.
    failures: dict[str, str] = field(default_factory=dict)
    # Node id -> bytes of its reply.
    bytes_by_node: dict[int, int] = field(default_factory=dict)


class NodeExchange:
    """Sends messages through a Flower `Grid` and collects the replies of one round."""

    def __init__(self, grid: Grid, timeout_s: float) -> None:
        self.grid = grid
        self.timeout_s = timeout_s
        self._labels: dict[int, str] = {}
        # Message id -> why its reply's content could not be unpacked.
        self._unreadable: dict[str, str] = {}
        self.stages: list[StageReport] = []

    def send_and_receive(self, messages: Iterable[Message], stage: str) -> list[Message]:
        """Send `messages`; return the good replies ordered by node label.

        Error replies and nodes that did not answer within the timeout are entered in
        the stage's report (and in `failures` of the round).
        """
        messages = list(messages)
        report = StageReport(name=stage, sent=len(messages))
        self.stages.append(report)
        if not messages:
            return []
        started = time.perf_counter()
        sent, replies = self._push_and_pull(messages)
        report.seconds = time.perf_counter() - started
        good: list[Message] = []
        answered: set[int] = set()
        for reply in replies:
            # The node a reply is about is the one its message went to: an error the SuperLink
            # sends for a node it lost comes from the SuperLink's own node id.
            node_id = sent[reply.metadata.reply_to_message_id]
            answered.add(node_id)
            size = payload_bytes(reply)
            report.bytes_received += size
            report.bytes_by_node[node_id] = size
            if reply.has_error():
                report.failures[self.label_of(node_id)] = reply.error.reason
                continue
            if reply.metadata.reply_to_message_id in self._unreadable:
                report.failures[self.label_of(node_id)] = (
                    f"unreadable reply: {self._unreadable.pop(reply.metadata.reply_to_message_id)}")
                continue
            if reply.metadata.src_node_id != node_id:
                report.failures[self.label_of(node_id)] = (
                    f"the reply came from node id {reply.metadata.src_node_id}, not from the node asked"
                )
                continue
            if records.NODE_INFO_KEY in reply.content:
                self._labels[node_id] = str(reply.content[records.NODE_INFO_KEY][records.NODE_LABEL])
            good.append(reply)
        for message in messages:
            if message.metadata.dst_node_id not in answered:
                report.failures[self.label_of(message.metadata.dst_node_id)] = (
                    f"no reply within federation.round_timeout_s={self.timeout_s:g}"
                )
        report.replied = len(good)
        good.sort(key=lambda reply: self.label_of(reply.metadata.src_node_id))
        return good

    def label_of(self, node_id: int) -> str:
        """The name a node reported for itself, else its Flower node id."""
        return self._labels.get(node_id, f"node-id-{node_id}")

    def failures(self) -> dict[str, str]:
        """Node label -> reason, over every stage so far (the first reason per node)."""
        merged: dict[str, str] = {}
        for report in self.stages:
            for label, reason in report.failures.items():
                merged.setdefault(label, f"{report.name}: {reason}")
        return merged

    def new_round(self) -> None:
        """Forget the previous round's stage reports (node names are kept)."""
        self.stages = []

    def _push_and_pull(self, messages: list[Message]) -> tuple[dict[str, int], list[Message]]:
        """Message id -> the node it went to, and the replies that came back in time."""
        cache: packed_content.PackCache = {}  # the messages of a stage share one model: serialized once
        for message in messages:  # few objects on the wire (`fl_protocol.packed_content`)
            message.content = packed_content.pack(message.content, cache)
        ids = list(self.grid.push_messages(messages))
        sent = {message_id: message.metadata.dst_node_id for message_id, message in zip(ids, messages)}
        pending = set(ids)
        started = time.monotonic()
        deadline = started + self.timeout_s
        replies: list[Message] = []
        pause = _FIRST_POLL_S
        while pending:
            if stop_requested():
                raise Interrupted(f"stopped during {len(pending)} nodes' replies of a round")
            pulled = [reply for reply in self.grid.pull_messages(pending)
                      if reply.metadata.reply_to_message_id in pending]
            for reply in pulled:
                if reply.has_content():
                    try:
                        reply.content = packed_content.unpack(reply.content)
                    except ValueError as err:  # a node's bytes: its failure, not the round's
                        self._unreadable[reply.metadata.reply_to_message_id] = str(err)
            replies.extend(pulled)
            pending.difference_update(reply.metadata.reply_to_message_id for reply in pulled)
            now = time.monotonic()
            if not pending or now >= deadline:
                break
            time.sleep(pause)
            cap = _BRISK_POLL_S if now - started < _BRISK_PERIOD_S else _MAX_POLL_S
            pause = min(pause * 1.5, cap)
        return sent, replies


def payload_bytes(reply: Message) -> int:
    """Bytes of the arrays, metrics and config values a reply carried."""
    if not reply.has_content():
        return 0
    return content_bytes(reply.content)


def content_bytes(content: RecordDict) -> int:
    """Bytes of a message's arrays (as serialized) plus its scalars and byte strings."""
    total = sum(len(array.data) for record in content.array_records.values() for array in record.values())
    total += 8 * sum(len(record) for record in content.metric_records.values())
    for record in content.config_records.values():
        for value in record.values():
            items = value if isinstance(value, list) else [value]
            total += sum(len(item) if isinstance(item, bytes | str) else 8 for item in items)
    return total
