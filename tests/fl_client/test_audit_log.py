"""A node's audit log: any change to a line is found, a crash mid-write is reported, rotation keeps the chain."""

import json
from pathlib import Path

from fl_client.executor.audit_log import GENESIS, AuditLog, chain_files, entries, line_hash, verify


def _log(tmp_path: Path, count: int = 5, max_bytes: int = 1 << 20) -> tuple[AuditLog, list[str]]:
    log = AuditLog(tmp_path / "audit.jsonl", max_bytes=max_bytes)
    heads = [log.append({"event": "instruction", "run": 7, "round": str(n), "bytes": 100 + n}) for n in range(count)]
    return log, heads


def _rewrite(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(change(lines)))


def test_an_untouched_log_is_intact_and_its_head_is_the_last_lines_hash(tmp_path: Path) -> None:
    log, heads = _log(tmp_path)
    verdict = verify(log.path)
    assert verdict.intact and verdict.entries == 5 and verdict.head == heads[-1] == log.head()[1]
    last = log.path.read_bytes().splitlines()[-1]
    assert line_hash(last) == heads[-1] and json.loads(last)["seq"] == 5
    assert json.loads(log.path.read_bytes().splitlines()[0])["prev"] == GENESIS
    assert log.path.stat().st_mode & 0o777 == 0o600


def test_an_edited_line_is_found_at_the_line_after_it(tmp_path: Path) -> None:
    log, _ = _log(tmp_path)
    _rewrite(log.path, lambda lines: [line.replace(b'"bytes":102', b'"bytes":999') for line in lines])
    verdict = verify(log.path)
    assert not verdict.intact and verdict.problem.startswith("audit.jsonl:4: the line before it was edited")


def test_a_removed_line_is_found(tmp_path: Path) -> None:
    log, _ = _log(tmp_path)
    _rewrite(log.path, lambda lines: lines[:2] + lines[3:])
    assert verify(log.path).problem == "audit.jsonl:3: 1 line(s) removed before it (seq 2 then 4)"


def test_reordered_and_inserted_lines_are_found(tmp_path: Path) -> None:
    log, _ = _log(tmp_path)
    _rewrite(log.path, lambda lines: [lines[0], lines[2], lines[1], *lines[3:]])
    assert verify(log.path).problem == "audit.jsonl:2: reordered (seq 3 before seq 2)"
    _rewrite(log.path, lambda lines: [lines[0], lines[2], lines[1], *lines[3:]])  # back in order
    assert verify(log.path).intact
    _rewrite(log.path, lambda lines: [*lines[:3], lines[1], *lines[3:]])  # a copy of line 2 after line 3
    assert verify(log.path).problem == "audit.jsonl:4: inserted or reordered (seq 2 after seq 3)"


def test_a_line_made_unreadable_is_reported_as_edited(tmp_path: Path) -> None:
    log, _ = _log(tmp_path)
    _rewrite(log.path, lambda lines: [*lines[:2], b"not json\n", *lines[3:]])
    assert verify(log.path).problem == "audit.jsonl:3: not an audit entry (edited)"


def test_a_torn_last_line_is_reported_then_recorded_by_the_next_writer(tmp_path: Path) -> None:
    log, _ = _log(tmp_path)
    with log.path.open("ab") as sink:
        sink.write(b'{"seq":6,"event":"repl')  # a crash mid-write
    verdict = verify(log.path)
    assert not verdict.intact and "torn last line of 22 bytes" in verdict.problem
    log.append({"event": "reply", "run": 7})
    verdict = verify(log.path)
    assert verdict.intact and verdict.torn_writes == ["audit.jsonl:6"] and verdict.entries == 7
    recorded = [entry for entry in entries(log.path) if entry.get("event") == "torn-write"]
    assert recorded and recorded[0]["bytes"] == 22


def test_rotation_keeps_one_chain_across_files(tmp_path: Path) -> None:
    log, heads = _log(tmp_path, count=12, max_bytes=600)
    files = chain_files(log.path)
    assert len(files) > 2 and files[0].name == "audit.jsonl.1"
    verdict = verify(log.path)
    assert verdict.intact and verdict.head == heads[-1]
    assert verdict.entries == 12 + len(files) - 1  # each new file opens with a `rotated` line
    assert [entry["seq"] for entry in entries(log.path)] == list(range(1, verdict.entries + 1))
    _rewrite(files[0], lambda lines: lines[:-1])  # the old file's last line removed
    assert "removed" in verify(log.path).problem


def test_a_kept_head_must_still_be_in_the_chain(tmp_path: Path) -> None:
    log, heads = _log(tmp_path)
    assert verify(log.path, anchor=heads[2]).intact
    assert verify(log.path, anchor=heads[2]).anchor_found
    rewritten = AuditLog(tmp_path / "other" / "audit.jsonl")  # a whole new, self-consistent chain
    for n in range(5):
        rewritten.append({"event": "instruction", "run": 7, "round": str(n), "bytes": 0})
    verdict = verify(rewritten.path, anchor=heads[2])
    assert verdict.problem is None and verdict.anchor_found is False and not verdict.intact


def test_an_instruction_and_its_reply_go_in_together_and_chain_like_single_lines(tmp_path: Path) -> None:
    log, _ = _log(tmp_path, count=2)
    head = log.append({"event": "instruction", "run": 8}, {"event": "reply", "run": 8})
    verdict = verify(log.path)
    assert verdict.intact and verdict.entries == 4 and verdict.head == head == log.head()[1]
