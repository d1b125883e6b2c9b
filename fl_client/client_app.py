"""The ClientApp a unit's node runs: train and evaluate the global model locally.

Handlers follow Flower's Message API. Settings come from the run config
(`fl_protocol.run_config`); holdings from the node's own config. Nothing here talks
to MLflow or to any address but the SuperLink Flower connects to.
"""

import dataclasses
import functools
import logging
import zlib

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fl_client import ckks_node, secagg_node
from fl_client.holdings import NodeHoldings
from fl_client.local_dp import train_with_dpsgd
from fl_client.node_holdings import holdings_for_node, node_label
from fl_client.secure_contribution import encode_contribution
from fl_client.secure_stages import register_secure_stages
from fl_client.training import TrainResult, resolve_device, train_locally
from fl_client.update_protection import UpdateProtectionError, release_update
from fl_protocol import records
from fl_protocol.run_config import CONFIG_KEY, OVERRIDES_KEY, settings_from_run_config
from fl_protocol.secagg import session
from fl_protocol.settings import RunSettings
from fl_protocol.telemetry import disable_phone_home
from models import EvaluationResult, build_model, evaluate_model

disable_phone_home()
logger = logging.getLogger("fedtriage.client")

app = ClientApp()

# Set in a node's Context.state once its holdings report has been sent.
_REPORTED_STATE_KEY = "fedtriage-holdings-reported"


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Train the received global model on this node's training split.

    In a protected mode this is stage 2 of secure aggregation: the update leaves the
    node only inside the masked vector.
    """
    settings = _settings(context)
    if settings.secure.mode != "none":
        return _secure_contribution(msg, context, train=True)
    settings, holdings, model = _receive(msg, context)
    result = _train(msg, context, settings, holdings, model)
    content = RecordDict(
        {
            records.ARRAYS_KEY: release_update(ArrayRecord(model.state_dict()), settings.secure),
            records.METRICS_KEY: MetricRecord(
                {
                    records.TRAIN_LOSS: result.loss,
                    records.TRAIN_SECONDS: result.seconds,
                    records.NUM_EXAMPLES: result.num_examples,
                    **({"local-epsilon": result.epsilon} if result.epsilon is not None else {}),
                }
            ),
            records.NODE_INFO_KEY: _node_info(context),
        }
    )
    if _REPORTED_STATE_KEY not in context.state:
        content[records.HOLDINGS_REPORT_KEY] = ConfigRecord(holdings.report.to_flat_dict())
        context.state[_REPORTED_STATE_KEY] = ConfigRecord({"sent": True})
    return Message(content, reply_to=msg)


@app.query("secagg_evaluate")
def secure_evaluate(msg: Message, context: Context) -> Message:
    """Stage 2 of an evaluation-only secure session (after the last round)."""
    return _secure_contribution(msg, context, train=False)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Evaluate the received global model on this node's validation split (plaintext mode)."""
    settings = _settings(context)
    if settings.secure.mode != "none":
        raise UpdateProtectionError(
            f"secure.mode={settings.secure.mode}: per-node evaluation would reveal this node's example count"
        )
    settings, holdings, model = _receive(msg, context)
    result = _evaluate(settings, holdings, model)
    metrics = {
        records.EVAL_LOSS: result.loss,
        records.EVAL_ACCURACY: result.accuracy,
        records.EVAL_MACRO_F1: result.macro_f1,
        records.NUM_EXAMPLES: result.num_examples,
    }
    if len(holdings.val.classes) == 2:
        # Same keys from every node: NaN where a node's split lacks one class.
        metrics[records.EVAL_ROC_AUC] = float("nan") if result.roc_auc is None else result.roc_auc
    content = RecordDict(
        {records.METRICS_KEY: MetricRecord(metrics), records.NODE_INFO_KEY: _node_info(context)}
    )
    return Message(content, reply_to=msg)


def _secure_contribution(msg: Message, context: Context, train: bool) -> Message:
    """Evaluate the received model (and train it), then hand the encoded result to SecAgg.

    A round without secure aggregation is refused before holdings or model are loaded.
    """
    if session.PEERS_RECORD not in msg.content:
        mode = _settings(context).secure.mode
        raise UpdateProtectionError(f"secure.mode={mode}: refusing a round without secure aggregation")
    settings, holdings, model = _receive(msg, context)
    if _REPORTED_STATE_KEY not in context.state:
        # Counts stay on the node in protected modes: its operator sees them here.
        logger.info("holdings of %s: %s", node_label(context.node_config, context.node_id), holdings.report.summary())
        context.state[_REPORTED_STATE_KEY] = ConfigRecord({"sent": False})
    received = {name: array.numpy() for name, array in msg.content[records.ARRAYS_KEY].items()}
    evaluation = _evaluate(settings, holdings, model)
    trained, result = None, None
    if train:
        result = _train(msg, context, settings, holdings, model)
        trained = {name: tensor.detach().cpu().numpy() for name, tensor in model.state_dict().items()}
    epsilon = result.epsilon if result is not None and result.epsilon is not None else 0.0
    contribution = encode_contribution(settings, received, trained, result, evaluation, local_epsilon=epsilon)
    if contribution.encoded.out_of_range:
        logger.warning(
            "%d values of this node's update lie outside secure.secagg.clip_range=%g; they were clipped and are "
            "counted in the round's report",
            contribution.encoded.out_of_range, settings.secure.secagg.clip_range,
        )
    ciphertexts = None
    if contribution.encrypted_update.size:
        ciphertexts = ckks_node.encrypt(contribution.encrypted_update, settings.secure.ckks)
    return secagg_node.masked(msg, context, contribution.encoded.vector, _node_info(context), ciphertexts)


def _train(
    msg: Message, context: Context, settings: RunSettings, holdings: NodeHoldings, model: torch.nn.Module
) -> TrainResult:
    config = msg.content[records.CONFIG_KEY]
    server_round = int(config[records.SERVER_ROUND])
    if settings.privacy.mode == "local_dpsgd":
        return train_with_dpsgd(
            model, holdings.train.as_dataset(), settings.train, settings.privacy,
            seed=_node_seed(settings, context, server_round), context=context,
        )
    return train_locally(
        model,
        holdings.train.as_dataset(),
        settings.train,
        seed=_node_seed(settings, context, server_round),
        proximal_mu=float(config.get(records.PROXIMAL_MU, 0.0)),
    )


def _evaluate(settings: RunSettings, holdings: NodeHoldings, model: torch.nn.Module) -> EvaluationResult:
    return evaluate_model(
        model,
        holdings.val.as_dataset(),
        batch_size=max(settings.train.batch_size, 256),
        device=resolve_device(settings.train.device),
        num_classes=len(holdings.val.classes),
    )


def _receive(msg: Message, context: Context) -> tuple[RunSettings, NodeHoldings, torch.nn.Module]:
    """What every handler starts from: settings, this node's holdings, the global model."""
    settings = _settings(context)
    torch.set_num_threads(settings.train.threads)
    holdings = holdings_for_node(settings, context.node_config)
    return settings, holdings, _global_model(settings, msg)


def _settings(context: Context) -> RunSettings:
    run_config = context.run_config
    return _settings_from(
        str(run_config.get(CONFIG_KEY, "") or ""), str(run_config.get(OVERRIDES_KEY, "") or "")
    )


@functools.lru_cache(maxsize=4)
def _settings_from(config_document: str, overrides: str) -> RunSettings:
    return settings_from_run_config({CONFIG_KEY: config_document, OVERRIDES_KEY: overrides})


def _global_model(settings: RunSettings, msg: Message) -> torch.nn.Module:
    holdings = settings.holdings
    assert holdings.classes, "the server checks that holdings.classes is set"
    # The global weights arrive in the message; a server-side weights file is not ours.
    model = build_model(
        dataclasses.replace(settings.model, weights_path=None),
        num_classes=len(holdings.classes),
        in_channels=holdings.channels,
        image_size=holdings.image_size,
    )
    model.load_state_dict(msg.content[records.ARRAYS_KEY].to_torch_state_dict())
    return model


def _node_info(context: Context) -> ConfigRecord:
    return ConfigRecord({records.NODE_LABEL: node_label(context.node_config, context.node_id)})


def _node_seed(settings: RunSettings, context: Context, server_round: int) -> int:
    """Different per node and round, identical across repeats of the same run."""
    label = node_label(context.node_config, context.node_id)
    return (settings.seed * 1_000_003 + server_round * 7919 + zlib.crc32(label.encode())) % (2**31)


# Secure aggregation's other stages (setup, share keys, unmask) and CKKS decryption; the
# stage that carries the contribution is `train` / `secure_evaluate` above.
register_secure_stages(app, _settings, _node_info)
