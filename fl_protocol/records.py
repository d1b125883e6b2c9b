"""Names of the records and metrics inside fedtriage's Flower messages.

Strategies from `flwr.serverapp.strategy` read `arrays`, `config` and the
`num-examples` weight; the rest is ours.
"""

ARRAYS_KEY = "arrays"
CONFIG_KEY = "config"
METRICS_KEY = "metrics"
# A ConfigRecord in replies that names the node for per-node reports.
NODE_INFO_KEY = "node-info"
NODE_LABEL = "label"
# A ConfigRecord in the first train reply of a node: what its holdings loader kept and skipped.
HOLDINGS_REPORT_KEY = "holdings-report"

NUM_EXAMPLES = "num-examples"
SERVER_ROUND = "server-round"
PROXIMAL_MU = "proximal-mu"

TRAIN_LOSS = "train-loss"
# How many nodes' losses reached secure.secagg.metric_bound (protected modes): the loss is then clipped.
TRAIN_LOSS_AT_BOUND = "train-loss-at-bound"
EVAL_LOSS_AT_BOUND = "eval-loss-at-bound"
TRAIN_SECONDS = "train-seconds"
EVAL_LOSS = "eval-loss"
EVAL_ACCURACY = "eval-accuracy"
EVAL_MACRO_F1 = "eval-macro-f1"
EVAL_ROC_AUC = "eval-roc-auc"
