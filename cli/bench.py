"""`fedtriage bench NAME`: a benchmark of `experiments/`; each prints a table, then one JSON line.

    fedtriage bench accuracy --quick     # federated vs centralized accuracy on digits
    fedtriage bench secure --quick       # secagg, ckks and Flower's SecAgg+ per round
    fedtriage bench classify --quick     # triage throughput against the model's own limit
    fedtriage bench deploy --quick       # a deployed round (coordinator, 3 nodes on loopback) vs simulation
    fedtriage bench all [--out DIR] [--only NAME ...]
                                         # each of them --quick in its own process; one JSON and one Markdown report

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
# Not a benchmark of its own: runs those above and reports them together.
ALL = "experiments.bench_all"


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else EXIT_BAD_INPUT
    name, rest = argv[0], argv[1:]
    module = ALL if name == "all" else BENCHMARKS.get(name)
    if module is None:
        raise ConfigError("NAME", f"unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}, all")
    return int(importlib.import_module(module).main(rest) or 0)
