"""Benchmark: what protecting updates costs, against Flower's legacy SecAgg+.

    fedtriage bench secure [--quick] [--values N] [--nodes N]

Part 1, no training: 10 nodes send a fixed update of 1M float32 values each round;
measured side by side in Flower's simulation engine: plaintext aggregation, our
`secagg`, Flower's legacy SecAgg+ workflow, and our `ckks`. Seconds per round are the
median over rounds 2..N (round 1 also starts Ray and exchanges keys); bytes are what
each node uploads per round. The error is the largest deviation of the aggregated
mean from the exact weighted mean, next to the bound the quantization settings promise.
Part 2: a training round with the default model, 10 nodes, `secagg` vs plaintext.
Prints a table, then one JSON object of the figures as the very last line.
"""

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path

from cli.simulation.engine import run_app_objects_in_simulation, run_in_simulation_engine
from cli.simulation.kits import provision_simulated_kits
from cli.simulation.preflight import preflight
from experiments.secure_bench_apps import (
    BenchRun,
    fixed_update_apps,
    flower_secaggplus_apps,
    read_sizes,
)
from fl_protocol.protection.ckks_contexts import generate_contexts
from fl_protocol.protection.modes import ProtectionMode
from fl_protocol.run_config import load_settings
from fl_protocol.settings import RunSettings, with_ckks_context_dir
from fl_server.tracking import read_history

SPREAD = 0.5  # fixed updates are uniform in [-SPREAD, SPREAD]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="fedtriage bench secure", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds (under 3 minutes on 2 cores)")
    parser.add_argument("--values", type=int, default=1_000_000, help="update size in float32 values")
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=None, help="rounds per protocol (default 6, quick 2)")
    parser.add_argument("--train-rounds", type=int, default=None, help="training rounds (default 8, quick 5)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 6)
    train_rounds = args.train_rounds or (5 if args.quick else 8)
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="fedtriage-bench-secure-") as scratch_dir:
        scratch = Path(scratch_dir)
        base = [f"federation.num_nodes={args.nodes}", f"federation.num_rounds={rounds}", "tracking.enabled=false"]
        measured = {mode: fixed_updates(load_settings([*base, f"secure={mode}"]), args.values, scratch)
                    for mode in ("plaintext", "secagg", "ckks")}
        flower = flower_fixed_updates(load_settings([*base, "secure=secagg"]), args.values, scratch)
        training = {
            mode: training_round_seconds(
                load_settings(
                    [f"federation.num_nodes={args.nodes}", f"federation.num_rounds={train_rounds}",
                     "tracking.enabled=false", f"secure={mode}", f"output_dir={scratch / ('train-' + mode)}"]
                )
            )
            for mode in ("plaintext", "secagg")
        }

    float_bytes = 4 * args.values
    figures = {
        "values": args.values,
        "nodes": args.nodes,
        "rounds": rounds,
        "plain_s": round(measured["plaintext"]["seconds"], 3),
        "secagg_s": round(measured["secagg"]["seconds"], 3),
        "flower_secaggplus_s": round(flower["seconds"], 3),
        "ckks_s": round(measured["ckks"]["seconds"], 3),
        "ratio_vs_flower": round(measured["secagg"]["seconds"] / flower["seconds"], 3),
        "plain_bytes_per_node": int(measured["plaintext"]["bytes"]),
        "secagg_bytes_per_node": int(measured["secagg"]["bytes"]),
        "flower_bytes_per_node": int(flower["bytes"]),
        "ckks_bytes_per_node": int(measured["ckks"]["bytes"]),
        "bytes_ratio": round(measured["secagg"]["bytes"] / float_bytes, 4),
        "flower_bytes_ratio": round(flower["bytes"] / float_bytes, 4),
        "ckks_bytes_ratio": round(measured["ckks"]["bytes"] / float_bytes, 3),
        "max_abs_error": measured["secagg"]["error"],
        "error_bound": measured["secagg"]["error_bound"],
        "ckks_max_abs_error": measured["ckks"]["error"],
        "flower_max_abs_error": flower["error"],
        "train_round_plaintext_s": round(training["plaintext"], 3),
        "train_round_secagg_s": round(training["secagg"], 3),
        "training_round_ratio": round(training["secagg"] / training["plaintext"], 3),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print_table(figures)
    print(json.dumps(figures))


def fixed_updates(settings: RunSettings, values: int, scratch: Path) -> dict[str, float]:
    settings = provision_simulated_kits(dataclasses.replace(settings, output_dir=str(scratch / settings.secure.mode)))
    if settings.secure.mode is ProtectionMode.ckks:
        settings = with_ckks_context_dir(settings, generate_contexts(settings.secure.ckks, scratch / "ckks"))
    run = BenchRun()
    server, client = fixed_update_apps(settings, values, SPREAD, run)
    run_app_objects_in_simulation(server, client, settings)
    return summarize(run, settings.secure.mode)


def flower_fixed_updates(settings: RunSettings, values: int, scratch: Path) -> dict[str, float]:
    run = BenchRun()
    size_log = scratch / "flower-reply-sizes.txt"
    server, client = flower_secaggplus_apps(settings, values, SPREAD, run, size_log)
    run_app_objects_in_simulation(server, client, settings)
    figures = summarize(run, "flower-secaggplus")
    total = sum(size for _, size in read_sizes(size_log))
    figures["bytes"] = total / (settings.federation.num_nodes * settings.federation.num_rounds)
    return figures


def summarize(run: BenchRun, name: str) -> dict[str, float]:
    failures = [r.failure for r in run.rounds if r.failure]
    if failures or not run.rounds:
        raise RuntimeError(f"{name}: rounds failed: {failures or 'no round ran'}")
    steady = run.rounds[1:] or run.rounds
    return {
        "seconds": statistics.median(r.seconds for r in steady),
        "bytes": statistics.mean(r.bytes_per_node for r in run.rounds),
        "error": max(r.max_abs_error for r in run.rounds),
        "error_bound": run.error_bound,
    }


def training_round_seconds(settings: RunSettings) -> float:
    """Median seconds of training rounds 2..N of a real federation in the simulation engine."""
    settings = preflight(settings)
    run_in_simulation_engine(settings)
    rounds = [record for record in read_history(Path(str(settings.output_dir)) / "history.json") if record.round > 1]
    return statistics.median(record.seconds for record in rounds)


def print_table(f: dict[str, float]) -> None:
    print()
    print(f"{f['nodes']} nodes, update of {f['values']:,} float32 values, median of rounds 2..{f['rounds']}")
    print(f"{'protocol':<30}{'s / round':>11}{'bytes / node':>15}{'x float32':>11}{'max |error|':>14}")
    rows = [
        ("plaintext", f["plain_s"], f["plain_bytes_per_node"], f["plain_bytes_per_node"] / (4 * f["values"]), 0.0),
        ("fedtriage secagg", f["secagg_s"], f["secagg_bytes_per_node"], f["bytes_ratio"], f["max_abs_error"]),
        ("Flower legacy SecAgg+", f["flower_secaggplus_s"], f["flower_bytes_per_node"], f["flower_bytes_ratio"],
         f["flower_max_abs_error"]),
        ("fedtriage ckks", f["ckks_s"], f["ckks_bytes_per_node"], f["ckks_bytes_ratio"], f["ckks_max_abs_error"]),
    ]
    for name, seconds, size, ratio, error in rows:
        print(f"{name:<30}{seconds:>11.3f}{size:>15,}{ratio:>11.3f}{error:>14.2e}")
    print(f"secagg / Flower SecAgg+: {f['ratio_vs_flower']:.3f}x time; "
          f"quantization bound on the mean: {f['error_bound']:.2e}")
    print(
        f"training round, default model: plaintext {f['train_round_plaintext_s']:.3f} s, "
        f"secagg {f['train_round_secagg_s']:.3f} s ({f['training_round_ratio']:.3f}x); total {f['seconds']:.0f} s"
    )


if __name__ == "__main__":
    # Run through the command, which switches telemetry off before Flower, Ray or MLflow load.
    raise SystemExit("run this benchmark as: fedtriage bench secure [--quick]")
