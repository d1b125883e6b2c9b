"""Send the MLflow record a run left on disk: `python -m fl_server.tracking.flush FOLDER [--tracking-uri URI]`.

A run that ended while MLflow did not answer keeps its MLflow record in
`<output_dir>/tracking-buffer/`; its closing lines name that folder and this command. Once
MLflow answers, this sends the records in order (creating the MLflow run if MLflow never saw
it, with the run's own start time, steps and timestamps) and deletes the buffer. FOLDER is
the buffer or the run's output folder (then every buffer in it). Running it again never
sends a record twice: the buffer keeps count of what was sent. `--tracking-uri` sends to
another address of the same store (a server that moved). Exit 0 once nothing waits, 1 while
MLflow still does not answer, 2 for a folder that holds no buffer.
"""

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from fedtriage.environment import disable_phone_home
from fl_server.tracking.mlflow_writes import MlflowTarget, shorten_http_patience
from fl_server.tracking.outage_guard import OutageGuard
from fl_server.tracking.tracking_buffer import BUFFER_FOLDER, TrackingBuffer, is_buffer
from fl_server.tracking.write_journal import WriteJournal


@dataclass(frozen=True)
class FlushResult:
    """What one flush did: records sent, records still waiting, and the MLflow run they went to."""

    folder: Path
    run_id: str | None
    sent: int
    waiting: int
    # Why MLflow has no run for them, if it refused to create one.
    off: str | None = None


def flush_tracking_buffer(folder: Path, tracking_uri: str | None = None) -> FlushResult:
    """Send what waits in the buffer `folder` to its MLflow store (or `tracking_uri`); ValueError: no buffer."""
    disable_phone_home()
    shorten_http_patience()
    buffer = TrackingBuffer.open(folder)
    if tracking_uri:
        buffer.state.tracking_uri = tracking_uri
    waiting = len(buffer)
    journal = WriteJournal(MlflowTarget(buffer.state), folder, OutageGuard(buffer.state.tracking_uri), buffer)
    journal.retry()
    return FlushResult(folder, buffer.state.run_id, waiting - journal.buffered, journal.buffered, journal.off)


def buffer_folders(path: Path) -> list[Path]:
    """`path` itself if it is a buffer, else the buffers in it (a run's output folder), oldest name first."""
    if is_buffer(path):
        return [path]
    return sorted((folder for folder in path.glob(f"{BUFFER_FOLDER}*") if folder.is_dir()),
                  key=lambda folder: (len(folder.name), folder.name))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m fl_server.tracking.flush", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a tracking buffer, or a run's output folder")
    parser.add_argument("--tracking-uri", help="send to this MLflow address instead of the one the run used")
    args = parser.parse_args(argv)
    folders = buffer_folders(args.folder)
    if not folders:
        print(f"error: {args.folder} holds no tracking buffer (nothing waits to be sent)", file=sys.stderr)
        return 2
    waiting = 0
    for folder in folders:
        try:
            result = flush_tracking_buffer(folder, args.tracking_uri)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        waiting += result.waiting
        if result.off is not None:
            print(f"{folder}: nothing sent: {result.off}")
        elif result.waiting:
            print(f"{folder}: MLflow does not answer; {result.sent} records sent, {result.waiting} still wait")
        else:
            print(f"{folder}: {result.sent} records sent to MLflow run {result.run_id}")
    return 1 if waiting else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
