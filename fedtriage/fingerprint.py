"""Which code is running: fedtriage's version and a SHA-256 over the sources of its packages.

A trained model records it, so a unit can tell whether two models came from the same code,
and a coordinator can check it against a release. Computed from the files themselves, it
covers local changes that a version number would not.
"""

import functools
import hashlib
import importlib.util
from pathlib import Path

from fedtriage import __version__

# The packages whose code trains, protects, aggregates and scores (not tests or benchmarks).
_PRODUCT_PACKAGES = (
    "fedtriage", "cli", "configs", "media", "models", "fl_protocol", "fl_client", "fl_server", "triage"
)
_SOURCE_SUFFIXES = (".py", ".yaml")


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """`fedtriage <version> sha256:<hex>` over every source file of the product packages."""
    digest = hashlib.sha256()
    for package in _PRODUCT_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        root = Path(next(iter(spec.submodule_search_locations)))
        for path in sorted(p for p in root.rglob("*") if p.suffix in _SOURCE_SUFFIXES and p.is_file()):
            digest.update(f"{package}/{path.relative_to(root).as_posix()}\0".encode())
            digest.update(path.read_bytes())
    return f"fedtriage {__version__} sha256:{digest.hexdigest()}"
