"""The coordinator's processes and their command lines: the one source for a host and a container.

    SuperLink  on 127.0.0.1:<superlink.port>, TLS (loopback certificate), SuperNode
               authentication, its state in memory or a file (`superlink.database`),
               `--isolation process`: it starts
               no ServerApp itself and its Runtime API answers only holders of the SuperExec
               secret; no dependency is installed at run time.
    SuperExec  runs each submitted ServerApp, authenticated by the kit's SuperExec secret.
    proxy      nginx on the fleet port with the kit's certificate, Fleet routes only.
    mlflow-server  with tracking.server=true (`mlflow_server`): started first, started again if it ends.
"""

from dataclasses import dataclass
from pathlib import Path

from cli.deployment.flower_programs import flower_program
from cli.deployment.loopback_tls import LoopbackTls
from cli.deployment.mlflow_server import read_tracking_uri
from cli.deployment.proxy import ProxyPlan, proxy_command
from cli.deployment.supervisor import ProcessSpec
from fl_protocol.provisioning.layout import SERVER_CERT_FILE, SERVER_KEY_FILE, SUPEREXEC_SECRET_FILE


@dataclass(frozen=True)
class CoordinatorPaths:
    """Where a coordinator keeps what it runs on: its kit (read only) and its state folder."""

    kit: Path
    state: Path

    @property
    def database(self) -> Path:
        return self.state / "superlink.db"

    @property
    def tls(self) -> Path:
        return self.state / "tls"

    @property
    def proxy(self) -> Path:
        return self.state / "proxy"

    @property
    def flower_home(self) -> Path:
        """FLWR_HOME of Flower's CLI and the SuperExec: its config.toml and the apps it unpacks."""
        return self.state / "flwr"

    @property
    def runs(self) -> Path:
        return self.state / "runs"

    @property
    def mlflow_uri(self) -> str:
        """Where the coordinator's runs record, as its last start wrote (tracking.* settings)."""
        return read_tracking_uri(self.state)

    @property
    def superexec_secret(self) -> Path:
        return self.kit / SUPEREXEC_SECRET_FILE


# Flower's name for its state kept in the SuperLink process's own data structures.
_FLOWER_IN_MEMORY = ":flwr-in-memory:"


def superlink_spec(paths: CoordinatorPaths, tls: LoopbackTls, port: int, database: str) -> ProcessSpec:
    """`database`: "memory" (Flower's in-memory state) or "file" (`paths.database`, SQLite)."""
    return ProcessSpec(
        name="superlink",
        command=(
            flower_program("flower-superlink"),
            "--host", "127.0.0.1", "--port", str(port),
            "--ssl-ca-certfile", str(tls.ca_certificate),
            "--ssl-certfile", str(tls.certificate),
            "--ssl-keyfile", str(tls.key),
            "--enable-supernode-auth",
            "--database", str(paths.database) if database == "file" else _FLOWER_IN_MEMORY,
            "--isolation", "process",
            "--superexec-auth-secret-file", str(paths.superexec_secret),
            "--disable-runtime-dependency-installation",
        ),
        env={"FLWR_HOME": str(paths.flower_home)},
        cwd=paths.state,
        ready_line=r"Uvicorn running on https://",
        fatal_lines=((r"address already in use", f"port {port} on 127.0.0.1 is taken (superlink.port)"),),
    )


def superexec_spec(paths: CoordinatorPaths, tls: LoopbackTls, port: int) -> ProcessSpec:
    return ProcessSpec(
        name="superexec",
        command=(
            flower_program("flower-superexec"),
            "--runtime-api-address", f"127.0.0.1:{port}",
            "--root-certificates", str(tls.ca_certificate),
            "--superexec-auth-secret-file", str(paths.superexec_secret),
        ),
        env={"FLWR_HOME": str(paths.flower_home)},
        cwd=paths.state,
        ready_line=r"Starting Flower SuperExec",
    )


def proxy_spec(program: str, plan: ProxyPlan) -> ProcessSpec:
    host = "127.0.0.1" if plan.listen in ("0.0.0.0", "::") else plan.listen
    return ProcessSpec(
        name="proxy",
        command=proxy_command(program, plan),
        cwd=plan.folder,
        ready_port=(host, plan.port),
        fatal_lines=((r"\[emerg\]", "nginx refused its configuration or could not listen (proxy.listen, the kit's "
                                    "fleet_port)"),),
    )


def proxy_plan(paths: CoordinatorPaths, tls: LoopbackTls, listen: str, fleet_port: int, superlink_port: int,
               fleet_routes: list[str], max_body_mb: int) -> ProxyPlan:
    return ProxyPlan(
        folder=paths.proxy, listen=listen, port=fleet_port,
        server_certificate=paths.kit / SERVER_CERT_FILE, server_key=paths.kit / SERVER_KEY_FILE,
        upstream_port=superlink_port, upstream_ca=tls.ca_certificate,
        fleet_routes=tuple(fleet_routes), max_body_mb=max_body_mb,
    )
