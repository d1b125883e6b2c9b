"""The coordinator's and a node's process settings, read from `configs/deployment/`."""

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass

from configs import CONFIG_DIR
from configs.compose import compose_config, require, typed_settings

DEPLOYMENT_CONFIG_DIR = CONFIG_DIR / "deployment"


# Where the SuperLink keeps its state (`superlink.database`).
SUPERLINK_DATABASES = ("memory", "file")


@dataclass
class SuperLinkSettings:
    port: int
    database: str


@dataclass
class ProxySettings:
    program: str
    listen: str
    max_body_mb: int
    fleet_routes: list[str]


@dataclass
class CoordinatorTrackingSettings:
    """Where the runs a coordinator starts record to, and the `mlflow server` it may run."""

    uri: str | None
    server: bool
    backend_store_uri: str | None
    artifacts_destination: str | None
    host: str
    port: int
    workers: int
    allowed_hosts: list[str]


@dataclass
class CoordinatorSettings:
    superlink: SuperLinkSettings
    proxy: ProxySettings
    tracking: CoordinatorTrackingSettings
    ready_timeout_s: float
    stop_timeout_s: float


@dataclass
class SuperNodeSettings:
    runtime_port: int
    max_retries: int | None
    idle_poll_s: float
    busy_poll_s: float
    busy_period_s: float
    object_retry_s: float


@dataclass
class AuditSettings:
    max_bytes: int


@dataclass
class NodeProcessSettings:
    supernode: SuperNodeSettings
    audit: AuditSettings
    ready_timeout_s: float
    stop_timeout_s: float


def coordinator_settings(overrides: Sequence[str] = ()) -> CoordinatorSettings:
    """`configs/deployment/coordinator.yaml` with Hydra overrides, typed and checked."""
    settings = typed_settings(
        CoordinatorSettings, compose_config(overrides, config_name="coordinator", config_dir=DEPLOYMENT_CONFIG_DIR)
    )
    _port(settings.superlink.port, "superlink.port")
    require(settings.superlink.database in SUPERLINK_DATABASES, "superlink.database",
            f"must be one of {', '.join(SUPERLINK_DATABASES)}, got {settings.superlink.database!r}")
    require(settings.proxy.max_body_mb >= 1, "proxy.max_body_mb", "must be >= 1")
    for route in settings.proxy.fleet_routes:
        require(route.replace("-", "").isalnum(), "proxy.fleet_routes", f"{route!r} is not a Fleet route name")
    _timeouts(settings.ready_timeout_s, settings.stop_timeout_s)
    _tracking(settings.tracking)
    return settings


def node_process_settings(overrides: Sequence[str] = ()) -> NodeProcessSettings:
    """`configs/deployment/node.yaml` with Hydra overrides, typed and checked."""
    settings = typed_settings(
        NodeProcessSettings, compose_config(overrides, config_name="node", config_dir=DEPLOYMENT_CONFIG_DIR)
    )
    _port(settings.supernode.runtime_port, "supernode.runtime_port")
    require(settings.supernode.max_retries is None or settings.supernode.max_retries >= 0,
            "supernode.max_retries", "must be >= 0 or null")
    require(0.05 <= settings.supernode.idle_poll_s <= 60, "supernode.idle_poll_s", "must be in [0.05, 60] seconds")
    require(0.02 <= settings.supernode.busy_poll_s <= settings.supernode.idle_poll_s, "supernode.busy_poll_s",
            f"must be in [0.02, supernode.idle_poll_s={settings.supernode.idle_poll_s:g}] seconds")
    require(0 <= settings.supernode.busy_period_s <= 3600, "supernode.busy_period_s", "must be in [0, 3600] seconds")
    require(0.001 <= settings.supernode.object_retry_s <= 1, "supernode.object_retry_s",
            "must be in [0.001, 1] seconds")
    require(settings.audit.max_bytes >= 4096, "audit.max_bytes", "must be >= 4096")
    _timeouts(settings.ready_timeout_s, settings.stop_timeout_s)
    return settings


def _port(port: int, key: str) -> None:
    require(1 <= port <= 65535, key, f"must be a TCP port in [1, 65535], got {port}")


# What MLflow 3.17 takes as a tracking URI (`uri`) and, without http(s), as a server's store.
_STORE_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg", "postgresql+psycopg2", "mysql", "mysql+pymysql")
_TRACKING_SCHEMES = ("http", "https", *_STORE_SCHEMES)
_STORE_EXAMPLES = "e.g. sqlite:////abs/path/mlflow.db, postgresql://USER@HOST/DB"
_TRACKING_EXAMPLES = f"e.g. http://HOST:5000, {_STORE_EXAMPLES[5:]}"


def _tracking(tracking: CoordinatorTrackingSettings) -> None:
    if tracking.uri is not None:
        require(not tracking.server, "tracking.uri", "names an MLflow the coordinator does not run: set tracking.uri "
                "or tracking.server=true, not both")
        _uri(tracking.uri, "tracking.uri", _TRACKING_SCHEMES, _TRACKING_EXAMPLES)
    if not tracking.server:
        for key in ("backend_store_uri", "artifacts_destination"):
            require(getattr(tracking, key) is None, f"tracking.{key}", "is a setting of the MLflow server the "
                    "coordinator starts: set tracking.server=true too")
        return
    if tracking.backend_store_uri is not None:
        _uri(tracking.backend_store_uri, "tracking.backend_store_uri", _STORE_SCHEMES, _STORE_EXAMPLES)
    require(tracking.artifacts_destination != "", "tracking.artifacts_destination",
            "must be a folder or an artifact store URI, or null (the state folder's mlartifacts/)")
    require(bool(tracking.host.strip()), "tracking.host", "must be the address the MLflow server listens on")
    _port(tracking.port, "tracking.port")
    require(tracking.workers >= 1, "tracking.workers", f"must be >= 1, got {tracking.workers}")


def _uri(uri: str, key: str, schemes: Sequence[str], examples: str) -> None:
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    require(scheme in schemes, key, f"{uri!r} is not one of the stores MLflow takes here ({', '.join(schemes)}; "
            f"{examples})")
    # The ServerApp and the MLflow server each run in a folder of their own.
    require(scheme != "sqlite" or uri.startswith("sqlite:////"), key,
            f"{uri!r} is a relative path: give an absolute one, sqlite:////abs/path/mlflow.db")
    if scheme.startswith("postgresql"):
        # MLflow imports the driver only when the store is first used: say it now, not mid-run.
        # SQLAlchemy 2.1 reads postgresql:// as psycopg (3); +psycopg2 names the older one.
        if scheme == "postgresql+psycopg2":
            driver, install = "psycopg2", "pip install psycopg2-binary, or use postgresql:// with fedtriage[server]"
        else:
            driver, install = "psycopg", "pip install 'fedtriage[server]'"
        require(importlib.util.find_spec(driver) is not None, key,
                f"a PostgreSQL store needs the {driver} driver, which is not installed: {install}")


def _timeouts(ready_timeout_s: float, stop_timeout_s: float) -> None:
    require(ready_timeout_s > 0, "ready_timeout_s", "must be > 0")
    require(stop_timeout_s > 0, "stop_timeout_s", "must be > 0")
