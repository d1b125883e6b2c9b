"""Every benchmark in its quick mode, one after the other, and one report of all their figures.

    fedtriage bench all [--out DIR] [--only NAME ...] [--timeout S]

Runs `fedtriage bench NAME --quick` for each benchmark, each in a process of its own (so
that one's memory and threads do not touch the next, and its peak resident memory is its
own), and writes DIR/bench.json and DIR/bench.md: the machine they ran on (CPU, memory, OS,
Python, library versions, git commit, date) and, per benchmark, its command, exit code, wall
time, peak memory, figures, and the table it printed. The report is rewritten after each
benchmark. A benchmark that fails (non-zero exit, or no JSON object as its last line) is
reported with the last lines of its stderr; the others still run, and the command exits 1 at
the end. Each benchmark repeats its own measurements and reports their medians; on a busy
machine the figures are still noisy. Takes a while: tens of minutes on 2 cores.
Prints a line per benchmark and a summary table, then one JSON object as the very last line.
"""

import argparse
import json
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from cli.bench import BENCHMARKS
from experiments.benchmark_process import BenchmarkResult, run_benchmark
from experiments.benchmark_report import write_report
from experiments.machine import describe_machine
from fedtriage.errors import EXIT_FAILED, ConfigError, Interrupted

DEFAULT_OUT = Path("outputs") / "bench"
DEFAULT_TIMEOUT_S = 3600.0


def quick_commands() -> dict[str, tuple[str, ...]]:
    """Each benchmark's quick run, through the `fedtriage` command (which switches telemetry off first)."""
    return {name: (sys.executable, "-m", "cli.app", "bench", name, "--quick") for name in BENCHMARKS}


def main(argv: list[str], commands: Mapping[str, Sequence[str]] | None = None) -> int:
    """`commands`: benchmark name -> command line; the project's benchmarks unless a caller passes its own."""
    commands = dict(quick_commands() if commands is None else commands)
    parser = argparse.ArgumentParser(
        prog="fedtriage bench all", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                        help=f"folder of bench.json and bench.md (default {DEFAULT_OUT})")
    parser.add_argument("--only", nargs="+", metavar="NAME", default=None,
                        help=f"run only these benchmarks, in this order (of {', '.join(commands)})")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                        help=f"stop a benchmark that runs longer and report it failed (default {DEFAULT_TIMEOUT_S:g})")
    args = parser.parse_args(argv)
    chosen = choose(commands, args.only)
    if not args.timeout > 0:
        raise ConfigError("--timeout", f"must be > 0 seconds, got {args.timeout:g}")
    if args.out.exists() and not args.out.is_dir():
        raise ConfigError("--out", f"{args.out} exists and is no folder")

    machine = describe_machine()
    started = time.perf_counter()
    results: list[BenchmarkResult] = []
    try:  # a folder that cannot be written fails now, not after the benchmarks
        json_path, markdown_path = write_report(args.out, machine, results, 0.0)
    except OSError as err:
        raise ConfigError("--out", f"cannot write a report into {args.out}: {err.strerror or err}") from err
    for index, name in enumerate(chosen, start=1):
        print(f"[{index}/{len(chosen)}] {name}: {shlex.join(commands[name])}", flush=True)
        try:
            result = run_benchmark(name, commands[name], args.timeout)
        except KeyboardInterrupt:
            write_report(args.out, machine, results, time.perf_counter() - started)
            raise Interrupted(f"{name} stopped; {json_path} and {markdown_path} hold the benchmarks before it")
        results.append(result)
        write_report(args.out, machine, results, time.perf_counter() - started)
        print(f"[{index}/{len(chosen)}] {name}: " + (f"ok in {result.wall_s:.0f} s" if result.ok else
                                                      f"FAILED ({result.failure}) after {result.wall_s:.0f} s"),
              flush=True)
        for line in result.stderr_tail[-3:]:
            print(f"    {line}", flush=True)
    wall_s = time.perf_counter() - started
    print_summary(results, wall_s, json_path, markdown_path)
    return 0 if all(result.ok for result in results) else EXIT_FAILED


def choose(commands: Mapping[str, Sequence[str]], only: Sequence[str] | None) -> list[str]:
    """The benchmarks to run: all of them, or those `--only` names (each once, in its order)."""
    if only is None:
        return list(commands)
    unknown = [name for name in only if name not in commands]
    if unknown:
        raise ConfigError("--only", f"unknown benchmark {unknown[0]!r}; choose among {', '.join(commands)}")
    return list(dict.fromkeys(only))


def print_summary(results: Sequence[BenchmarkResult], wall_s: float, json_path: Path, markdown_path: Path) -> None:
    """A table of outcomes, then the summary as one JSON object on the very last line."""
    print()
    print(f"{'benchmark':<12}{'outcome':<10}{'wall s':>9}{'peak RSS MB':>13}")
    for result in results:
        rss = "-" if result.peak_rss_mb is None else f"{result.peak_rss_mb:.0f}"
        print(f"{result.name:<12}{'ok' if result.ok else 'FAILED':<10}{result.wall_s:>9.0f}{rss:>13}")
    print(f"total {wall_s:.0f} s; report: {markdown_path} and {json_path}")
    print(json.dumps({
        "ok": all(result.ok for result in results),
        "failed": [result.name for result in results if not result.ok],
        "wall_s": {result.name: result.wall_s for result in results},
        "total_wall_s": round(wall_s, 1),
        "json": str(json_path),
        "markdown": str(markdown_path),
    }), flush=True)


if __name__ == "__main__":
    # Run through the command, which switches telemetry off before Flower, Ray or MLflow load.
    raise SystemExit("run this as: fedtriage bench all [--out DIR] [--only NAME ...]")
