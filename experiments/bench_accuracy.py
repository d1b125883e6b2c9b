"""Benchmark: does federated training match centralized training on the same proxy data?

    fedtriage bench accuracy [--quick] [--rounds N] [--nodes N]

Trains, on the same digits pool, seed and held-out test set: (a) a centralized
baseline, (b) FedAvg over 10 nodes, IID, (c) FedAvg over 10 nodes, Dirichlet(0.5),
and (d) (b) again under secure aggregation. The federations run in Flower's
simulation engine; (b) and (c) in plaintext mode, because only there do nodes report
their local training time, from which the engine overhead is computed: a round's wall
time divided by the summed local training time of its nodes.
Prints a table, then one JSON object of the figures as the very last line.
"""

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from cli.simulation.engine import run_in_simulation_engine
from cli.simulation.preflight import preflight
from fl_client.holdings import load_holdings, split_holdout, train_val_split
from fl_client.training import train_locally
from fl_protocol.run_config import load_settings
from fl_protocol.settings import RunSettings
from fl_server.run_summary import read_summary
from fl_server.tracking import read_history
from models import build_model, evaluate_model

ACCURACY = "central/eval-accuracy"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="fedtriage bench accuracy", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds (finishes in under 3 minutes on 2 cores)")
    parser.add_argument("--rounds", type=int, default=None, help="federated rounds (default 40, quick 20)")
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--local-epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    rounds = args.rounds or (20 if args.quick else 40)
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="fedtriage-bench-") as scratch:
        base = [
            f"seed={args.seed}",
            f"federation.num_nodes={args.nodes}",
            f"federation.num_rounds={rounds}",
            f"train.local_epochs={args.local_epochs}",
            "tracking.enabled=false",
        ]
        centralized = centralized_accuracy(load_settings(base), epochs=rounds * args.local_epochs)
        iid = federated_run(load_settings([*base, "secure=plaintext", "partition=iid", f"output_dir={scratch}/iid"]))
        dirichlet = federated_run(
            load_settings(
                [*base, "secure=plaintext", "partition=dirichlet", "partition.alpha=0.5",
                 f"output_dir={scratch}/dirichlet"]
            )
        )
        secure_iid = federated_run(
            load_settings([*base, "secure=secagg", "partition=iid", f"output_dir={scratch}/secure-iid"])
        )

    figures = {
        "centralized_acc": round(centralized, 4),
        "federated_iid_acc": round(iid["accuracy"], 4),
        "federated_dirichlet_acc": round(dirichlet["accuracy"], 4),
        "ratio_iid": round(iid["accuracy"] / centralized, 4),
        "ratio_dirichlet": round(dirichlet["accuracy"] / centralized, 4),
        "federated_iid_secagg_acc": round(secure_iid["accuracy"], 4),
        "engine_overhead_iid": round(iid["overhead"], 2),
        "engine_overhead_dirichlet": round(dirichlet["overhead"], 2),
        "first_round_seconds": round(iid["first_round_seconds"], 2),
        "round_seconds_median": round(iid["round_seconds"], 3),
        "nodes": args.nodes,
        "rounds": rounds,
        "local_epochs": args.local_epochs,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print_table(figures)
    print(json.dumps(figures))


def centralized_accuracy(settings: RunSettings, epochs: int) -> float:
    """Train one model on the whole federated pool (nodes' training shares) and score it."""
    holdings = load_holdings(settings.holdings)
    pool, test = split_holdout(holdings, settings.holdings.test_fraction, settings.seed)
    train, _ = train_val_split(pool, settings.holdings.val_fraction, settings.seed)
    torch.manual_seed(settings.seed)
    model = build_model(
        settings.model,
        num_classes=len(holdings.classes),
        in_channels=settings.holdings.channels,
        image_size=settings.holdings.image_size,
    )
    train_locally(model, train.as_dataset(), replace(settings.train, local_epochs=epochs), seed=settings.seed)
    return evaluate_model(model, test.as_dataset(), batch_size=256, num_classes=len(holdings.classes)).accuracy


def federated_run(settings: RunSettings) -> dict[str, float]:
    """One simulated federation; final central accuracy and engine overhead."""
    settings = preflight(settings)
    run_in_simulation_engine(settings)
    output_dir = Path(str(settings.output_dir))
    summary = read_summary(output_dir)
    rounds = [record for record in read_history(output_dir / "history.json") if record.round > 0]
    overheads = [r.seconds / r.node_train_seconds for r in rounds if r.node_train_seconds > 0]
    return {
        "accuracy": summary.final_metrics[ACCURACY],
        # Protected modes keep nodes' training times to themselves: no overhead figure then.
        "overhead": statistics.median(overheads[1:] or overheads) if overheads else float("nan"),
        "first_round_seconds": rounds[0].seconds,
        "round_seconds": statistics.median(r.seconds for r in rounds[1:] or rounds),
    }


def print_table(figures: dict[str, float]) -> None:
    """The human-readable part of the report."""
    print()
    print(f"digits, {figures['nodes']} nodes, {figures['rounds']} rounds x {figures['local_epochs']} local epochs")
    print(f"{'setting':<28}{'central test accuracy':>22}{'ratio':>8}{'engine overhead':>17}")
    print(f"{'centralized baseline':<28}{figures['centralized_acc']:>22.4f}{'1.000':>8}{'-':>17}")
    print(
        f"{'FedAvg, IID':<28}{figures['federated_iid_acc']:>22.4f}{figures['ratio_iid']:>8.3f}"
        f"{figures['engine_overhead_iid']:>16.2f}x"
    )
    print(
        f"{'FedAvg, Dirichlet(0.5)':<28}{figures['federated_dirichlet_acc']:>22.4f}"
        f"{figures['ratio_dirichlet']:>8.3f}{figures['engine_overhead_dirichlet']:>16.2f}x"
    )
    secure_ratio = figures["federated_iid_secagg_acc"] / figures["centralized_acc"]
    print(f"{'FedAvg, IID, secagg':<28}{figures['federated_iid_secagg_acc']:>22.4f}{secure_ratio:>8.3f}{'-':>17}")
    print(
        f"engine overhead = round wall time / summed node training time (median over rounds 2..N); "
        f"round 1 took {figures['first_round_seconds']:.1f} s (Ray start-up), later rounds "
        f"{figures['round_seconds_median']:.2f} s; total {figures['seconds']:.0f} s"
    )


if __name__ == "__main__":
    # Run through the command, which switches telemetry off before Flower, Ray or MLflow load.
    raise SystemExit("run this benchmark as: fedtriage bench accuracy [--quick]")
