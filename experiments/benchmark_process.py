"""One benchmark run in a process of its own: its exit code, wall time, peak memory, table and figures.

A process per benchmark keeps one benchmark's threads, caches and Ray workers from slowing
the next, and makes its peak resident memory its own (`experiments.peak_memory` launches it
and reports the kernel's figure). Every benchmark prints a table, then one JSON object of its figures as
its very last line; a run without that line, or with a non-zero exit, has failed, and the
last lines of its stderr say why. The process gets a session of its own, so that a timeout
or Ctrl-C ends everything it started (a coordinator, nodes, Ray) and nothing else.
"""

import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO

STDERR_TAIL_LINES = 20
_GRACE_S = 30.0  # after SIGINT/SIGTERM, before SIGKILL


@dataclass
class BenchmarkResult:
    name: str
    command: str
    exit_code: int | None
    wall_s: float
    # The benchmark process's peak resident memory (and that of any child it waited for).
    peak_rss_mb: float | None
    figures: dict[str, object] | None
    # What it printed before its JSON line: its human-readable table.
    output: str
    failure: str | None = None
    stderr_tail: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failure is None


def run_benchmark(name: str, argv: Sequence[str], timeout_s: float) -> BenchmarkResult:
    """Run `argv` to its end (or `timeout_s`); Ctrl-C stops it too, then propagates."""
    # Files, not pipes: a benchmark's output is never blocked on us, however much it prints.
    with _capture() as out, _capture() as err, tempfile.TemporaryDirectory() as scratch:
        peak_file = os.path.join(scratch, "peak-kib")
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "experiments.peak_memory", peak_file, *argv],
            stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True, start_new_session=True,
        )
        try:
            exit_code, timed_out = _reap(process, timeout_s)
        except KeyboardInterrupt:
            _stop(process, signal.SIGINT)
            raise
        wall_s = time.perf_counter() - started
        peak_kb = _peak_kib(peak_file)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    output, figures = split_figures(stdout)
    failure = None
    if timed_out:
        failure = f"timed out after {timeout_s:g} s"
    elif exit_code is not None and exit_code < 0:
        failure = f"killed by signal {-exit_code} ({signal.strsignal(-exit_code)})"  # 9: out of memory, say
    elif exit_code != 0:
        failure = f"exit code {exit_code}"
    elif figures is None:
        failure = "its last line is no JSON object of figures"
    return BenchmarkResult(
        name=name,
        command=shlex.join(argv),
        exit_code=exit_code,
        wall_s=round(wall_s, 1),
        peak_rss_mb=None if peak_kb is None else round(peak_kb / 1024, 1),
        figures=figures,
        output=output,
        failure=failure,
        stderr_tail=stderr.rstrip().splitlines()[-STDERR_TAIL_LINES:] if failure else [],
    )


def _capture() -> IO[str]:
    return tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")


def split_figures(stdout: str) -> tuple[str, dict[str, object] | None]:
    """A benchmark's printed table, and the JSON object of its very last line (None if that is none)."""
    lines = stdout.rstrip().splitlines()
    if lines:
        try:
            figures = json.loads(lines[-1])
        except ValueError:
            figures = None
        if isinstance(figures, dict):
            return "\n".join(lines[:-1]).strip("\n"), figures
    return stdout.strip("\n"), None


def _reap(process: subprocess.Popen[str], timeout_s: float) -> tuple[int | None, bool]:
    """Wait for `process` until `timeout_s`; (exit code, whether it timed out)."""
    try:
        return process.wait(timeout_s), False
    except subprocess.TimeoutExpired:
        _stop(process, signal.SIGTERM)
        return process.returncode, True


def _peak_kib(path: str) -> float | None:
    """The peak the launcher (`experiments.peak_memory`) wrote, in KiB; None if it wrote none."""
    try:
        with open(path, encoding="ascii") as stream:
            kib = float(stream.read())
    except (OSError, ValueError):
        return None
    return kib / 1024 if sys.platform == "darwin" else kib  # ru_maxrss: bytes on macOS


def _stop(process: subprocess.Popen[str], first: signal.Signals) -> None:
    """Signal the benchmark's whole session, give it time to clean up, then kill what is left."""
    for sig, grace in ((first, _GRACE_S), (signal.SIGKILL, _GRACE_S)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue
