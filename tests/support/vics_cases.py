"""VICS 2.0 documents written by hand for tests: cases and media entries as forensic tools write them."""

import hashlib
import io
import json
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

CASES = "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/{}/$metadata#Cases"
MEDIA = "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/{}/$metadata#Media"
MD5 = "0123456789ABCDEF0123456789ABCDEF"
SHA1 = "0123456789ABCDEF0123456789ABCDEF01234567"


def shape_png(shape: str, colour: tuple[int, int, int]) -> bytes:
    image = Image.new("RGB", (24, 24), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    if shape == "disc":
        draw.ellipse((4, 4, 20, 20), fill=colour)
    else:
        draw.rectangle((4, 4, 20, 20), fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_file(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def media_entry(relative_path: str | None, content: bytes | None, category: int | None, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"MediaID": extra.pop("media_id", 1)}
    if category is not None:
        entry["Category"] = category
    if content is not None:
        entry["MD5"] = hashlib.md5(content).hexdigest().upper()
        entry["SHA1"] = hashlib.sha1(content).hexdigest().upper()
        entry["MediaSize"] = len(content)
    if relative_path is not None:
        entry["RelativeFilePath"] = relative_path
    entry.update(extra)
    return entry


def case_document(path: Path, media: list[Any], profile: str = "Default") -> Path:
    document = {
        "@odata.context": CASES.format(profile),
        "value": [{"CaseID": "3f2c1b7e-0000-4000-8000-000000000001", "CaseNumber": "T-1", "Media": media}],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document), encoding="utf-8")
    return path
