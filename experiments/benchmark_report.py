"""The report of `fedtriage bench all`: `bench.json` for programs, `bench.md` for people.

Both carry the machine the benchmarks ran on and, per benchmark, its command, exit code,
wall time, peak memory and figures exactly as it printed them; the Markdown adds each
benchmark's own table verbatim, and a failed benchmark's reason and last stderr lines.
Written again after every benchmark, so an interrupted run keeps what it finished.
"""

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from experiments.benchmark_process import BenchmarkResult

JSON_NAME = "bench.json"
MARKDOWN_NAME = "bench.md"

_MACHINE_ROWS = (
    ("CPU", "cpu_model"),
    ("CPUs (usable)", "cpus"),
    ("memory GiB", "memory_gib"),
    ("load average at start (1, 5, 15 min)", "load_average"),
    ("OS", "os"),
    ("distribution", "os_release"),
    ("Python", "python"),
    ("git commit", "git"),
    ("date (UTC)", "date"),
)


def report_document(
    machine: Mapping[str, object], results: Sequence[BenchmarkResult], wall_s: float
) -> dict[str, object]:
    """The content of `bench.json`."""
    return {
        "ok": all(result.ok for result in results),
        "wall_s": round(wall_s, 1),
        "machine": dict(machine),
        "benchmarks": {
            result.name: {
                "ok": result.ok,
                "command": result.command,
                "exit_code": result.exit_code,
                "wall_s": result.wall_s,
                "peak_rss_mb": result.peak_rss_mb,
                "figures": result.figures,
                "failure": result.failure,
                "stderr_tail": result.stderr_tail,
            }
            for result in results
        },
    }


def write_report(
    out_dir: Path, machine: Mapping[str, object], results: Sequence[BenchmarkResult], wall_s: float
) -> tuple[Path, Path]:
    """Write `bench.json` and `bench.md` into `out_dir`; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, markdown_path = out_dir / JSON_NAME, out_dir / MARKDOWN_NAME
    json_path.write_text(json.dumps(report_document(machine, results, wall_s), indent=2) + "\n", encoding="utf-8")
    markdown_path.write_text(markdown(machine, results, wall_s), encoding="utf-8")
    return json_path, markdown_path


def markdown(machine: Mapping[str, object], results: Sequence[BenchmarkResult], wall_s: float) -> str:
    failed = [result.name for result in results if not result.ok]
    lines = [
        "# Benchmarks",
        "",
        "`fedtriage bench all`: every benchmark in its quick mode, each in a process of its own; "
        f"{len(results)} run in {wall_s:.0f} s, "
        + (f"**{len(failed)} failed** ({', '.join(failed)})." if failed else "all succeeded."),
        "",
        "## Machine",
        "",
        *_table(("", ""), [(label, _machine_value(machine, key)) for label, key in _MACHINE_ROWS]),
        *_table(("package", "version"), [(name, version) for name, version in _packages(machine)], lead=""),
        "",
        "## Summary",
        "",
        *_table(
            ("benchmark", "outcome", "exit code", "wall s", "peak RSS MB"),
            [(r.name, "ok" if r.ok else f"failed: {r.failure}", r.exit_code, r.wall_s, r.peak_rss_mb) for r in results],
        ),
    ]
    for result in results:
        outcome = "ok" if result.ok else f"**failed**: {result.failure}"
        lines += ["", f"## {result.name}", "", f"`{result.command}`: {outcome}"]
        if result.figures is not None:
            lines += ["", *_table(("figure", "value"), list(flat_figures(result.figures)))]
        if result.stderr_tail:
            lines += ["", "Last lines of its stderr:", "", *_fenced("\n".join(result.stderr_tail))]
        if result.output:
            lines += ["", "What it printed:", "", *_fenced(result.output)]
    return "\n".join(lines) + "\n"


def flat_figures(figures: Mapping[str, object], prefix: str = "") -> Iterator[tuple[str, object]]:
    """Figures as (name, value) rows; a nested object's keys join its name with dots (`inputs_per_s_by_size.1500`)."""
    for key, value in figures.items():
        if isinstance(value, Mapping):
            yield from flat_figures(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _machine_value(machine: Mapping[str, object], key: str) -> object:
    if key == "cpus":
        return f"{machine.get('cpu_count')} ({machine.get('cpus_usable')})"
    if key == "git":
        commit = machine.get("git_commit")
        return "not a git checkout" if commit is None else f"{commit}" + (" (with local changes)"
                                                                           if machine.get("git_dirty") else "")
    if key == "load_average" and isinstance(machine.get(key), list):
        return ", ".join(str(load) for load in machine[key])  # type: ignore[union-attr]
    return machine.get(key)


def _packages(machine: Mapping[str, object]) -> list[tuple[str, object]]:
    packages = machine.get("packages")
    return list(packages.items()) if isinstance(packages, Mapping) else []


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], lead: str | None = None) -> list[str]:
    """A Markdown table; values as JSON writes them (floats unrounded), text as it is."""
    return [
        *([] if lead is None else [lead]),
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(_cell(value) for value in row) + " |" for row in rows),
    ]


def _cell(value: object) -> str:
    text = value if isinstance(value, str) else "" if value is None else json.dumps(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _fenced(text: str) -> list[str]:
    """`text` verbatim in a code block whose fence is longer than any run of backticks inside it."""
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    return [f"{fence}text", text, fence]
