"""The coordinator's MLflow: where its runs record, and the `mlflow server` it may run.

`mlflow_server_command` is the one source of that server's command line, for a host
(`fedtriage coordinator start` with tracking.server=true) and for a container image alike.
The tracking URI a coordinator's runs use is written into its state folder when it starts,
so that `fedtriage run start` (another process, later) records where the coordinator says.
"""

import sys
from dataclasses import dataclass
from pathlib import Path

from cli.deployment.settings import CoordinatorTrackingSettings
from cli.deployment.supervisor import ProcessSpec

# In the state folder: the tracking URI of the coordinator's runs, one line.
TRACKING_URI_FILE = "tracking_uri"
_DATABASE = "mlflow.db"
_ARTIFACTS = "mlartifacts"
# Seconds before a server that ended is started again (the runs buffer their tracking meanwhile).
RESTART_AFTER_S = 5.0


@dataclass(frozen=True)
class MlflowServerPlan:
    """One `mlflow server`: its store, its artifact folder, its address."""

    backend_store_uri: str
    artifacts_destination: str
    host: str
    port: int
    workers: int = 1
    allowed_hosts: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        """Where this host reaches it (loopback when it listens on every interface)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"


def embedded_uri(state: Path) -> str:
    """The store a coordinator uses when it runs no server: SQLite in its state folder."""
    return f"sqlite:///{state / _DATABASE}"


def server_plan(tracking: CoordinatorTrackingSettings, state: Path) -> MlflowServerPlan:
    """The server tracking.* asks for; unset store and artifact folder go to the state folder."""
    artifacts = tracking.artifacts_destination or str(state / _ARTIFACTS)
    if "://" not in artifacts:
        artifacts = str(Path(artifacts).expanduser().resolve())
    return MlflowServerPlan(
        backend_store_uri=tracking.backend_store_uri or embedded_uri(state), artifacts_destination=artifacts,
        host=tracking.host, port=tracking.port, workers=tracking.workers, allowed_hosts=tuple(tracking.allowed_hosts),
    )


def tracking_uri(tracking: CoordinatorTrackingSettings, state: Path) -> str:
    """The tracking URI of the coordinator's runs: tracking.uri, its own server, or the embedded store."""
    if tracking.uri:
        return tracking.uri
    if tracking.server:
        return server_plan(tracking, state).url
    return embedded_uri(state)


def write_tracking_uri(state: Path, uri: str) -> None:
    """Record `uri` for the runs started later (0600: a store URI may carry a password)."""
    path = state / TRACKING_URI_FILE
    path.touch(mode=0o600)
    path.write_text(uri + "\n", encoding="utf-8")


def read_tracking_uri(state: Path) -> str:
    """What the coordinator of `state` wrote when it started; the embedded store if nothing."""
    try:
        return (state / TRACKING_URI_FILE).read_text(encoding="utf-8").strip() or embedded_uri(state)
    except FileNotFoundError:
        return embedded_uri(state)


def mlflow_server_command(plan: MlflowServerPlan, program: str = "mlflow") -> tuple[str, ...]:
    """`mlflow server ...`: artifacts proxied by the server (clients need no access to its folder)."""
    command = (
        program, "server",
        "--backend-store-uri", plan.backend_store_uri,
        "--artifacts-destination", plan.artifacts_destination,
        "--host", plan.host, "--port", str(plan.port),
        "--workers", str(plan.workers),
    )  # fmt: skip
    if plan.allowed_hosts:
        command += ("--allowed-hosts", ",".join(plan.allowed_hosts))
    return command


def mlflow_server_spec(plan: MlflowServerPlan, state: Path) -> ProcessSpec:
    """The server as one of the coordinator's processes, MLflow's program from fedtriage's environment."""
    return ProcessSpec(
        name="mlflow-server",
        command=mlflow_server_command(plan, str(Path(sys.executable).with_name("mlflow"))),
        # The server's job runner (for GenAI evaluation jobs) is not used and slows the start.
        env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        cwd=state,
        ready_line=r"Application startup complete|Uvicorn running on|Listening at",
        fatal_lines=(
            (r"address already in use", f"port {plan.port} on {plan.host} is taken (tracking.port)"),
            (r"OperationalError|No module named 'psycopg",
             f"its store {without_password(plan.backend_store_uri)} cannot be used (tracking.backend_store_uri)"),
        ),
        restart_after_s=RESTART_AFTER_S,
    )


def without_password(uri: str) -> str:
    """`postgresql://user:secret@host/db` as `postgresql://user:***@host/db`, for messages and logs."""
    scheme, sep, rest = uri.partition("://")
    credentials, at, location = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return uri
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{location}"
