"""The ClientApp a unit's node runs: train and evaluate the global model on its own holdings.

Handlers follow Flower's Message API. The app says how the node does its work
(`LocalWork`: holdings, local training, evaluation); the protection attached to it
(`fl_client.protection`) decides what of the results leaves the node. Settings are the
nodes' part of the run config (`fl_protocol.run_config`); holdings come from the
node's own config. Nothing here talks to MLflow or to any address but the SuperLink
Flower connects to.
"""

import dataclasses
import functools
import zlib

import torch
from flwr.app import ConfigRecord, Context, Message
from flwr.clientapp import ClientApp

from fedtriage.environment import disable_phone_home
from fl_client.holdings import HoldingsReport, NodeHoldings
from fl_client.kit import node_kit
from fl_client.node_holdings import holdings_for_node, node_label
from fl_client.policy_gate import node_policy_of
from fl_client.protection import LocalTraining, attach_protection
from fl_client.protection.local_dp import train_with_dpsgd
from fl_client.simulated_faults import flipped_labels, node_faults, scaled_update
from fl_client.training import TrainResult, resolve_device, train_locally
from fl_protocol import records
from fl_protocol.protection.modes import PrivacyMode
from fl_protocol.run_config import NODE_CONFIG_KEY, OVERRIDES_KEY, node_settings_from_run_config
from fl_protocol.settings import NodeSettings
from fl_protocol.settings.simulated_faults import Attack
from models import EvaluationResult, build_model, evaluate_model

disable_phone_home()

app = ClientApp()


class LocalWork:
    """This node's work on the model of one instruction; holdings and model are loaded on first use."""

    def __init__(self, msg: Message, context: Context, settings: NodeSettings) -> None:
        self._msg = msg
        self._context = context
        self._settings = settings
        self._trained = False
        torch.set_num_threads(settings.train.threads)

    @functools.cached_property
    def _holdings(self) -> NodeHoldings:
        policy = node_policy_of(self._context.node_config)  # the unit maps the federation's classes
        return holdings_for_node(self._settings, self._context.node_config,
                                 policy.holdings.categories if policy is not None else None)

    @functools.cached_property
    def _model(self) -> torch.nn.Module:
        return _global_model(self._settings, self._msg)

    @property
    def num_classes(self) -> int:
        return len(self._holdings.val.classes)

    def holdings_report(self) -> HoldingsReport:
        return self._holdings.report

    def evaluate(self) -> EvaluationResult:
        if self._trained:
            raise RuntimeError("evaluate() scores the model as received: call it before train()")
        return evaluate_model(
            self._model,
            self._holdings.val.as_dataset(),
            batch_size=max(self._settings.train.batch_size, 256),
            device=resolve_device(self._settings.train.device),
            num_classes=len(self._holdings.val.classes),
        )

    def train(self) -> LocalTraining:
        settings, model = self._settings, self._model
        config = self._msg.content[records.CONFIG_KEY]
        seed = _node_seed(settings, self._context, int(config[records.SERVER_ROUND]))
        dataset = self._holdings.train.as_dataset()
        faults = node_faults(self._context.node_config)  # honest unless a simulation made this node an adversary
        if faults.attack is Attack.label_flip:
            dataset = flipped_labels(dataset, self.num_classes)
        self._trained = True
        result: TrainResult
        if settings.privacy.mode is PrivacyMode.local_dpsgd:
            # The node's ledger lives in its own kit: a node without one cannot keep a budget across runs.
            kit = node_kit(self._context.node_config)
            result = train_with_dpsgd(model, dataset, settings.train, settings.privacy, seed=seed, kit=kit)
        else:
            proximal_mu = float(config.get(records.PROXIMAL_MU, 0.0))
            result = train_locally(model, dataset, settings.train, seed=seed, proximal_mu=proximal_mu)
        trained = {name: tensor.detach().cpu().numpy() for name, tensor in model.state_dict().items()}
        if faults.attack is Attack.scale:
            received = {name: array.numpy() for name, array in self._msg.content[records.ARRAYS_KEY].items()}
            trained = scaled_update(received, trained, faults.scale)
        return LocalTraining(trained=trained, result=result)


def _settings(context: Context) -> NodeSettings:
    run_config = context.run_config
    return _settings_from(
        str(run_config.get(NODE_CONFIG_KEY, "") or ""), str(run_config.get(OVERRIDES_KEY, "") or "")
    )


@functools.lru_cache(maxsize=4)
def _settings_from(node_document: str, overrides: str) -> NodeSettings:
    return node_settings_from_run_config({NODE_CONFIG_KEY: node_document, OVERRIDES_KEY: overrides})


def _global_model(settings: NodeSettings, msg: Message) -> torch.nn.Module:
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


def _node_seed(settings: NodeSettings, context: Context, server_round: int) -> int:
    """Different per node and round, identical across repeats of the same run."""
    label = node_label(context.node_config, context.node_id)
    return (settings.seed * 1_000_003 + server_round * 7919 + zlib.crc32(label.encode())) % (2**31)


attach_protection(app, _settings, LocalWork, _node_info)
