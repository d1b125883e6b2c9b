"""The coordinator's and a node's process settings, read from `configs/deployment/`."""

from collections.abc import Sequence
from dataclasses import dataclass

from configs import CONFIG_DIR
from configs.compose import compose_config, require, typed_settings

DEPLOYMENT_CONFIG_DIR = CONFIG_DIR / "deployment"


@dataclass
class SuperLinkSettings:
    port: int


@dataclass
class ProxySettings:
    program: str
    listen: str
    max_body_mb: int
    fleet_routes: list[str]


@dataclass
class CoordinatorSettings:
    superlink: SuperLinkSettings
    proxy: ProxySettings
    ready_timeout_s: float
    stop_timeout_s: float


@dataclass
class SuperNodeSettings:
    runtime_port: int
    max_retries: int | None


@dataclass
class NodeProcessSettings:
    supernode: SuperNodeSettings
    ready_timeout_s: float
    stop_timeout_s: float


def coordinator_settings(overrides: Sequence[str] = ()) -> CoordinatorSettings:
    """`configs/deployment/coordinator.yaml` with Hydra overrides, typed and checked."""
    settings = typed_settings(
        CoordinatorSettings, compose_config(overrides, config_name="coordinator", config_dir=DEPLOYMENT_CONFIG_DIR)
    )
    _port(settings.superlink.port, "superlink.port")
    require(settings.proxy.max_body_mb >= 1, "proxy.max_body_mb", "must be >= 1")
    for route in settings.proxy.fleet_routes:
        require(route.replace("-", "").isalnum(), "proxy.fleet_routes", f"{route!r} is not a Fleet route name")
    _timeouts(settings.ready_timeout_s, settings.stop_timeout_s)
    return settings


def node_process_settings(overrides: Sequence[str] = ()) -> NodeProcessSettings:
    """`configs/deployment/node.yaml` with Hydra overrides, typed and checked."""
    settings = typed_settings(
        NodeProcessSettings, compose_config(overrides, config_name="node", config_dir=DEPLOYMENT_CONFIG_DIR)
    )
    _port(settings.supernode.runtime_port, "supernode.runtime_port")
    require(settings.supernode.max_retries is None or settings.supernode.max_retries >= 0,
            "supernode.max_retries", "must be >= 0 or null")
    _timeouts(settings.ready_timeout_s, settings.stop_timeout_s)
    return settings


def _port(port: int, key: str) -> None:
    require(1 <= port <= 65535, key, f"must be a TCP port in [1, 65535], got {port}")


def _timeouts(ready_timeout_s: float, stop_timeout_s: float) -> None:
    require(ready_timeout_s > 0, "ready_timeout_s", "must be > 0")
    require(stop_timeout_s > 0, "stop_timeout_s", "must be > 0")
