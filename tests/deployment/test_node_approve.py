"""`fedtriage node approve`: a unit approves an app bundle by its file, its hash or as its installed release."""

import json
import warnings
from pathlib import Path

import pytest
from flwr.cli.build import build_fab_from_disk

from cli.app import main
from cli.deployment.app_bundle import describe, release_bundle
from fedtriage import __version__
from fl_client.executor.approved_apps import APPROVALS_FILE, approved_hashes, bundle_hash
from tests.support.marker_app import write_marker_app

pytestmark = pytest.mark.deployment


def _fab(tmp_path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        content = build_fab_from_disk(write_marker_app(tmp_path / "app", tmp_path / "marker"))
    (tmp_path / "marker-app.fab").write_bytes(content)
    return tmp_path / "marker-app.fab"


def test_approving_a_fab_prints_what_it_is_and_keeps_its_hash(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    fab, state = _fab(tmp_path), tmp_path / "kit" / "state"
    sha256 = bundle_hash(fab.read_bytes())
    assert main(["node", "approve", str(fab), "--kit", str(tmp_path / "kit")]) == 0
    out = capsys.readouterr().out
    assert f"approved: marker-app 1.0.0, sha256 {sha256}, 4 files" in out
    assert "  marker_app/client.py" in out and "  pyproject.toml" in out
    assert approved_hashes(state / APPROVALS_FILE) == {sha256}
    assert (state / APPROVALS_FILE).stat().st_mode & 0o777 == 0o600
    assert main(["node", "approve", sha256.upper(), "--kit", str(tmp_path / "kit")]) == 0
    assert "already approved" in capsys.readouterr().out
    assert len(json.loads((state / APPROVALS_FILE).read_text())["apps"]) == 1


def test_the_installed_release_approved_is_the_bundle_flwr_run_submits(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from cli.simulation.engine import project_dir

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        submitted = build_fab_from_disk(project_dir())  # what `flwr run` sends for `fedtriage run start`
    assert main(["node", "approve", "fedtriage", "--kit", str(tmp_path / "kit")]) == 0
    assert f"approved: fedtriage {__version__}, sha256 {bundle_hash(submitted)}" in capsys.readouterr().out
    assert describe(release_bundle()).sha256 == bundle_hash(submitted)


@pytest.mark.parametrize("item", ["not-a-file.fab", "abc123", str(Path(__file__))])
def test_anything_else_is_a_bad_input_and_approves_nothing(item: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["node", "approve", item, "--kit", str(tmp_path / "kit")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "FAB_OR_HASH" in err
    assert not (tmp_path / "kit" / "state" / APPROVALS_FILE).exists()
