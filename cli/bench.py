"""`fedtriage bench NAME`: a benchmark of `experiments/`; each prints a table, then one JSON line.

    fedtriage bench accuracy --quick     # federated vs centralized accuracy on digits
    fedtriage bench secure --quick       # secagg, ckks and Flower's SecAgg+ per round
    fedtriage bench classify --quick     # triage throughput against the model's own limit
    fedtriage bench deploy --quick       # a deployed round (coordinator, 3 nodes on loopback) vs simulation

`fedtriage bench NAME --help` lists a benchmark's options.
"""

import importlib

from fedtriage.errors import EXIT_BAD_INPUT, ConfigError

BENCHMARKS = {
    "accuracy": "experiments.bench_accuracy",
    "secure": "experiments.bench_secure",
    "classify": "experiments.bench_classify",
    "deploy": "experiments.bench_deploy",
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else EXIT_BAD_INPUT
    name, rest = argv[0], argv[1:]
    if name not in BENCHMARKS:
        raise ConfigError("NAME", f"unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}")
    return int(importlib.import_module(BENCHMARKS[name]).main(rest) or 0)
