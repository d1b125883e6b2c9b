"""A throwaway PostgreSQL cluster from the distribution's packages (apt-get install postgresql).

Its own data folder, socket folder and loopback port; trust authentication (loopback only,
for tests); a database `mlflow` owned by the superuser `mlflow`. PostgreSQL refuses to run
as root, so under root the cluster belongs to the `postgres` user the package creates.
Stopped by the postmaster's process id (from its pid file), never by name.
"""

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cli.deployment.supervisor import start_time
from tests.support.mlflow_server import free_port

_SUPERUSER = "mlflow"


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin folder, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda path: int(path.split("/")[4]))
    return Path(found[-1]).parent if found else None


@contextmanager
def postgres_cluster() -> Iterator[str]:
    """A running cluster; yields its `postgresql://mlflow@127.0.0.1:PORT/mlflow` URI. Skips the
    test with the reason when PostgreSQL or its Python driver is missing."""
    binaries = postgres_bin()
    if binaries is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    psycopg = pytest.importorskip("psycopg", reason="pip install 'fedtriage[server]' for PostgreSQL's driver")
    owner = _owner()
    # Not under pytest's tmp_path: its folders are private to root, and the cluster's owner must enter it.
    root = Path(tempfile.mkdtemp(prefix="fedtriage-pg-"))
    os.chmod(root, 0o755)
    data, sockets, port = root / "data", root / "sockets", free_port()
    sockets.mkdir()
    if owner is not None:
        os.chown(root, owner.pw_uid, owner.pw_gid)
        os.chown(sockets, owner.pw_uid, owner.pw_gid)
    postmaster: int | None = None
    try:
        _as_owner(owner, [str(binaries / "initdb"), "-D", str(data), "-U", _SUPERUSER, "--auth=trust",
                          "-E", "UTF8", "--no-sync"])
        _as_owner(owner, [str(binaries / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w",
                          "-o", f"-k {sockets} -p {port} -c listen_addresses=127.0.0.1", "start"])
        postmaster = int((data / "postmaster.pid").read_text().splitlines()[0])
        with psycopg.connect(host="127.0.0.1", port=port, user=_SUPERUSER, dbname="postgres",
                             autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {_SUPERUSER}")
        yield f"postgresql://{_SUPERUSER}@127.0.0.1:{port}/{_SUPERUSER}"
    finally:
        if postmaster is not None:
            _stop(postmaster)
        shutil.rmtree(root, ignore_errors=True)


def _owner() -> pwd.struct_passwd | None:
    """The user the cluster runs as: None for this user, `postgres` under root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("PostgreSQL refuses root and there is no `postgres` user to run it as")


def _as_owner(owner: pwd.struct_passwd | None, command: list[str]) -> None:
    if owner is not None:
        command = ["runuser", "-u", owner.pw_name, "--", *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")


def _stop(pid: int, timeout_s: float = 30) -> None:
    """PostgreSQL's fast shutdown (SIGINT to the postmaster), SIGKILL if it lingers."""
    for sig in (signal.SIGINT, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if start_time(pid) is None:  # gone, or a zombie nobody reaped yet
                return
            time.sleep(0.1)
