"""Holdings are one seam: a loader yields images and labels with a report of what it
skipped; simulated partitions and a unit's real folder look the same to the trainer.

Reading the files themselves (walking, decoding, VICS) is `media`; holdings label
what it reads: by category folder, by VICS `Category`, or by the proxy and public datasets' own labels.
"""

from fl_client.holdings.digits import load_digits_holdings
from fl_client.holdings.folder import discover_classes, load_folder_holdings
from fl_client.holdings.holdings import Holdings, HoldingsError, HoldingsReport
from fl_client.holdings.loading import load_holdings
from fl_client.holdings.partition import class_histograms, format_histograms, partition_indices
from fl_client.holdings.simulated_node import NodeHoldings, central_test_holdings, simulated_node_holdings
from fl_client.holdings.splits import split_holdout, train_val_split
from fl_client.holdings.synthetic import ensure_synthetic_holdings, write_synthetic_holdings
from fl_client.holdings.torchvision_sets import load_torchvision_holdings
from fl_client.holdings.vics import load_vics_holdings

__all__ = [
    "Holdings",
    "HoldingsError",
    "HoldingsReport",
    "NodeHoldings",
    "central_test_holdings",
    "class_histograms",
    "discover_classes",
    "ensure_synthetic_holdings",
    "format_histograms",
    "load_digits_holdings",
    "load_folder_holdings",
    "load_holdings",
    "load_torchvision_holdings",
    "load_vics_holdings",
    "partition_indices",
    "simulated_node_holdings",
    "split_holdout",
    "train_val_split",
    "write_synthetic_holdings",
]
