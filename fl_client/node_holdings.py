"""Which holdings a node trains on, and the name it reports under.

A deployed unit points its SuperNode at its own folder with
`--node-config 'holdings-path="/data/holdings" node-name="unit-a"'`; a simulated node
gets `partition-id`/`num-partitions` from Flower and takes its share of the proxy pool.
Both end up as the same `NodeHoldings`, so the trainer cannot tell them apart.
"""

import functools
from collections.abc import Mapping
from pathlib import Path

from fedtriage.errors import ConfigError
from fl_client.holdings import (
    HoldingsError,
    NodeHoldings,
    load_folder_holdings,
    simulated_node_holdings,
    train_val_split,
)
from fl_protocol.settings import NodeSettings

HOLDINGS_PATH_KEY = "holdings-path"
NODE_NAME_KEY = "node-name"
PARTITION_ID_KEY = "partition-id"
NUM_PARTITIONS_KEY = "num-partitions"

NodeConfig = Mapping[str, bool | int | float | str]


def node_label(node_config: NodeConfig, node_id: int) -> str:
    """A readable, stable name for per-node reports."""
    if NODE_NAME_KEY in node_config:
        return str(node_config[NODE_NAME_KEY])
    if PARTITION_ID_KEY in node_config:
        return f"node-{int(node_config[PARTITION_ID_KEY])}"
    return f"node-{node_id}"


def holdings_for_node(settings: NodeSettings, node_config: NodeConfig) -> NodeHoldings:
    """Load (once per process) the holdings this node trains and evaluates on."""
    if HOLDINGS_PATH_KEY in node_config:
        return _unit_holdings(settings, str(node_config[HOLDINGS_PATH_KEY]))
    if PARTITION_ID_KEY in node_config and NUM_PARTITIONS_KEY in node_config:
        return simulated_node_holdings(
            settings,
            partition_id=int(node_config[PARTITION_ID_KEY]),
            num_partitions=int(node_config[NUM_PARTITIONS_KEY]),
        )
    raise HoldingsError(
        f"node-config {HOLDINGS_PATH_KEY}",
        "this node has no holdings: start the SuperNode with "
        f"--node-config '{HOLDINGS_PATH_KEY}=\"/path/to/holdings\"'"
    )


def _unit_holdings(settings: NodeSettings, path: str) -> NodeHoldings:
    classes = settings.holdings.classes
    if not classes:
        raise ConfigError(
            "holdings.classes", "a deployed federation must list its category folder names"
        )
    return _load_unit_holdings(
        path, tuple(classes), settings.holdings.image_size, settings.holdings.channels,
        settings.holdings.val_fraction, settings.seed,
    )


@functools.lru_cache(maxsize=2)
def _load_unit_holdings(
    path: str, classes: tuple[str, ...], image_size: int, channels: int,
    val_fraction: float, seed: int,
) -> NodeHoldings:
    holdings = load_folder_holdings(Path(path), classes, image_size, channels)
    train, val = train_val_split(holdings, val_fraction, seed)
    return NodeHoldings(train=train, val=val, report=holdings.report)
