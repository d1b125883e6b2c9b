"""Keep Flower, Ray and MLflow from sending usage data or checking for updates.

A law-enforcement deployment must not phone home. `PHONE_HOME_SWITCHES` is the one
list: `disable_phone_home()` sets it when the `fedtriage` command starts (`cli.app`),
before any command imports those libraries, and in the Flower apps (which Flower may
start without the command); child processes (Ray workers, Flower's SuperExec) inherit
it. `.ci/run` and the Docker image take the very same list from
`python -m fedtriage.environment`, which prints it as shell exports.
"""

import os
import shlex

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


def shell_exports() -> str:
    """The switches as `export KEY=VALUE` lines, for `eval` in a shell."""
    return "\n".join(f"export {key}={shlex.quote(value)}" for key, value in PHONE_HOME_SWITCHES.items())


if __name__ == "__main__":
    print(shell_exports())
