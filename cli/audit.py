"""`fedtriage audit verify|show LOG`: a node's audit log, checked or read.

    fedtriage audit verify KITS/unit1/state/audit.jsonl [--anchor HEAD_HASH]
    fedtriage audit show KITS/unit1/state/audit.jsonl [--run RUN_ID] [--round ROUND]

`verify` walks the hash chain, rotated files (audit.jsonl.1, .2, ...) first, and prints
"intact: N entries, last hash H", or the first line that was edited, removed, inserted or
reordered, or a torn last line (a crash mid-write); torn writes the node recorded since are
named. The last line has no line after it to vouch for it: keep the head hash the node logs
(or this command prints) somewhere else, and give it as --anchor later: the chain must still
hold it. Exit code 0 when intact, 1 when not. `show` prints the entries as a table (hashes
shortened), whether or not the chain holds.
"""

import argparse
from pathlib import Path

from cli.arguments import CommandParser
from fedtriage.errors import ConfigError

_COLUMNS = (("seq", 6), ("time", 21), ("event", 12), ("run", 21), ("round", 6), ("type", 24), ("bytes", 9),
            ("sha256", 13), ("decision", 24))


def main(argv: list[str]) -> int:
    parser = CommandParser(
        prog="fedtriage audit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=("verify", "show"))
    parser.add_argument("log", type=Path, help="a node's audit.jsonl (its state folder)")
    parser.add_argument("--anchor", help="verify: a head hash kept earlier, which the chain must still hold")
    parser.add_argument("--run", type=int, help="show: only this run")
    parser.add_argument("--round", help="show: only this round")
    args = parser.parse_args(argv)
    if not args.log.is_file():
        raise ConfigError("LOG", f"{args.log} is not a file: a node's audit log is its state folder's audit.jsonl")
    if args.action == "verify":
        if args.run is not None or args.round is not None:
            raise ConfigError("arguments", "`audit verify` takes --anchor only")
        return _verify(args.log, args.anchor)
    if args.anchor:
        raise ConfigError("--anchor", "`audit show` takes --run and --round only")
    return _show(args.log, args.run, args.round)


def _verify(log: Path, anchor: str | None) -> int:
    from fl_client.executor.audit_log import verify

    verdict = verify(log, anchor)
    for torn in verdict.torn_writes:
        print(f"note: {torn} is a torn write (a crash mid-write), recorded by the node in the line after it")
    if verdict.problem is not None:
        print(f"broken: {verdict.problem}")
        return 1
    if verdict.anchor_found is False:
        print(f"broken: the anchored head {anchor} is not in the chain ({verdict.entries} entries, last hash "
              f"{verdict.head}): the log was rewritten since it was kept")
        return 1
    print(f"intact: {verdict.entries} entries, last hash {verdict.head}"
          + ("; the anchored head is in the chain" if anchor else ""))
    return 0


def _show(log: Path, run: int | None, round_: str | None) -> int:
    from fl_client.executor.audit_log import entries

    print("".join(f"{name:<{width}}" for name, width in _COLUMNS).rstrip())
    for entry in entries(log):
        if (run is not None and entry.get("run") != run) or (round_ is not None and str(entry.get("round")) != round_):
            continue
        outcome = entry.get("decision") or ("error" if entry.get("error") else "")
        if entry.get("rule"):
            outcome = f"{outcome}: {entry['rule']}"
        values = {**entry, "sha256": str(entry.get("sha256", ""))[:12], "decision": outcome}
        print("".join(f"{_cell(values.get(name)):<{width}}" for name, width in _COLUMNS).rstrip())
    return 0


def _cell(value: object) -> str:
    return "" if value is None else str(value)
