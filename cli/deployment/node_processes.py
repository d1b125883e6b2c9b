"""A unit's processes and their command lines: the one source for a host and a container.

    SuperNode  connects to the coordinator's Fleet address over TLS trusting the kit's CA
               only, signs every request with the kit's SuperNode key, and names the kit,
               holdings, policy and state folder in its node config (they never leave the
               node); `--isolation process`: its Runtime API, on loopback, answers only
               holders of this node's own SuperExec secret.
    executor   takes each message from the SuperNode's Runtime API with that secret and runs
               the ClientApp on a worker kept up for the run's app bundle (fl_client/executor):
               Flower's SuperExec would start a new process, with every import, per message.
               It runs approved bundles only and keeps the node's audit log.
"""

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cli.deployment.settings import NodeProcessSettings, SuperNodeSettings
from cli.deployment.supervisor import ProcessSpec
from fedtriage.errors import ConfigError
from fl_client.executor.approved_apps import APPROVALS_FILE
from fl_client.executor.audit_log import AUDIT_LOG_FILE
from fl_client.executor.runner import RUNNER_SCRIPT, SUPERNODE_SCRIPT
from fl_client.kit import KIT_KEY, POLICY_KEY, STATE_KEY
from fl_client.node_holdings import HOLDINGS_PATH_KEY, NODE_NAME_KEY
from fl_protocol.provisioning.layout import CA_CERT_FILE, SUPERNODE_KEY_FILE

# Seconds before a SuperNode that ended is started again.
_RESTART_AFTER_S = 1.0
# The executor is woken through a pipe when a message arrives; it asks on its own only this often.
_EXECUTOR_LONGEST_WAIT_S = 1.0
# What the SuperNode logs when the coordinator refuses it (Flower exit code 305), and what to
# tell the unit. Wrong CAs, closed ports and plain HTTP are found before it starts (`fedtriage
# check`'s TLS handshake).
_FATAL_LINES = (
    (r"Failed to activate SuperNode",
     "the coordinator refused this node: its SuperNode key is not registered there (the coordinator registers "
     "its kit's unit keys when it starts: a unit added or rotated since needs a coordinator restart with the "
     "new kit)"),
)


@dataclass(frozen=True)
class NodePaths:
    kit: Path
    holdings: Path
    policy: Path | None
    state: Path

    @property
    def superexec_secret(self) -> Path:
        """This node's own SuperExec secret: made at its first start, never leaves its host."""
        return self.state / "superexec-auth-secret"

    @property
    def flower_home(self) -> Path:
        return self.state / "flwr"

    @property
    def executor_wake(self) -> Path:
        """The pipe through which the SuperNode wakes the executor when a message arrived."""
        return self.state / "executor.wake"

    @property
    def approvals(self) -> Path:
        return self.state / APPROVALS_FILE

    @property
    def audit_log(self) -> Path:
        return self.state / AUDIT_LOG_FILE


def node_config(paths: NodePaths, unit: str) -> str:
    """Flower's `--node-config` string: what the ClientApp reads on this node only."""
    values = {KIT_KEY: paths.kit, HOLDINGS_PATH_KEY: paths.holdings, NODE_NAME_KEY: unit, STATE_KEY: paths.state}
    if paths.policy is not None:
        values[POLICY_KEY] = paths.policy
    for key, value in values.items():
        if any(character in str(value) for character in '"\\\n'):
            raise ConfigError(f"--{key.split('-')[0]}", f"{value!s} holds a quote, backslash or newline, which "
                              "Flower's node config cannot carry: use a path without them")
    return " ".join(f'{key}="{value}"' for key, value in values.items())


def supernode_spec(paths: NodePaths, unit: str, fleet_address: str, runtime_port: int,
                   settings: SuperNodeSettings) -> ProcessSpec:
    """Flower's `flower-supernode`, through `fl_client/executor/supernode.py` for its waits."""
    retries = ("--max-retries", str(settings.max_retries)) if settings.max_retries is not None else ()
    return ProcessSpec(
        name="supernode",
        command=(
            sys.executable, "-P", str(SUPERNODE_SCRIPT),
            "--idle-poll-s", str(settings.idle_poll_s), "--busy-poll-s", str(settings.busy_poll_s),
            "--busy-period-s", str(settings.busy_period_s), "--object-retry-s", str(settings.object_retry_s),
            "--wake-fifo", str(paths.executor_wake), "--",
            "--superlink", fleet_address,
            "--root-certificates", str(paths.kit / CA_CERT_FILE),
            "--auth-supernode-private-key", str(paths.kit / SUPERNODE_KEY_FILE),
            "--node-config", node_config(paths, unit),
            "--isolation", "process",
            "--host", "127.0.0.1", "--port", str(runtime_port),
            "--superexec-auth-secret-file", str(paths.superexec_secret),
            *retries,
        ),
        env={"FLWR_HOME": str(paths.flower_home)},
        cwd=paths.state,
        ready_line=r"SuperNode ID: \d+",
        fatal_lines=_FATAL_LINES,
        # Flower's SuperNode exits when the coordinator no longer knows its node id (a coordinator
        # restarted with superlink.database=memory); started again, it connects with its key.
        restart_after_s=_RESTART_AFTER_S,
        restart_must_come_up=True,
    )


def executor_spec(paths: NodePaths, runtime_port: int, settings: NodeProcessSettings,
                  approved: Sequence[str]) -> ProcessSpec:
    """The node's ClientApp executor: runs bundles whose hash is in `approved` or approved in its state folder."""
    return ProcessSpec(
        name="executor",
        command=(
            sys.executable, "-P", str(RUNNER_SCRIPT),
            "--runtime-api-address", f"127.0.0.1:{runtime_port}",
            "--object-retry-s", str(settings.supernode.object_retry_s),
            "--wake-fifo", str(paths.executor_wake), "--poll-interval", str(_EXECUTOR_LONGEST_WAIT_S),
            "--superexec-auth-secret-file", str(paths.superexec_secret),
            "--approvals", str(paths.approvals),
            *[item for sha256 in approved for item in ("--approved-app", sha256)],
            "--audit-log", str(paths.audit_log), "--audit-max-bytes", str(settings.audit.max_bytes),
        ),
        env={"FLWR_HOME": str(paths.flower_home)},
        cwd=paths.state,
        ready_line=r"Starting the ClientApp executor",
        relay_line=r"(run \d+ done here: audit log head \S+ \(entry \d+\))",
    )
