"""Mode `plaintext`: the node's results leave as they are, through the one release gate.

Every plaintext reply passes `release_update`, which refuses unless the node's
settings chose `secure.mode: plaintext` explicitly; a protected node never builds one.
"""

from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict

from fedtriage.errors import Refused
from fl_client.protection.work import NodeWork
from fl_protocol import records
from fl_protocol.protection.modes import ProtectionMode
from fl_protocol.settings import NodeSettings, UpdateProtectionSettings

# Set in a node's Context.state once its holdings report has been released.
_REPORTED_STATE_KEY = "fedtriage-holdings-reported"


class UpdateProtectionError(Refused):
    """A node was asked to release an update in a way its settings do not allow."""

    code = "protection"


def release_update(update: ArrayRecord, settings: UpdateProtectionSettings) -> ArrayRecord:
    """Return `update` in the form that may leave the node under `settings`."""
    if settings.mode is ProtectionMode.plaintext:
        return update
    raise UpdateProtectionError(
        f"secure.mode={settings.mode} is set on this node; refusing to send a plaintext update"
    )


class PlaintextRelease:
    """Answers train and evaluate instructions with the node's own update and metrics."""

    def __init__(self, settings: NodeSettings, node_info: ConfigRecord) -> None:
        self._settings = settings
        self._node_info = node_info

    def train(self, msg: Message, context: Context, work: NodeWork) -> Message:
        training = work.train()
        result = training.result
        arrays = ArrayRecord({name: Array(array) for name, array in training.trained.items()})
        content = RecordDict(
            {
                records.ARRAYS_KEY: release_update(arrays, self._settings.secure),
                records.METRICS_KEY: MetricRecord(
                    {
                        records.TRAIN_LOSS: result.loss,
                        records.TRAIN_SECONDS: result.seconds,
                        records.NUM_EXAMPLES: result.num_examples,
                        **({"local-epsilon": result.epsilon} if result.epsilon is not None else {}),
                    }
                ),
                records.NODE_INFO_KEY: self._node_info,
            }
        )
        if _REPORTED_STATE_KEY not in context.state:
            content[records.HOLDINGS_REPORT_KEY] = ConfigRecord(work.holdings_report().to_flat_dict())
            context.state[_REPORTED_STATE_KEY] = ConfigRecord({"sent": True})
        return Message(content, reply_to=msg)

    def evaluate(self, msg: Message, context: Context, work: NodeWork) -> Message:
        result = work.evaluate()
        metrics = {
            records.EVAL_LOSS: result.loss,
            records.EVAL_ACCURACY: result.accuracy,
            records.EVAL_MACRO_F1: result.macro_f1,
            records.NUM_EXAMPLES: result.num_examples,
        }
        if work.num_classes == 2:
            # Same keys from every node: NaN where a node's split lacks one class.
            metrics[records.EVAL_ROC_AUC] = float("nan") if result.roc_auc is None else result.roc_auc
        content = RecordDict({records.METRICS_KEY: MetricRecord(metrics), records.NODE_INFO_KEY: self._node_info})
        return Message(content, reply_to=msg)

    def query(self, msg: Message, context: Context, work: NodeWork) -> Message:
        raise UpdateProtectionError(
            f"secure.mode=plaintext is set on this node; it takes no part in {msg.metadata.message_type}"
        )
