"""Keep Flower, Ray and MLflow from sending usage data or checking for updates.

A law-enforcement deployment must not phone home. Every entry point calls
`disable_phone_home()` before importing those libraries' runtimes; child processes
(Ray workers, Flower's SuperExec) inherit the environment.
"""

import os

PHONE_HOME_SWITCHES: dict[str, str] = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DISABLE_USAGE_STATS": "1",
    # Single-machine Ray (as on macOS/Windows): the node address is loopback, found
    # without Ray's UDP "connect" to 8.8.8.8. Read when `ray` is imported.
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
}


def disable_phone_home() -> None:
    """Set the switches in this process's environment (inherited by children)."""
    os.environ.update(PHONE_HOME_SWITCHES)
