"""A benchmark in miniature for `fedtriage bench all`'s tests: a table, then one JSON line of figures.

Run as a script (`python tiny_benchmark.py [--hold-mb N] [--sleep S] [--fail | --killed | --no-json]`), as
the real benchmarks run, in processes of their own; finishes in well under a second. `--hold-mb`
touches that much memory, so a test can tell one benchmark's peak memory from the next's;
`--sleep` makes it hang past a timeout; `--fail` ends as a crashing benchmark does,
`--killed` as one the kernel kills (out of memory), `--no-json` as one that forgets its figures.
"""

import argparse
import json
import os
import signal
import sys
import time

FIGURES = {"widgets_per_s": 1234.5, "ratio": 0.875, "nodes": 3, "by_size": {"10": 1.5, "20": 2.25}}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hold-mb", type=int, default=0)
    parser.add_argument("--fail", action="store_true")
    parser.add_argument("--killed", action="store_true")
    parser.add_argument("--no-json", action="store_true")
    parser.add_argument("--sleep", type=float, default=0.0)
    args = parser.parse_args()
    time.sleep(args.sleep)
    held = b"\x01" * (args.hold_mb * 2**20)  # written, so resident
    print()
    print(f"{'setting':<10}{'widgets/s':>12}{'ratio':>8}")
    print(f"{'tiny':<10}{FIGURES['widgets_per_s']:>12.1f}{FIGURES['ratio']:>8.3f}")
    if args.fail:
        print("loading the widgets", file=sys.stderr)
        print("RuntimeError: the widget factory is closed", file=sys.stderr)
        return 3
    if args.killed:
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    if not args.no_json:
        print(json.dumps({**FIGURES, "held_mb": len(held) // 2**20}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
