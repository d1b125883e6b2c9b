"""`fedtriage hash`: the MD5, SHA-1 and PDQ lines of files, as known-material lists hold them.

    fedtriage hash evidence/listed/*.jpg > known.txt
    fedtriage hash /holdings/known-material/ >> known.txt

A unit builds a list from files it holds; `fedtriage classify known_hashes=[known.txt]`
then sets aside exact copies (by MD5 or SHA-1) and flags near copies (by PDQ). Each line
is `<hash>  <path>`: only the first column counts when a list is read, so the list can
be shared without the paths by cutting that column. A PDQ hash is written `pdq:<64 hex>`;
a video gives one per sampled key frame (`video.*` of configs/triage/classify.yaml); a
picture too featureless for its PDQ hash to mean anything (quality below `pdq.min_quality`)
gives a comment line instead. A folder is walked recursively. Output is text only: never
image content.
"""

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from fedtriage.errors import ConfigError

if TYPE_CHECKING:
    from triage.hash_lines import HashLister


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="fedtriage hash", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("paths", nargs="+", metavar="FILE", type=Path, help="files or folders to hash")
    args = parser.parse_args(argv)
    missing = [str(path) for path in args.paths if not path.exists()]
    if missing:
        raise ConfigError("FILE", f"{', '.join(missing)} does not exist")
    from triage.hash_lines import HashLister

    lister = HashLister.from_defaults()
    for path in args.paths:
        for line in _lines(lister, path):
            print(line, flush=False)
    sys.stdout.flush()
    return 0


def _lines(lister: "HashLister", path: Path) -> Iterator[str]:
    from media.walk import SkippedFile, walk_media
    from triage.hash_lines import printable

    if not path.is_dir():
        yield from lister.lines(path, str(path))
        return
    for entry in walk_media(path):
        if isinstance(entry, SkippedFile):
            yield f"# {printable(str(path / entry.path))}: not read ({entry.reason})"
        else:
            yield from lister.lines(path / entry, str(path / entry))
