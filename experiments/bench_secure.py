"""Benchmark: what protecting updates costs, against Flower's legacy SecAgg+.

    fedtriage bench secure [--quick] [--values N] [--nodes N] [--repeats N]

Part 1, no training: 10 nodes send a fixed update of 1M float32 values each round;
measured side by side in Flower's simulation engine: plaintext aggregation, our
`secagg`, Flower's legacy SecAgg+ workflow, and our `ckks`. Seconds per round are the
median over rounds 2..N (round 1 also starts Ray and exchanges keys); bytes are what
each node uploads per round. The error is the largest deviation of the aggregated
mean from the exact mean, next to the bound the quantization settings promise.
Part 2: a training round with the default model, 10 nodes, `secagg` vs plaintext.
Every figure is the median over `--repeats` interleaved repetitions of the whole set
(plaintext, secagg, ckks, Flower, the two training runs, then again), so that a busy
machine slows all of them alike. The cost of the malicious-model additions is shown
apart: the consistency round's seconds, and the identity signatures each node makes
and checks per round (counted from the protocol, timed on this machine). The consistency
round runs under secagg only when a node dropped after sharing its keys (else every node
signed the cohort at stage 1); under ckks it always runs, and is shown from there.
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
from fl_protocol.run_config import load_settings
from fl_protocol.settings import RunSettings
from fl_server.tracking import read_history

SPREAD = 0.5  # fixed updates are uniform in [-SPREAD, SPREAD]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="fedtriage bench secure", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds (under 3 minutes on 2 cores)")
    parser.add_argument("--values", type=int, default=1_000_000, help="update size in float32 values")
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=None, help="rounds per protocol (default 6, quick 3)")
    parser.add_argument("--train-rounds", type=int, default=None, help="training rounds (default 8, quick 5)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repetitions of the whole set (median)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 6)
    train_rounds = args.train_rounds or (5 if args.quick else 8)
    started = time.perf_counter()

    samples: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="fedtriage-bench-secure-") as scratch_dir:
        for repeat in range(args.repeats):
            scratch = Path(scratch_dir) / f"repeat-{repeat}"
            base = [f"federation.num_nodes={args.nodes}", f"federation.num_rounds={rounds}", "tracking.enabled=false"]
            for mode in ("plaintext", "secagg", "ckks"):
                samples.setdefault(mode, []).append(
                    fixed_updates(load_settings([*base, f"secure={mode}"]), args.values, scratch)
                )
            samples.setdefault("flower", []).append(
                flower_fixed_updates(load_settings([*base, "secure=secagg"]), args.values, scratch)
            )
            for mode in ("plaintext", "secagg"):
                seconds = training_round_seconds(
                    load_settings(
                        [f"federation.num_nodes={args.nodes}", f"federation.num_rounds={train_rounds}",
                         "tracking.enabled=false", f"secure={mode}", f"output_dir={scratch / ('train-' + mode)}"]
                    )
                )
                samples.setdefault(f"train-{mode}", []).append({"seconds": seconds})
    measured = {name: _medians(runs) for name, runs in samples.items()}
    flower = measured["flower"]
    training = {mode: measured[f"train-{mode}"]["seconds"] for mode in ("plaintext", "secagg")}
    signatures = signature_cost(args.nodes)

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
        "repeats": args.repeats,
        "secagg_consistency_s": round(measured["secagg"]["consistency_seconds"], 4),
        "ckks_consistency_s": round(measured["ckks"]["consistency_seconds"], 4),
        "node_signs_per_round": signatures["node_signs"],
        "node_verifies_per_round": signatures["node_verifies"],
        "node_signature_ms_per_round": round(signatures["node_ms"], 3),
        "server_verifies_per_round": signatures["server_verifies"],
        "server_signature_ms_per_round": round(signatures["server_ms"], 3),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print_table(figures)
    print(json.dumps(figures))


def fixed_updates(settings: RunSettings, values: int, scratch: Path) -> dict[str, float]:
    settings = provision_simulated_kits(dataclasses.replace(settings, output_dir=str(scratch / settings.secure.mode)))
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
        "consistency_seconds": statistics.median(r.stage_seconds.get("secagg-consistency", 0.0) for r in steady),
    }


def _medians(runs: list[dict[str, float]]) -> dict[str, float]:
    """Per figure, the median over the repetitions (the largest, for errors)."""
    return {
        key: max(run[key] for run in runs) if "error" in key else statistics.median(run[key] for run in runs)
        for key in runs[0]
    }


def signature_cost(nodes: int, repeats: int = 200) -> dict[str, float]:
    """What the identity signatures of one secagg round cost, for `nodes` nodes all neighbours.

    Per node: it signs its run key and checks every participant's once per run (not counted),
    and per round its round keys, one box per neighbour, its ciphertexts and the cohort; it
    checks every neighbour's round keys and box to it, and every cohort signature. The server
    checks each node's round keys, boxes, ciphertexts and cohort signature.
    """
    from fl_protocol.identity.keys import IdentityKey, verify

    key = IdentityKey.generate()
    message = b"x" * 64
    signature = key.sign("bench", message)
    sign_s = _median_seconds(lambda: key.sign("bench", message), repeats)
    verify_s = _median_seconds(lambda: verify(key.public, signature, "bench", message), repeats)
    peers = nodes - 1
    node_signs = 1 + peers + 1 + 1
    node_verifies = peers + peers + nodes
    server_verifies = nodes * (1 + peers + 1 + 1)
    return {
        "node_signs": node_signs,
        "node_verifies": node_verifies,
        "node_ms": 1000 * (node_signs * sign_s + node_verifies * verify_s),
        "server_verifies": server_verifies,
        "server_ms": 1000 * server_verifies * verify_s,
    }


def _median_seconds(call, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def training_round_seconds(settings: RunSettings) -> float:
    """Median seconds of training rounds 2..N of a real federation in the simulation engine."""
    settings = preflight(settings)
    run_in_simulation_engine(settings)
    rounds = [record for record in read_history(Path(str(settings.output_dir)) / "history.json") if record.round > 1]
    return statistics.median(record.seconds for record in rounds)


def print_table(f: dict[str, float]) -> None:
    print()
    print(f"{f['nodes']} nodes, update of {f['values']:,} float32 values, median of rounds 2..{f['rounds']}, "
          f"median of {f['repeats']} interleaved repetitions")
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
    print(
        f"malicious-model additions per round: consistency round {f['secagg_consistency_s']:.4f} s under secagg "
        f"(0 when nobody drops: the fast path), {f['ckks_consistency_s']:.4f} s under ckks (always); "
        f"identity signatures {f['node_signs_per_round']} made and {f['node_verifies_per_round']} checked per node "
        f"({f['node_signature_ms_per_round']:.2f} ms), {f['server_verifies_per_round']} checked by the server "
        f"({f['server_signature_ms_per_round']:.2f} ms)"
    )


if __name__ == "__main__":
    # Run through the command, which switches telemetry off before Flower, Ray or MLflow load.
    raise SystemExit("run this benchmark as: fedtriage bench secure [--quick]")
