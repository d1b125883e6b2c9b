"""A real `mlflow server` process for tests, from the coordinator's own command line.

The command comes from `cli.deployment.mlflow_server` (what `fedtriage coordinator start`
and a container run), so tests exercise it. A server can be stopped and started again on
the same port with the same store: an outage and its end. Every stop is by process id
(the server's own process group: `mlflow server` starts uvicorn under it).
"""

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cli.deployment.mlflow_server import MlflowServerPlan, mlflow_server_spec

START_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_healthy(url: str, timeout_s: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until the server at `url` answers /health (AssertionError: `process` ended, or time ran out)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"mlflow server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"mlflow server at {url} not healthy after {timeout_s} s")


class MlflowServer:
    """One `mlflow server` on loopback; `start` and `stop` as often as a test needs."""

    def __init__(self, folder: Path, backend_store_uri: str | None = None, port: int | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.plan = MlflowServerPlan(
            backend_store_uri=backend_store_uri or f"sqlite:///{folder / 'mlflow.db'}",
            artifacts_destination=str(folder / "artifacts"), host="127.0.0.1", port=port or free_port(),
        )
        self.log = folder / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.plan.url

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start it and wait until /health answers (a failed start fails the test with its log)."""
        spec = mlflow_server_spec(self.plan, self.folder)
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                list(spec.command), stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **spec.env}, cwd=spec.cwd, start_new_session=True,
            )
        process = self.process
        try:
            wait_healthy(self.url, START_TIMEOUT_S, process)
        except AssertionError as err:
            self.stop(signal.SIGKILL)
            raise AssertionError(f"{err}:\n{self._tail()}") from None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Signal its process group by the server's id, reap it, and kill whatever outlived it."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            try:
                os.killpg(process.pid, sig)
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=20)
            except ProcessLookupError:
                pass
        try:  # uvicorn outliving a hard-killed parent
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process = None

    def _tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@contextmanager
def mlflow_server(folder: Path, backend_store_uri: str | None = None) -> Iterator[MlflowServer]:
    """A started server on a free loopback port; always stopped on the way out."""
    server = MlflowServer(folder, backend_store_uri)
    try:
        server.start()
        yield server
    finally:
        server.stop()
