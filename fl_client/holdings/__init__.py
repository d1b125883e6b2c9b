"""Holdings are one seam: a loader yields images and labels with a report of what it
skipped; simulated partitions and a unit's real folder look the same to the trainer.
"""

from fl_client.holdings.digits import load_digits_holdings
from fl_client.holdings.folder import discover_classes, load_folder_holdings
from fl_client.holdings.holdings import Holdings, HoldingsError, HoldingsReport, SkippedFile
from fl_client.holdings.loading import load_holdings
from fl_client.holdings.partition import class_histograms, format_histograms, partition_indices
from fl_client.holdings.simulated_node import NodeHoldings, central_test_holdings, simulated_node_holdings
from fl_client.holdings.splits import split_holdout, train_val_split
from fl_client.holdings.synthetic import ensure_synthetic_holdings, write_synthetic_holdings
from fl_client.holdings.vics import (
    VicsError,
    VicsMedia,
    VicsProblem,
    load_vics_holdings,
    read_vics_media,
    resolve_media_path,
)

__all__ = [
    "Holdings",
    "HoldingsError",
    "HoldingsReport",
    "NodeHoldings",
    "SkippedFile",
    "VicsError",
    "VicsMedia",
    "VicsProblem",
    "central_test_holdings",
    "class_histograms",
    "discover_classes",
    "ensure_synthetic_holdings",
    "format_histograms",
    "load_digits_holdings",
    "load_folder_holdings",
    "load_holdings",
    "load_vics_holdings",
    "partition_indices",
    "read_vics_media",
    "resolve_media_path",
    "simulated_node_holdings",
    "split_holdout",
    "train_val_split",
    "write_synthetic_holdings",
]
