"""The comparison table as CSV: full precision, missing cells empty, one row per compared run."""

import csv
from collections.abc import Sequence
from pathlib import Path

from comparison.run_figures import RunFigures
from comparison.table import Column, rows


def write_csv(path: Path, table_columns: Sequence[Column], runs: Sequence[RunFigures]) -> Path:
    """Write the table to `path`, headed by the columns' CSV names; return `path`."""
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow([column.name for column in table_columns])
        for row in rows(table_columns, runs):
            writer.writerow(["" if cell is None else repr(cell) if isinstance(cell, float) else cell for cell in row])
    return path
