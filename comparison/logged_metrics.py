"""The names, among those the tracker logs per round (`fl_server.tracking.round_metrics`), that a comparison reads.

Built from the same parts as the tracker's names where the tracker has them as constants;
a test runs a real simulation and checks that each name below is among what it logged.
"""

from fl_protocol import records
from fl_server.tracking.names import key

# Evaluation of the global model on the server's held-out proxy test set: the same set for every run.
CENTRAL_ACCURACY = key("central", records.EVAL_ACCURACY)
# The nodes' own evaluation, weighted by their examples.
FEDERATED_ACCURACY = key("federated", records.EVAL_ACCURACY)
# One round's duration on the server, from sampling to the new global model.
ROUND_SECONDS = "round/seconds"
# What one node uploaded in a round (all stages of its protocol), averaged over the round's nodes.
BYTES_PER_NODE = key("protocol", "bytes-per-node-mean")
# Privacy spent so far, in the order looked for: central DP (the server's accountant), local DP-SGD
# under secure aggregation (mean over the nodes' ledgers), local DP-SGD in plaintext (weighted mean).
EPSILON_METRICS = (key("protocol", "dp-epsilon"), key("train", "local-epsilon-mean"), key("train", "local-epsilon"))
