"""`fedtriage bench all`: each benchmark in a process of its own, one JSON and one Markdown report of them all.

The report tests run real processes of a tiny benchmark (tests/support/tiny_benchmark.py), passed
to the runner as its list of benchmarks; the real benchmarks take minutes: the README's
`fedtriage bench all --only classify` (tests/cli/test_readme.py) runs the fastest through the command.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from experiments.bench_all import main
from tests.support.project import FEDTRIAGE, PROJECT_DIR

TINY = [sys.executable, str(PROJECT_DIR / "tests" / "support" / "tiny_benchmark.py")]
MACHINE_FIELDS = ("cpu_model", "cpu_count", "memory_gib", "os", "python", "packages", "git_commit", "date")


def fedtriage(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "FLWR_"))}
    return subprocess.run([FEDTRIAGE, *args], env=env, capture_output=True, text=True, timeout=timeout)


def printed_figures(argv: list[str]) -> dict[str, object]:
    """What a benchmark prints as its last line, run on its own."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def last_line_json(text: str) -> dict[str, object]:
    return json.loads(text.strip().splitlines()[-1])


def test_the_report_holds_each_benchmarks_figures_exactly_as_it_printed_them(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["--out", str(tmp_path)], {"tiny": TINY, "held": [*TINY, "--hold-mb", "1"]}) == 0

    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["ok"] is True
    assert list(report["benchmarks"]) == ["tiny", "held"]
    tiny = report["benchmarks"]["tiny"]
    assert tiny["figures"] == printed_figures(TINY)
    assert report["benchmarks"]["held"]["figures"] == printed_figures([*TINY, "--hold-mb", "1"])
    assert tiny["ok"] is True and tiny["exit_code"] == 0 and tiny["failure"] is None
    assert tiny["command"].endswith("tiny_benchmark.py")
    assert 0 < tiny["wall_s"] < 60
    summary = last_line_json(capsys.readouterr().out)
    assert summary["ok"] is True and summary["failed"] == []
    assert set(summary["wall_s"]) == {"tiny", "held"}
    assert summary["json"] == str(tmp_path / "bench.json")


def test_the_report_names_the_machine_the_benchmarks_ran_on(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path)], {"tiny": TINY}) == 0

    machine = json.loads((tmp_path / "bench.json").read_text())["machine"]
    assert set(MACHINE_FIELDS) <= set(machine)
    assert machine["cpu_model"] and machine["cpu_count"] >= 1 and machine["memory_gib"] > 0
    assert machine["python"].endswith(".".join(map(str, sys.version_info[:3])))
    assert machine["packages"]["torch"] and machine["packages"]["flwr"] == "1.42.0"
    if (PROJECT_DIR / ".git").exists():
        head = subprocess.run(["git", "-C", str(PROJECT_DIR), "rev-parse", "HEAD"], capture_output=True, text=True)
        assert machine["git_commit"] == head.stdout.strip()
    else:
        assert machine["git_commit"] is None
    markdown = (tmp_path / "bench.md").read_text()
    assert f"| CPU | {machine['cpu_model']} |" in markdown
    assert f"| flwr | {machine['packages']['flwr']} |" in markdown


def test_the_markdown_has_each_benchmarks_figures_and_its_printed_table_verbatim(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path)], {"tiny": TINY}) == 0

    markdown = (tmp_path / "bench.md").read_text()
    section = markdown[markdown.index("## tiny"):]
    for name, value in [("widgets_per_s", "1234.5"), ("ratio", "0.875"), ("nodes", "3"), ("by_size.10", "1.5")]:
        assert f"| {name} | {value} |" in section
    printed = subprocess.run(TINY, capture_output=True, text=True, check=True).stdout
    table = "\n".join(printed.strip("\n").splitlines()[:-1])
    assert f"```text\n{table}\n```" in section
    assert "| tiny | ok | 0 |" in markdown  # the summary row


def test_a_failing_benchmark_is_reported_with_its_stderr_and_the_others_still_run(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    benchmarks = {"broken": [*TINY, "--fail"], "tiny": TINY}

    assert main(["--out", str(tmp_path)], benchmarks) == 1

    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["ok"] is False
    broken, tiny = report["benchmarks"]["broken"], report["benchmarks"]["tiny"]
    assert broken["ok"] is False and broken["exit_code"] == 3 and broken["failure"] == "exit code 3"
    assert broken["stderr_tail"][-1] == "RuntimeError: the widget factory is closed"
    assert tiny["ok"] is True and tiny["figures"] == printed_figures(TINY)
    markdown = (tmp_path / "bench.md").read_text()
    assert "**1 failed** (broken)" in markdown
    assert "| broken | failed: exit code 3 | 3 |" in markdown
    assert "RuntimeError: the widget factory is closed" in markdown[markdown.index("## broken"):]
    out = capsys.readouterr().out
    assert re.search(r"broken: FAILED \(exit code 3\)", out)
    assert last_line_json(out)["failed"] == ["broken"]


def test_a_benchmark_that_prints_no_json_last_line_has_failed(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path)], {"quiet": [*TINY, "--no-json"]}) == 1

    quiet = json.loads((tmp_path / "bench.json").read_text())["benchmarks"]["quiet"]
    assert quiet["exit_code"] == 0 and quiet["ok"] is False and quiet["figures"] is None
    assert "no JSON" in quiet["failure"]
    assert "tiny" in (tmp_path / "bench.md").read_text()  # its table is still shown


def test_a_benchmark_killed_by_a_signal_is_reported_with_it(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path)], {"killed": [*TINY, "--killed"]}) == 1

    killed = json.loads((tmp_path / "bench.json").read_text())["benchmarks"]["killed"]
    assert killed["exit_code"] == -9 and killed["failure"] == "killed by signal 9 (Killed)"


def test_a_benchmark_past_the_timeout_is_stopped_and_reported_failed(tmp_path: Path) -> None:
    benchmarks = {"hung": [*TINY, "--sleep", "120"], "tiny": TINY}

    assert main(["--out", str(tmp_path), "--timeout", "2"], benchmarks) == 1

    report = json.loads((tmp_path / "bench.json").read_text())["benchmarks"]
    assert report["hung"]["failure"] == "timed out after 2 s"
    assert report["hung"]["wall_s"] < 60
    assert report["tiny"]["ok"] is True


def test_ctrl_c_stops_the_running_benchmark_and_keeps_the_report_of_those_before(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from cli.exit import report\n"
        "from experiments.bench_all import main\n"
        "from fedtriage.errors import FedtriageError\n"
        "try:\n"
        f"    main(['--out', {str(tmp_path)!r}], {{'tiny': {TINY!r}, 'hung': {[*TINY, '--sleep', '300']!r}}})\n"
        "except FedtriageError as err:\n"
        "    sys.exit(report(err))\n"
    )
    runner = subprocess.Popen([sys.executable, "-c", script], cwd=PROJECT_DIR, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    assert runner.stdout is not None
    for line in runner.stdout:  # wait until the hung benchmark has started
        if line.startswith("[2/2] hung:"):
            break
    time.sleep(1)
    started = time.monotonic()
    runner.send_signal(signal.SIGINT)
    _, stderr = runner.communicate(timeout=60)

    assert runner.returncode == 130
    assert time.monotonic() - started < 30  # the sleeping benchmark was stopped, not waited for
    assert stderr.strip().startswith("fedtriage: interrupted: hung stopped;")
    report = json.loads((tmp_path / "bench.json").read_text())
    assert list(report["benchmarks"]) == ["tiny"] and report["benchmarks"]["tiny"]["ok"] is True


def test_each_benchmarks_peak_memory_is_its_own(tmp_path: Path) -> None:
    held_here = bytearray(400 << 20)  # a large parent (a test session) must not count in a benchmark's peak
    held_here[::4096] = b"\x01" * len(held_here[::4096])
    assert main(["--out", str(tmp_path)], {"big": [*TINY, "--hold-mb", "300"], "small": TINY}) == 0
    del held_here

    report = json.loads((tmp_path / "bench.json").read_text())["benchmarks"]
    assert report["big"]["peak_rss_mb"] >= 300
    assert report["small"]["peak_rss_mb"] < 150


def test_only_runs_the_named_benchmarks_in_the_order_given(tmp_path: Path) -> None:
    benchmarks = {"first": TINY, "second": TINY, "broken": [*TINY, "--fail"]}

    assert main(["--out", str(tmp_path), "--only", "second", "first"], benchmarks) == 0

    assert list(json.loads((tmp_path / "bench.json").read_text())["benchmarks"]) == ["second", "first"]


def test_an_unknown_only_name_is_exit_2_with_one_line_naming_the_option(tmp_path: Path) -> None:
    completed = fedtriage("bench", "all", "--out", str(tmp_path / "report"), "--only", "accuracy", "speed")

    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [
        "fedtriage: error: --only: unknown benchmark 'speed'; choose among accuracy, secure, classify, deploy"
    ]
    assert not (tmp_path / "report").exists()  # nothing ran


def test_an_out_folder_that_cannot_be_written_is_exit_2_before_any_benchmark_runs(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file, not a folder")

    completed = fedtriage("bench", "all", "--out", str(tmp_path / "taken" / "report"), "--only", "accuracy")

    assert completed.returncode == 2
    assert completed.stderr.strip().startswith("fedtriage: error: --out: cannot write a report into")
    assert len(completed.stderr.strip().splitlines()) == 1
    assert "[1/1]" not in completed.stdout


def test_bench_all_has_help_naming_its_options() -> None:
    completed = fedtriage("bench", "all", "--help")

    assert completed.returncode == 0, completed.stderr
    assert "fedtriage bench all" in completed.stdout
    for option in ("--out", "--only", "--timeout"):
        assert option in completed.stdout
    assert "fedtriage bench all" in fedtriage("bench", "--help").stdout
