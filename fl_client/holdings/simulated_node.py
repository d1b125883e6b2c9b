"""A simulated node's holdings: its partition of the shared pool, split into train and val.

Every simulated node loads the same source, holds out the same central test set and
computes the same partition from the run's seed, then keeps only its own part; no
process hands data to another, as in a real federation.
"""

import dataclasses
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedtriage.errors import ConfigError
from fl_client.holdings.holdings import Holdings, HoldingsReport
from fl_client.holdings.loading import load_holdings
from fl_client.holdings.partition import partition_indices
from fl_client.holdings.splits import split_holdout, train_val_split
from fl_protocol.settings import NodeSettings

# Gives every node a train/val seed of its own, distinct from the holdout's seed.
_NODE_SEED_STRIDE = 1_000_003
# A Ray actor serves many messages of one run; a second entry covers a sweep switching runs.
_CACHED_POOLS = 2


@dataclass
class NodeHoldings:
    """What one node trains and validates on, and the report it sends to the server."""

    train: Holdings
    val: Holdings
    report: HoldingsReport


@dataclass
class _SplitPool:
    pool: Holdings
    test: Holdings
    partitions: dict[str, list[np.ndarray]] = field(default_factory=dict)
    # (partition key, partition id) -> that node's split, reused for every message.
    nodes: dict[tuple[str, int], "NodeHoldings"] = field(default_factory=dict)


_pools: "OrderedDict[str, _SplitPool]" = OrderedDict()
_pools_lock = threading.Lock()


def simulated_node_holdings(settings: NodeSettings, partition_id: int, num_partitions: int) -> NodeHoldings:
    """Node `partition_id`'s part of the federated pool (the pool excludes the central test set)."""
    if not 0 <= partition_id < num_partitions:
        raise ConfigError(
            "federation.num_nodes", f"partition {partition_id} does not exist among {num_partitions} partitions"
        )
    with _pools_lock:
        split = _split_pool(settings)
        partition_key = json.dumps([num_partitions, section_key(settings.partition)])
        cached = split.nodes.get((partition_key, partition_id))
        if cached is not None:
            return cached
        parts = split.partitions.get(partition_key)
        if parts is None:
            parts = partition_indices(split.pool.labels.numpy(), num_partitions, settings.partition, settings.seed)
            split.partitions[partition_key] = parts
        node = split.pool.subset(parts[partition_id])
        train, val = train_val_split(
            node, settings.holdings.val_fraction, seed=settings.seed + _NODE_SEED_STRIDE * (partition_id + 1)
        )
        split.nodes[(partition_key, partition_id)] = NodeHoldings(train=train, val=val, report=node.report)
        return split.nodes[(partition_key, partition_id)]


def central_test_holdings(settings: NodeSettings) -> Holdings:
    """The held-out test set: the same split the nodes use, so it overlaps no node's data."""
    with _pools_lock:
        return _split_pool(settings).test


def _split_pool(settings: NodeSettings) -> _SplitPool:
    """Loaded and held-out once per process and configuration (caller holds the lock)."""
    key = json.dumps([section_key(settings.holdings), settings.seed])
    cached = _pools.get(key)
    if cached is not None:
        _pools.move_to_end(key)
        return cached
    pool, test = split_holdout(load_holdings(settings.holdings), settings.holdings.test_fraction, settings.seed)
    _pools[key] = _SplitPool(pool=pool, test=test)
    while len(_pools) > _CACHED_POOLS:
        _pools.popitem(last=False)
    return _pools[key]


def section_key(section: Any) -> str:
    """A stable text key for a settings section, for caches keyed by configuration."""
    return json.dumps(dataclasses.asdict(section), sort_keys=True)
