"""A node's failure as the coordinator sees it: a code and a short public message, never local text.

Whatever goes wrong on a node (a refusal, its holdings, a bug) ends the instruction with an
error reply. The exception's own text may name the unit's folders, counts or privacy
budget: a missing class folder's path is an oracle for folder names, a refused DP-SGD plan's
epsilon gives the dataset's size. So the reply carries only the public reason of the error's
kind; the full text goes to the node's own log, for its operator.
"""

import logging

from flwr.app import Error, Message
from flwr.common.constant import ErrorCode

from fedtriage.errors import ConfigError, Refused
from fl_client.holdings import HoldingsError

logger = logging.getLogger("fedtriage.client")

# The reason of any failure that is neither a refusal nor a setting: a bug or the host.
NODE_ERROR = "failed: node error"


def public_reason(error: BaseException) -> str:
    """What the coordinator may learn of `error`."""
    if isinstance(error, Refused):
        return error.public_reason
    if isinstance(error, HoldingsError):
        return "failed: holdings"
    if isinstance(error, ConfigError):
        return f"failed: setting {error.key}"
    return NODE_ERROR


def failure_reply(msg: Message, error: BaseException) -> Message:
    """The error reply to `msg`; the node's log gets the whole story."""
    reason = public_reason(error)
    what = msg.metadata.message_type
    if isinstance(error, Refused | ConfigError):
        logger.warning("%s answered %r: %s", what, reason, getattr(error, "detail", None) or error)
    else:
        logger.error("%s answered %r: %s", what, reason, error, exc_info=error)
    return Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason), reply_to=msg)
