"""The run's history as a local JSON file: the record that survives a tracking outage."""

import json
import logging
import os
from dataclasses import asdict, fields
from pathlib import Path

from fl_server.round_record import RoundRecord

logger = logging.getLogger("fedtriage.tracking")

# The file's name in a run's output folder (and the artifact's name in MLflow).
HISTORY_FILE = "history.json"

_FIELDS = frozenset(field.name for field in fields(RoundRecord))


def history_to_json(history: list[RoundRecord]) -> str:
    """JSON text of `history` (NaN stays NaN: a diverged loss is a result, not an error)."""
    return json.dumps([asdict(record) for record in history], indent=2)


def write_history(history: list[RoundRecord], path: Path) -> None:
    """Write `history` to `path` atomically, so a crash never leaves half a record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(history_to_json(history), encoding="utf-8")
    os.replace(partial, path)


def read_history(path: Path) -> list[RoundRecord]:
    """Read a history written by `write_history`; fields this version lacks are ignored."""
    items = json.loads(path.read_text(encoding="utf-8"))
    return [RoundRecord(**{k: v for k, v in item.items() if k in _FIELDS}) for item in items]


def write_local_history(history: list[RoundRecord], output_dir: Path) -> Path:
    """Write `<output_dir>/history.json` and return its path, tracking on or off.

    A failure is warned about, not raised: the run is over and must still be closed.
    """
    path = output_dir / HISTORY_FILE
    try:
        write_history(history, path)
    except OSError as err:
        logger.warning("could not write the local run history %s: %s", path, err)
    return path
