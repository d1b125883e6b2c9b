"""The audit attacks exactly what the server receives: checked against the real protocol and release gate."""

import math

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.clientapp import ClientApp

from fl_client.holdings import HoldingsReport, load_holdings
from fl_client.protection import LocalTraining, attach_protection
from fl_client.protection.release import UpdateProtectionError
from fl_protocol import records
from fl_protocol.protection import messages
from fl_protocol.protection.modes import PrivacyMode, ProtectionMode
from fl_protocol.protection.secagg import session
from fl_protocol.run_config import load_settings
from fl_protocol.settings import NodeSettings, RunSettings
from fl_server.node_exchange import NodeExchange
from fl_server.protection.central_dp import CentralPrivacy
from fl_server.protection.secagg_keys import SecAggRunKeys
from fl_server.protection.secagg_session import run_session
from models import EvaluationResult
from privacy_audit.audited_model import ModelArrays, build_audited_model, model_arrays
from privacy_audit.audited_modes import AuditedMode, mode_settings
from privacy_audit.node_updates import NodeData, NodeUpdate, train_node
from privacy_audit.server_view import plaintext_delta, secure_sum
from tests.support.inprocess_grid import InProcessGrid
from tests.support.kits import shared_node_kits

NODES = [11, 22, 33]


def audited(protection: ProtectionMode, privacy: PrivacyMode = PrivacyMode.none, cohort: int = 3) -> RunSettings:
    return mode_settings(load_settings(["tracking.enabled=false"]), AuditedMode(protection, privacy, cohort))


def node_data(count: int, images_per_node: int = 2) -> list[NodeData]:
    images, labels = load_holdings(audited(ProtectionMode.plaintext).holdings).as_dataset().tensors
    return [
        NodeData(images[k * images_per_node:(k + 1) * images_per_node],
                 labels[k * images_per_node:(k + 1) * images_per_node], seed=100 + k)
        for k in range(count)
    ]


def global_model(settings: RunSettings) -> ModelArrays:
    torch.manual_seed(0)
    return model_arrays(build_audited_model(settings.for_nodes()))


class TrainsAuditData:
    """A node's work (the `NodeWork` seam benchmarks use too): the audit's own training of its data."""

    num_classes = 10

    def __init__(self, msg: Message, settings: NodeSettings, data: NodeData) -> None:
        self._msg, self._settings, self._data = msg, settings, data

    def evaluate(self) -> EvaluationResult:
        return EvaluationResult(loss=math.nan, accuracy=math.nan, macro_f1=math.nan, roc_auc=None, num_examples=0)

    def train(self) -> LocalTraining:
        received = {name: array.numpy() for name, array in self._msg.content[records.ARRAYS_KEY].items()}
        update = train_node(self._settings, received, self._data)
        return LocalTraining(update.trained, update.result)

    def holdings_report(self) -> HoldingsReport:
        return HoldingsReport(source="privacy audit", loaded=len(self._data.labels))


def test_the_audits_secure_sum_is_bit_for_bit_the_sum_a_full_secagg_session_unmasks() -> None:
    settings = audited(ProtectionMode.secagg)
    data = dict(zip(NODES, node_data(len(NODES))))
    received = global_model(settings)
    app = ClientApp()
    attach_protection(
        app,
        settings_for=lambda context: settings.for_nodes(),
        work_for=lambda msg, context, node_settings: TrainsAuditData(msg, node_settings, data[context.node_id]),
        node_info=lambda context: ConfigRecord({records.NODE_LABEL: f"node-{context.node_id}"}),
    )
    coordinator_kit, node_configs = shared_node_kits(NODES)
    exchange = NodeExchange(InProcessGrid(app, node_configs, {}), timeout_s=5.0)
    run_keys = SecAggRunKeys(coordinator_kit)
    registered = run_keys.ensure_setup(exchange, NODES)
    values = sum(array.size for array in received.values())
    content = RecordDict({records.ARRAYS_KEY: ArrayRecord({name: Array(array) for name, array in received.items()})})
    layout = session.layout(values, settings.secure.secagg, settings.federation.num_nodes)
    protocol = run_session(exchange, run_keys, settings.secure.secagg, layout, content, messages.SECAGG_TRAIN,
                           sorted(registered), min_nodes=2)
    assert protocol.failure is None and protocol.used == NODES

    audit = secure_sum(settings, received, [train_node(settings.for_nodes(), received, data[n]) for n in NODES])

    assert np.array_equal(audit.update_sum, protocol.sums[session.UPDATE])
    assert audit.total_weight == protocol.sums[session.WEIGHT][0] == len(NODES)


def test_a_plaintext_view_is_the_nodes_update_and_a_secagg_node_releases_none() -> None:
    plaintext = audited(ProtectionMode.plaintext, cohort=1)
    received = global_model(plaintext)
    update = train_node(plaintext.for_nodes(), received, node_data(1)[0])

    delta = plaintext_delta(plaintext.for_nodes(), received, update)

    for name, array in received.items():
        assert np.allclose(delta[name], update.trained[name] - array)
    assert any(np.abs(part).max() > 0 for part in delta.values())
    with pytest.raises(UpdateProtectionError):
        plaintext_delta(audited(ProtectionMode.secagg).for_nodes(), received, update)


def test_central_dp_adds_noise_of_its_configured_std_to_the_sum_and_accounts_for_it() -> None:
    settings = audited(ProtectionMode.secagg, PrivacyMode.central)
    received = global_model(settings)
    updates: list[NodeUpdate] = [train_node(settings.for_nodes(), received, data) for data in node_data(3)]
    privacy = CentralPrivacy(settings)

    exact = secure_sum(settings, received, updates)
    noised = secure_sum(settings, received, updates, privacy)

    expected_std = settings.privacy.noise_multiplier * settings.privacy.clip_norm
    assert np.std(noised.update_sum - exact.update_sum) == pytest.approx(expected_std, rel=0.05)
    assert privacy.metrics()["dp-epsilon"] > 0
