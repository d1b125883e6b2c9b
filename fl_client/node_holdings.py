"""Which holdings a node trains on, and the name it reports under.

A deployed unit points its SuperNode at its own folder with
`--node-config 'holdings-path="/data/holdings" node-name="unit-a"'`; a simulated node
gets `partition-id`/`num-partitions` from Flower and takes its share of the proxy pool.
Both end up as the same `NodeHoldings`, so the trainer cannot tell them apart.
"""

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path

from fedtriage.errors import ConfigError
from fl_client.holdings import (
    HoldingsError,
    NodeHoldings,
    load_folder_holdings,
    load_vics_holdings,
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


def holdings_for_node(
    settings: NodeSettings, node_config: NodeConfig, categories: Mapping[str, Sequence[str]] | None = None
) -> NodeHoldings:
    """Load (once per process) the holdings this node trains and evaluates on.

    `categories` is the unit's own map from the federation's class names to its categories
    (its policy's `holdings.categories`); empty: each class is the folder of its name.
    """
    if HOLDINGS_PATH_KEY in node_config:
        return _unit_holdings(settings, str(node_config[HOLDINGS_PATH_KEY]), categories or {})
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


def _unit_holdings(settings: NodeSettings, path: str, categories: Mapping[str, Sequence[str]]) -> NodeHoldings:
    classes = settings.holdings.classes
    if not classes:
        raise ConfigError(
            "holdings.classes", "a deployed federation must list its class names"
        )
    local = tuple(tuple(categories.get(name, (name,))) for name in classes)
    return _load_unit_holdings(
        path, tuple(classes), local, settings.holdings.image_size, settings.holdings.channels,
        settings.holdings.val_fraction, settings.seed,
    )


@functools.lru_cache(maxsize=2)
def _load_unit_holdings(
    path: str, classes: tuple[str, ...], local: tuple[tuple[str, ...], ...], image_size: int, channels: int,
    val_fraction: float, seed: int,
) -> NodeHoldings:
    source = Path(path)
    if source.is_file():
        holdings = load_vics_holdings(source, source.parent, classes, _category_numbers(local), image_size, channels)
    else:
        holdings = load_folder_holdings(source, classes, image_size, channels, folders_of_class=local)
    train, val = train_val_split(holdings, val_fraction, seed)
    return NodeHoldings(train=train, val=val, report=holdings.report)


def _category_numbers(local: tuple[tuple[str, ...], ...]) -> list[list[int]]:
    """A VICS case's categories are its `Category` numbers, as the unit's policy maps them."""
    try:
        return [[int(category) for category in names] for names in local]
    except ValueError:
        raise HoldingsError(
            "policy.holdings.categories", "a VICS case's categories are Category numbers: map each of the "
            "federation's classes to the numbers of the categories that feed it"
        ) from None
