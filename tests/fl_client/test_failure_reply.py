"""A node's failure reaches the coordinator as a code and a short public message; its text stays on the node."""

import logging

import pytest
from flwr.app import Message, RecordDict
from flwr.common import Metadata

from fedtriage.errors import ConfigError
from fl_client.failure_reply import NODE_ERROR, failure_reply, public_reason
from fl_client.holdings import HoldingsError
from fl_client.policy_gate import PolicyRefused
from fl_client.protection.privacy_ledger import PrivacyBudgetExhausted
from fl_client.protection.secagg import ProtocolViolation

SECRET_PATH = "/srv/holdings/operation-daybreak"


def _instruction() -> Message:
    metadata = Metadata(run_id=1, message_id="m1", src_node_id=1, dst_node_id=2, reply_to_message_id="",
                        group_id="1", created_at=0.0, ttl=60.0, message_type="train")
    return Message(metadata=metadata, content=RecordDict())


@pytest.mark.parametrize(("error", "reason"), [
    (HoldingsError("holdings.path", f"class folder {SECRET_PATH} does not exist"), "failed: holdings"),
    (PrivacyBudgetExhausted(f"this round would take the node's epsilon to 7.31 (ledger {SECRET_PATH})"),
     "refused: privacy-budget"),
    (PolicyRefused("min-cohort", "the cohort has 2 members; secure.min_cohort is 3"), "refused: policy min-cohort"),
    (ConfigError("train.batch_size", f"bad value read from {SECRET_PATH}"), "failed: setting train.batch_size"),
    (OSError(f"[Errno 5] Input/output error: '{SECRET_PATH}/x.png'"), NODE_ERROR),
])
def test_the_reply_carries_the_kind_of_failure_and_the_node_log_the_details(
    error: Exception, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="fedtriage.client"):
        reply = failure_reply(_instruction(), error)
    assert reply.has_error() and reply.error.reason == reason
    assert SECRET_PATH not in reply.error.reason and not any(ch.isdigit() for ch in reply.error.reason)
    assert reason in caplog.text and (SECRET_PATH in caplog.text or "cohort has 2" in caplog.text)


def test_a_protocol_violation_names_what_the_server_sent() -> None:
    violation = ProtocolViolation("the server's cohort is not a sorted set of nodes that includes this node")
    assert public_reason(violation) == f"refused: protocol: {violation}"
