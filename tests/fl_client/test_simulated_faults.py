"""Misbehaving nodes exist only in simulation: the nodes a simulation chose poison their update or drop out,
every other node stays honest, a deployed node ignores the simulation's word even in its own environment,
and no run config can ask a node to misbehave. Through the real ClientApp, delivered in-process."""

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from cli.simulation.faults import simulated_faults
from cli.simulation.kits import provision_simulated_kits
from fedtriage.errors import ConfigError, FederationFailed
from fl_client.client_app import app
from fl_client.holdings import write_synthetic_holdings
from fl_client.node_holdings import HOLDINGS_PATH_KEY, NUM_PARTITIONS_KEY, PARTITION_ID_KEY
from fl_client.simulated_faults import HONEST, NodeFaults, flipped_labels, node_faults, scaled_update
from fl_protocol import records
from fl_protocol.protection import messages
from fl_protocol.run_config import NODE_CONFIG_KEY, load_settings, node_run_config
from fl_protocol.settings import RunSettings
from fl_protocol.settings.simulated_faults import DROPOUT_STAGES, Attack
from fl_server.server_app import run_federation
from tests.support.inprocess_grid import InProcessGrid, simulated_nodes
from tests.support.kits import SMALL_FEDERATION, provision_nodes

Updates = dict[str, dict[str, np.ndarray]]
# One plaintext round of four nodes, nothing tracked: what each node sends is what the server receives.
ONE_ROUND = ["secure=plaintext", "federation.num_nodes=4", "federation.num_rounds=1", "evaluation.central=false",
             "tracking.enabled=false", "federation.node_wait_timeout_s=1"]
_SCRATCH = tempfile.TemporaryDirectory(prefix="fedtriage-test-faults-")
# Every message type a node answers.
ALL_MESSAGE_TYPES = ("train", "evaluate", *messages.QUERIES)


def _settings(*overrides: str) -> RunSettings:
    return load_settings([*ONE_ROUND, f"output_dir={tempfile.mkdtemp(dir=_SCRATCH.name)}", *overrides])


def _federate(settings: RunSettings, nodes: dict[int, dict[str, bool | int | float | str]],
              run_config: dict[str, bool | int | float | str] | None = None) -> InProcessGrid:
    """Every round of `settings` on `nodes`, the simulation's faults in the environment as its engine puts them."""
    grid = InProcessGrid(app, nodes, run_config or node_run_config(settings))
    with simulated_faults(settings.simulation.faults):
        run_federation(grid, settings, flower_run_id=1)
    return grid


def _updates(grid: InProcessGrid) -> Updates:
    """Node label -> the model it sent back from training."""
    return {
        str(reply.content[records.NODE_INFO_KEY][records.NODE_LABEL]):
            {name: array.numpy() for name, array in reply.content[records.ARRAYS_KEY].items()}
        for reply in grid.received
        if reply.has_content() and reply.metadata.message_type == "train"
    }


def _same(first: dict[str, np.ndarray], second: dict[str, np.ndarray]) -> bool:
    return first.keys() == second.keys() and all(np.array_equal(first[name], second[name]) for name in first)


def _global_model(grid: InProcessGrid) -> dict[str, np.ndarray]:
    """The model the first training instruction carried."""
    train = next(message for message in grid.delivered if message.metadata.message_type == "train")
    return {name: array.numpy() for name, array in train.content[records.ARRAYS_KEY].items()}


@pytest.fixture(scope="module")
def honest() -> Updates:
    """What the four simulated nodes send when every one of them is honest."""
    settings = _settings()
    return _updates(_federate(settings, simulated_nodes(4)))


def test_label_flipping_moves_every_label_to_the_next_class() -> None:
    dataset = TensorDataset(torch.zeros(4, 1, 2, 2), torch.tensor([0, 1, 2, 9]))
    flipped = flipped_labels(dataset, num_classes=10)
    assert flipped.tensors[1].tolist() == [1, 2, 3, 0]
    assert flipped.tensors[0] is dataset.tensors[0]


def test_a_scaled_update_multiplies_the_change_and_leaves_counters_alone() -> None:
    received = {"w": np.array([1.0, 2.0], dtype=np.float32), "steps": np.array(3)}
    trained = {"w": np.array([1.5, 1.0], dtype=np.float32), "steps": np.array(4)}
    scaled = scaled_update(received, trained, scale=-4.0)
    assert scaled["w"].tolist() == [-1.0, 6.0] and scaled["w"].dtype == np.float32
    assert scaled["steps"] == 4


def test_adversaries_are_the_lowest_partition_ids_and_dropouts_the_highest(monkeypatch: pytest.MonkeyPatch) -> None:
    faults = _settings("federation.num_nodes=10", "simulation.adversaries.share=0.3",
                       "simulation.adversaries.attack=scale", "simulation.dropouts.share=0.1").simulation.faults
    with simulated_faults(faults):
        seen = [node_faults({PARTITION_ID_KEY: index, NUM_PARTITIONS_KEY: 10}) for index in range(10)]
    assert [index for index, node in enumerate(seen) if node.attack is Attack.scale] == [0, 1, 2]
    assert all(node.scale == -4.0 for node in seen[:3])
    assert [index for index, node in enumerate(seen) if node.drop_stage == "train"] == [9]
    assert all(node == HONEST for node in seen[3:9])


def test_a_share_too_small_for_one_node_makes_none_misbehave() -> None:
    faults = _settings("simulation.adversaries.share=0.1", "simulation.adversaries.attack=label_flip").simulation.faults
    with simulated_faults(faults):
        assert all(node_faults({PARTITION_ID_KEY: index, NUM_PARTITIONS_KEY: 4}) == HONEST for index in range(4))


def test_the_simulations_word_is_gone_once_its_federation_is_over() -> None:
    faults = _settings("simulation.adversaries.share=1", "simulation.adversaries.attack=scale").simulation.faults
    with simulated_faults(faults):
        assert node_faults({PARTITION_ID_KEY: 0, NUM_PARTITIONS_KEY: 4}).attack is Attack.scale
    assert node_faults({PARTITION_ID_KEY: 0, NUM_PARTITIONS_KEY: 4}) == HONEST


def test_the_simulations_adversaries_train_on_flipped_labels_and_the_others_stay_honest(honest: Updates) -> None:
    settings = _settings("simulation.adversaries.share=0.5", "simulation.adversaries.attack=label_flip")
    poisoned = _updates(_federate(settings, simulated_nodes(4)))
    assert set(poisoned) == set(honest) == {"node-0", "node-1", "node-2", "node-3"}
    assert [label for label in sorted(poisoned) if not _same(poisoned[label], honest[label])] == ["node-0", "node-1"]


def test_a_scaling_adversary_sends_its_honest_change_times_the_factor(honest: Updates) -> None:
    settings = _settings("simulation.adversaries.share=0.25", "simulation.adversaries.attack=scale",
                         "simulation.adversaries.scale=-4")
    grid = _federate(settings, simulated_nodes(4))
    poisoned, start = _updates(grid), _global_model(grid)
    for name, values in poisoned["node-0"].items():
        np.testing.assert_allclose(values - start[name], -4.0 * (honest["node-0"][name] - start[name]), atol=1e-5)
    assert all(_same(poisoned[label], honest[label]) for label in ("node-1", "node-2", "node-3"))


def test_a_simulated_node_drops_out_at_its_stage_and_the_round_goes_on() -> None:
    settings = _settings("simulation.dropouts.share=0.25", "simulation.dropouts.stage=train")
    grid = _federate(settings, simulated_nodes(4))
    failed = {reply.metadata.message_type: reply.error.reason for reply in grid.received if reply.has_error()}
    assert failed == {"train": "dropped: simulated"}
    assert set(_updates(grid)) == {"node-0", "node-1", "node-2"}
    evaluated = [reply for reply in grid.received if reply.metadata.message_type == "evaluate"]
    assert len(evaluated) == 4 and not any(reply.has_error() for reply in evaluated)  # it drops at train only


def test_a_simulated_node_dropping_at_unmasking_leaves_secure_aggregation_a_sum_of_the_others() -> None:
    settings = provision_simulated_kits(_settings(
        "secure=secagg", "federation.num_nodes=3", *SMALL_FEDERATION,
        "simulation.dropouts.share=0.34", "simulation.dropouts.stage=unmask"))
    grid = InProcessGrid(app, simulated_nodes(3), node_run_config(settings))
    with simulated_faults(settings.simulation.faults):
        summary = run_federation(grid, settings, flower_run_id=1)
    assert summary.rounds_completed == 1
    assert {reply.error.reason for reply in grid.received if reply.has_error()} == {"dropped: simulated"}
    assert all(reply.metadata.message_type == "query.secagg_unmask" for reply in grid.received if reply.has_error())


def test_a_deployed_node_ignores_the_simulations_faults_even_in_its_own_environment(tmp_path: Path) -> None:
    classes = ["disc", "square"]
    _, nodes = provision_nodes(tmp_path / "kits", [1, 2], {"protection": {"modes": ["plaintext"]}})
    for index, config in enumerate(nodes.values()):
        write_synthetic_holdings(tmp_path / f"holdings-{index}", classes, 8, 32, "png", seed=index)
        config[HOLDINGS_PATH_KEY] = str(tmp_path / f"holdings-{index}")
        # Even a partition id (which no unit's SuperNode is started with) does not make it a simulated node.
        config.update({PARTITION_ID_KEY: index, NUM_PARTITIONS_KEY: 2})
    deployed = ["federation.num_nodes=2", "holdings=folder", f"holdings.classes=[{','.join(classes)}]",
                "train.batch_size=8", f"kit={tmp_path / 'kits' / 'coordinator'}"]
    asked = _settings(*deployed, "simulation.adversaries.share=1", "simulation.adversaries.attack=scale",
                      "simulation.dropouts.share=0.5")
    assert all(node_faults(config) == HONEST for config in nodes.values())
    told = _federate(asked, nodes)
    untold = _federate(_settings(*deployed), nodes)
    assert not [reply for reply in told.received if reply.has_error()]
    assert _updates(told).keys() == _updates(untold).keys() and len(_updates(told)) == 2
    assert all(_same(_updates(told)[label], _updates(untold)[label]) for label in _updates(told))


def test_a_run_config_that_asks_a_node_to_misbehave_is_refused() -> None:
    settings = _settings("federation.max_consecutive_failed_rounds=1")
    document = json.loads(node_run_config(settings)[NODE_CONFIG_KEY])
    document["simulation"] = {"adversaries": {"share": 1.0, "attack": "scale", "scale": -4.0},
                              "dropouts": {"share": 0.0, "stage": "train"}}
    grid = InProcessGrid(app, simulated_nodes(4), {NODE_CONFIG_KEY: json.dumps(document)})
    with pytest.raises(FederationFailed):
        run_federation(grid, settings, flower_run_id=1)
    assert {reply.error.reason for reply in grid.received if reply.has_error()} == {"failed: setting simulation"}
    assert not _updates(grid)


def test_every_stage_a_setting_can_name_is_a_stage_the_node_drops_at() -> None:
    asked = {stage: [kind for kind in ALL_MESSAGE_TYPES if NodeFaults(drop_stage=stage).drops_at(kind)]
             for stage in DROPOUT_STAGES}
    assert asked["train"] == ["train"] and asked["unmask"] == ["query.secagg_unmask"]
    assert all(asked.values()) and not any(HONEST.drops_at(kind) for kind in ALL_MESSAGE_TYPES)


def test_a_dropout_stage_the_protection_mode_does_not_have_is_refused_before_anything_runs() -> None:
    with pytest.raises(ConfigError) as caught:
        _settings("simulation.dropouts.share=0.2", "simulation.dropouts.stage=unmask")
    assert caught.value.key == "simulation.dropouts.stage" and "plaintext has no stage 'unmask'" in str(caught.value)
