"""Where the project's files are, for tests that run its commands or read its schemas."""

import json
import sys
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parents[2]
VICS_EXPORT_SCHEMA: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vics_export_schema.json").read_text(encoding="utf-8")
)
# The installed console script, as a user runs it.
FEDTRIAGE = str(Path(sys.executable).with_name("fedtriage"))
