"""`fedtriage compare`: tables and plots comparing tracked runs, for a researcher's report.

    fedtriage compare --experiment fedtriage --out report/                 # every training run
    fedtriage compare --experiment fedtriage --sweep 14-02-33 --out report/  # one sweep (its id or parent run id)
    fedtriage compare --experiment fedtriage --tag fedtriage.update_protection=secagg --out report/

Writes in --out, and as the artifacts of a comparison run in the same MLflow experiment:
comparison.md and comparison.csv (per run: final and best central accuracy, federated
accuracy, rounds to --target, wall time, median seconds per round, bytes per node, epsilon,
privacy audit figures where present; a figure a run did not log shows as missing) and the
plots accuracy_per_round.png, accuracy_vs_epsilon.png, seconds_per_round_by_mode.png and
attack_quality_by_mode.png (each drawn when some run has its data). Sweep parents and
earlier comparisons are never compared. The store is --tracking-uri, else
$MLFLOW_TRACKING_URI, else mlflow.db in this folder (as `fedtriage simulate` uses).
"""

import argparse
from pathlib import Path

from cli.arguments import CommandParser

# The default digits federation passes 0.9 central accuracy within its 5 rounds (README): a
# target that tells quick settings apart. Harder data sets need a lower one.
DEFAULT_TARGET = 0.9


def main(argv: list[str]) -> int:
    parser = CommandParser(
        prog="fedtriage compare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--experiment", required=True, metavar="NAME", help="the MLflow experiment of the runs")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for the tables and plots")
    parser.add_argument("--tracking-uri", metavar="URI", help="the MLflow store (default: see above)")
    parser.add_argument("--sweep", metavar="ID", help="only this sweep's jobs: its sweep id or its parent run's id")
    parser.add_argument("--tag", action="append", default=[], metavar="K=V",
                        help="only runs with this tag (repeat: all must match)")
    parser.add_argument("--target", type=float, default=DEFAULT_TARGET, metavar="ACC",
                        help="the central accuracy 'rounds to target' counts to (default: %(default)s)")
    args = parser.parse_args(argv)

    from comparison.report import ComparisonRequest, compare
    from comparison.selection import RunSelection, parse_tag

    selection = RunSelection(args.experiment, args.sweep, tuple(parse_tag(text) for text in args.tag))
    report = compare(ComparisonRequest(selection, args.out, args.target, args.tracking_uri))
    print(report.markdown.read_text(encoding="utf-8"))
    print(f"compared {len(report.runs)} runs; wrote {report.markdown}, {report.csv}"
          + "".join(f", {plot}" for plot in report.plots))
    print(f"MLflow comparison run {report.logged.run_id}: its files are at {report.logged.artifact_uri}")
    return 0
