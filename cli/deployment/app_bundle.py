"""App bundles (FABs) as a unit sees them before approving one: what it is, what it holds, its hash."""

import io
import tomllib
import warnings
import zipfile
from datetime import datetime, timezone
from pathlib import Path

from fedtriage.errors import ConfigError
from fl_client.executor.approved_apps import Approval, bundle_hash, is_sha256

# `fedtriage node approve fedtriage`: the bundle of the release installed here.
INSTALLED_RELEASE = "fedtriage"


def release_bundle() -> bytes:
    """The bundle `flwr run` makes of the fedtriage release installed on this host (same files, same bytes)."""
    from flwr.cli.build import build_fab_from_disk

    from cli.simulation.engine import project_dir

    with warnings.catch_warnings():  # pathspec's deprecation notes, from inside Flower's build
        warnings.simplefilter("ignore", DeprecationWarning)
        return build_fab_from_disk(project_dir())


def describe(content: bytes, setting: str = "FAB_OR_HASH") -> Approval:
    """Name, version, file count and hash of a bundle; a file that is not one is named."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as bundle:
            project = tomllib.loads(bundle.read("pyproject.toml").decode())["project"]
            files = [name for name in bundle.namelist() if not name.startswith(".info/")]
    except (zipfile.BadZipFile, KeyError, tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(setting, f"not a Flower app bundle (a .fab from `flwr build`): {err}") from err
    return Approval(sha256=bundle_hash(content), name=str(project.get("name", "")),
                    version=str(project.get("version", "")), files=len(files), approved_at=_now())


def approval_for(item: str) -> tuple[Approval, list[str]]:
    """What `fedtriage node approve ITEM` approves: a .fab file, a SHA-256, or `fedtriage`; and its files."""
    if item == INSTALLED_RELEASE:
        content = release_bundle()
    elif is_sha256(item.lower()):
        return Approval(sha256=item.lower(), approved_at=_now()), []
    else:
        path = Path(item)
        if not path.is_file():
            raise ConfigError("FAB_OR_HASH", f"{item} is neither a .fab file, a SHA-256 (64 hex digits) nor "
                              f"{INSTALLED_RELEASE!r} (the release installed here)")
        content = path.read_bytes()
    approval = describe(content)
    with zipfile.ZipFile(io.BytesIO(content)) as bundle:
        files = [name for name in bundle.namelist() if not name.startswith(".info/")]
    return approval, files


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
