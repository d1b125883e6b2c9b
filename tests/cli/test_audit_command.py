"""`fedtriage audit verify|show`: intact or the first broken line, with the exit code to script on."""

from pathlib import Path

import pytest

from cli.app import main
from fl_client.executor.audit_log import AuditLog


def _log(tmp_path: Path) -> tuple[Path, list[str]]:
    log = AuditLog(tmp_path / "audit.jsonl")
    heads = []
    for run, round_ in ((11, "1"), (11, "2"), (12, "1")):
        log.append({"event": "instruction", "run": run, "round": round_, "type": "train", "bytes": 10,
                    "sha256": "ab" * 32, "decision": "refused", "rule": "app-not-approved"})
        heads.append(log.append({"event": "reply", "run": run, "round": round_, "type": "train", "bytes": 0,
                                 "sha256": "cd" * 32, "error": "1: refused: app-not-approved"}))
    return log.path, heads


def test_verify_says_intact_with_the_head_and_checks_a_kept_anchor(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    log, heads = _log(tmp_path)
    assert main(["audit", "verify", str(log)]) == 0
    assert capsys.readouterr().out.strip() == f"intact: 6 entries, last hash {heads[-1]}"
    assert main(["audit", "verify", str(log), "--anchor", heads[0]]) == 0
    assert "the anchored head is in the chain" in capsys.readouterr().out
    assert main(["audit", "verify", str(log), "--anchor", "ef" * 32]) == 1
    assert "is not in the chain" in capsys.readouterr().out


def test_verify_names_the_first_broken_line_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log, _ = _log(tmp_path)
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:3] + lines[4:]))
    assert main(["audit", "verify", str(log)]) == 1
    assert capsys.readouterr().out.strip() == "broken: audit.jsonl:4: 1 line(s) removed before it (seq 3 then 5)"


def test_show_prints_a_table_filtered_by_run_and_round(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log, _ = _log(tmp_path)
    assert main(["audit", "show", str(log), "--run", "11", "--round", "2"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split()[:4] == ["seq", "time", "event", "run"]
    assert len(rows) == 3 and all(" 11 " in row for row in rows[1:])
    assert "refused: app-not-approved" in rows[1] and "abababababab" in rows[1]


def test_a_missing_log_or_a_stray_option_is_a_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", str(tmp_path / "none.jsonl")]) == 2
    assert "LOG" in capsys.readouterr().err
    log, _ = _log(tmp_path)
    assert main(["audit", "show", str(log), "--anchor", "ab"]) == 2
    assert "--anchor" in capsys.readouterr().err
