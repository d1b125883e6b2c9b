"""Benchmark: a deployed round against the same round in simulation.

    fedtriage bench deploy [--quick] [--rounds N] [--repeats N] [--images-per-class N]

A real federation on this host (experiments/loopback_federation.py): `fedtriage
coordinator start` (SuperLink with TLS and SuperNode authentication behind nginx) and three
`fedtriage node start`, each unit with its own generated holdings; runs submitted with
`fedtriage run start`, the default model, `plaintext` and `secagg`. The same settings in
Flower's simulation engine: three nodes sharing generated holdings of the same size
(`holdings=synthetic`, three times the images per class, none held out: central evaluation
is off on both sides, so each simulated node trains on as many images as a unit does). Seconds per round are the median
of rounds 2..N of a run (round 1 also loads the app and holdings and shares keys); every
figure is the median over `--repeats` interleaved repetitions (deployed plaintext, deployed
secagg, simulated plaintext, simulated secagg, then again). Prints a table, then one JSON
object of the figures as the very last line.
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from cli.simulation.engine import run_in_simulation_engine
from cli.simulation.preflight import preflight
from experiments.loopback_federation import CLASSES, CLASSES_SETTING, loopback_federation
from fl_protocol.run_config import load_settings
from fl_server.tracking import read_history

MODES = ("plaintext", "secagg")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="fedtriage bench deploy", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds and repetitions (minutes on 2 cores)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per run (default 5, quick 3)")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved repetitions (default 3, quick 1)")
    parser.add_argument("--images-per-class", type=int, default=40, help="each unit's generated images per class")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 5)
    repeats = args.repeats or (1 if args.quick else 3)
    started = time.perf_counter()
    samples: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="fedtriage-bench-deploy-") as scratch_dir:
        scratch = Path(scratch_dir)
        with loopback_federation(scratch / "federation", images_per_class=args.images_per_class) as federation:
            common = [f"federation.num_rounds={rounds}", f"federation.min_train_nodes={len(federation.units)}"]
            for repeat in range(repeats):
                for mode in MODES:
                    done = federation.fedtriage("run", "start", "--kit", str(federation.kit("coordinator")),
                                                f"secure={mode}", CLASSES_SETTING, *common)
                    if done.returncode != 0:
                        raise RuntimeError(f"deployed {mode} run failed: {done.stderr[-2000:]}")
                    samples.setdefault(f"deployed_{mode}_s", []).append(_round_seconds(_output_dir(done.stdout)))
                for mode in MODES:
                    output = scratch / f"simulated-{mode}-{repeat}"
                    settings = preflight(load_settings([
                        *common, f"secure={mode}", f"federation.num_nodes={len(federation.units)}",
                        "holdings=synthetic", f"holdings.path={scratch / 'simulated-holdings'}",
                        f"holdings.classes=[{','.join(CLASSES)}]",
                        f"holdings.synthetic.images_per_class={args.images_per_class * len(federation.units)}",
                        "holdings.synthetic.image_format=png", "evaluation.central=false", "holdings.test_fraction=0",
                        f"simulation.node_policy.secure.min_peers={len(federation.units) - 1}",
                        "tracking.enabled=false", f"output_dir={output}",
                    ]))
                    run_in_simulation_engine(settings)
                    samples.setdefault(f"simulated_{mode}_s", []).append(_round_seconds(output))
    figures: dict[str, float] = {key: statistics.median(values) for key, values in samples.items()}
    for mode in MODES:
        figures[f"{mode}_ratio"] = figures[f"deployed_{mode}_s"] / figures[f"simulated_{mode}_s"]
    figures.update(nodes=3, rounds=rounds, repeats=repeats, images_per_class=args.images_per_class,
                   wall_s=time.perf_counter() - started)
    _print_table(figures)
    print(json.dumps({key: round(value, 4) for key, value in figures.items()}))


def _output_dir(stdout: str) -> Path:
    lines = [line for line in stdout.splitlines() if line.startswith("outputs: ")]
    if not lines:
        raise RuntimeError(f"the run printed no output folder: {stdout[-2000:]}")
    return Path(lines[-1].removeprefix("outputs: ").strip())


def _round_seconds(output_dir: Path) -> float:
    rounds = [record.seconds for record in read_history(output_dir / "history.json") if record.round > 1]
    return statistics.median(rounds)


def _print_table(f: dict[str, float]) -> None:
    print()
    print(f"3 nodes on loopback, default model, {f['images_per_class']:g} images per class per node, median of "
          f"rounds 2..{f['rounds']:g}, median of {f['repeats']:g} interleaved repetitions")
    print(f"{'protection':<12}{'deployed s/round':>18}{'simulated s/round':>19}{'deployed / simulated':>22}")
    for mode in MODES:
        print(f"{mode:<12}{f[f'deployed_{mode}_s']:>18.2f}{f[f'simulated_{mode}_s']:>19.2f}"
              f"{f[f'{mode}_ratio']:>22.2f}")
    print(f"wall time {f['wall_s']:.0f} s")


if __name__ == "__main__":
    # Run through the command, which switches telemetry off before Flower, Ray or MLflow load.
    raise SystemExit("run this benchmark as: fedtriage bench deploy [--quick]")
