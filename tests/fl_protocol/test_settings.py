"""Configuration: Hydra composition, validation with named settings, the crossing into Flower."""

import json

import pytest

from cli.simulation.preflight import check_simulation, preflight
from configs.compose import compose_config
from fedtriage.errors import ConfigError
from fl_protocol.protection.ckks_contexts import generate_context
from fl_protocol.protection.modes import ProtectionMode
from fl_protocol.run_config import (
    CONFIG_KEY,
    NODE_CONFIG_KEY,
    OVERRIDES_KEY,
    coordinator_run_config,
    load_settings,
    node_run_config,
    node_settings_from_run_config,
    settings_from_run_config,
)
from fl_protocol.settings import NodeSettings, settings_from_mapping


def test_defaults_compose_into_a_four_node_digits_federation() -> None:
    settings = load_settings()
    assert settings.federation.num_nodes == 4
    # Not every node: one unit lost for good must not end the federation.
    assert settings.federation.min_available_nodes == settings.federation.min_train_nodes == 2
    assert settings.holdings.source == "digits"
    assert settings.secure.mode is ProtectionMode.secagg  # no plaintext update leaves a node by default


def test_group_and_value_overrides_apply() -> None:
    settings = load_settings(
        ["federation.num_nodes=10", "strategy=fedprox", "partition=dirichlet", "partition.alpha=0.3", "model=resnet18"]
    )
    assert settings.federation.num_nodes == 10
    assert settings.strategy.name == "fedprox"
    assert settings.strategy.params["proximal_mu"] == pytest.approx(0.01)
    assert settings.partition.alpha == pytest.approx(0.3)
    assert settings.model.name == "resnet18"


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("partition.alpha=0", "partition.alpha"),
        ("partition.alpha=-0.5", "partition.alpha"),
        ("federation.num_nodes=0", "federation.num_nodes"),
        ("federation.num_nodes=many", "federation.num_nodes"),
        ("train.lr=-1", "train.lr"),
        ("train.optimizer=rmsprop", "train.optimizer"),
        ("holdings.test_fraction=1.5", "holdings.test_fraction"),
        ("partition.scheme=zipf", "partition.scheme"),
        ("secure.mode=magic", "secure.mode"),
    ],
)
def test_bad_values_name_the_setting(override: str, key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings([override])
    assert raised.value.key == key
    assert str(raised.value).startswith(key)


def test_unknown_key_is_rejected_with_its_name() -> None:
    with pytest.raises(ConfigError, match="federation.rounds"):
        load_settings(["+federation.rounds=3"])


def test_a_configuration_composes_inside_a_running_hydra_app_which_keeps_its_own(tmp_path) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from configs import CONFIG_DIR

    (tmp_path / "app.yaml").write_text("name: the-running-app\n")
    with initialize_config_dir(config_dir=str(tmp_path), version_base="1.3"):
        running = GlobalHydra.instance().hydra
        assert compose_config(["federation.num_nodes=7"])["federation"]["num_nodes"] == 7
        assert GlobalHydra.instance().hydra is running
        assert compose(config_name="app")["name"] == "the-running-app"
    assert not GlobalHydra.instance().is_initialized()
    assert compose_config(config_dir=CONFIG_DIR)["federation"]["num_nodes"] == 4


def test_unknown_config_group_option_names_the_group() -> None:
    with pytest.raises(ConfigError, match="strategy: unknown option .fedsgd.; did you mean fedavg"):
        compose_config(["strategy=fedsgd"])


def test_a_coordinator_without_central_evaluation_needs_no_holdings_path() -> None:
    # A deployed node takes its holdings path from its own node config, never from the run.
    settings = load_settings(["holdings=folder", "holdings.classes=[a,b]", "evaluation.central=false"])
    assert settings.holdings.path is None


def test_a_simulation_of_folder_holdings_without_a_path_names_holdings_path() -> None:
    with pytest.raises(ConfigError, match="holdings.path"):
        preflight(load_settings(["holdings=folder"]))


def test_simulation_refuses_to_wait_for_more_nodes_than_it_creates() -> None:
    settings = load_settings(["federation.num_nodes=3", "federation.min_available_nodes=5"])
    with pytest.raises(ConfigError, match="federation.min_available_nodes"):
        check_simulation(settings)


def test_settings_cross_into_flower_as_json_documents_and_back() -> None:
    settings = load_settings(["strategy=fedadam", "federation.num_rounds=7"])
    run_config = coordinator_run_config(settings)
    assert sorted(run_config) == [CONFIG_KEY, NODE_CONFIG_KEY]
    assert list(node_run_config(settings)) == [NODE_CONFIG_KEY]  # nodes are given their part only
    assert all(isinstance(value, str) for value in run_config.values())  # Flower's run config: scalars
    assert settings_from_run_config(run_config) == settings
    assert node_settings_from_run_config(run_config) == settings.for_nodes()


def test_nodes_are_given_no_tracking_checkpoint_evaluation_strategy_or_simulation_settings() -> None:
    settings = load_settings(["tracking.tracking_uri=http://mlflow.coordinator.example:5000"])
    given = node_run_config(settings)
    assert "mlflow.coordinator.example" not in json.dumps(given)
    node_document = json.loads(given[NODE_CONFIG_KEY])
    assert set(node_document) == {"seed", "holdings", "partition", "model", "train", "federation", "secure", "privacy"}
    assert type(node_settings_from_run_config(given)) is NodeSettings


def test_a_node_refuses_a_document_with_coordinator_sections() -> None:
    document = coordinator_run_config(load_settings())[CONFIG_KEY]  # the coordinator's whole, not the nodes' part
    with pytest.raises(ConfigError, match="checkpoint: no such setting"):
        node_settings_from_run_config({NODE_CONFIG_KEY: document})


def test_empty_run_config_composes_defaults_with_overrides() -> None:
    # What `flwr run . --run-config 'fedtriage-overrides="strategy=krum"'` gives both apps.
    overrides = "strategy=krum secure=plaintext federation.num_rounds=2"
    settings = settings_from_run_config({CONFIG_KEY: "", OVERRIDES_KEY: overrides})
    assert settings.strategy.name == "krum"
    assert settings.federation.num_rounds == 2


def test_tampered_run_config_document_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=CONFIG_KEY):
        settings_from_run_config({CONFIG_KEY: "{not json"})
    config = json.loads(coordinator_run_config(load_settings())[CONFIG_KEY])
    config["federation"]["num_nodes"] = "four"
    with pytest.raises(ConfigError, match="federation.num_nodes"):
        settings_from_mapping(config)


def test_relative_paths_are_made_absolute_before_crossing(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(["holdings=synthetic", "output_dir=runs/a"])
    assert settings.holdings.path == str(tmp_path / "outputs" / "synthetic_holdings")
    assert settings.output_dir == str(tmp_path / "runs" / "a")


def test_the_coordinator_cannot_name_the_ckks_key_nodes_use() -> None:
    """The key lives in each node's kit; a run config naming another is refused, never followed."""
    with pytest.raises(ConfigError, match="secure.ckks.context_dir"):
        load_settings(["secure=ckks", "+secure.ckks.context_dir=/tmp/coordinator-made"])


def test_ckks_moduli_up_to_seals_limit_for_the_degree_are_accepted_and_one_bit_more_is_not(tmp_path) -> None:
    degree = "secure.ckks.poly_modulus_degree=4096"
    accepted = load_settings(["secure=ckks", degree, "secure.ckks.coeff_mod_bit_sizes=[30,20,20,39]"])  # 109 bits
    generate_context(accepted.secure.ckks, tmp_path)  # SEAL agrees
    with pytest.raises(ConfigError, match="coeff_mod_bit_sizes: add up to 110 bits.*poly_modulus_degree=4096"):
        load_settings(["secure=ckks", degree, "secure.ckks.coeff_mod_bit_sizes=[30,20,20,40]"])
