"""`fedtriage node start|stop|status --kit KITS/unit1`: a unit's node.

    fedtriage node start --kit KITS/unit1 --holdings PATH [--policy POLICY.yaml] [--state DIR] [key=value ...]
    fedtriage node status --kit KITS/unit1
    fedtriage node stop --kit KITS/unit1

`start` checks the kit first (files, certificate dates, a TLS handshake with the
coordinator trusting the kit's CA only, policy, holdings) and says what to fix; then it
starts the unit's SuperNode with the kit's CA and SuperNode key, its holdings, policy and
state named in its node config (they never leave this host), and the executor of its
ClientApp (one process per run's app bundle, not one per message), authenticated by a
secret made for this node. It prints one line once the
coordinator accepted the node and stays in the foreground: Ctrl-C or SIGTERM (or `stop`
from another shell) stops what it started. A node the coordinator refuses stops with the
reason. Logs and node state go to --state (default: the kit's `state/`). Settings are in
configs/deployment/node.yaml; override one as key=value, e.g. `supernode.runtime_port=9095`.
"""

import argparse
import os
import secrets
import sys
from pathlib import Path

from cli.arguments import CommandParser
from fedtriage.errors import ConfigError

_ACTIONS = ("start", "stop", "status")


def main(argv: list[str]) -> int:
    parser = CommandParser(
        prog="fedtriage node", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=_ACTIONS, help="start (foreground), stop or status")
    parser.add_argument("--kit", type=Path, required=True, help="this unit's kit folder (from provision)")
    parser.add_argument("--holdings", type=Path, help="the unit's holdings: a folder of category folders (start)")
    parser.add_argument("--policy", type=Path, help="the unit's node policy (default: the kit's policy.yaml)")
    parser.add_argument("--state", type=Path, help="logs and node state (default: the kit's state/)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="settings of configs/deployment/node.yaml")
    args = parser.parse_intermixed_args(argv)
    kit = args.kit.resolve()
    state = (args.state or kit / "state").resolve()
    if args.action == "start":
        if args.holdings is None:
            raise ConfigError("--holdings", "`node start` needs the unit's holdings folder")
        policy = args.policy.resolve() if args.policy else None
        return _start(kit, args.holdings.resolve(), policy, state, args.overrides)
    if args.overrides or args.holdings or args.policy:
        raise ConfigError("arguments", f"`node {args.action}` takes only --kit and --state")
    from cli.deployment.settings import node_process_settings
    from cli.deployment.supervisor import print_status, print_stop

    if args.action == "stop":
        return print_stop("node", state, node_process_settings().stop_timeout_s)
    return print_status("node", "connected", kit, state)


def _start(kit: Path, holdings: Path, policy: Path | None, state: Path, overrides: list[str]) -> int:
    from cli.deployment.node_processes import NodePaths, executor_spec, supernode_spec
    from cli.deployment.settings import node_process_settings
    from cli.deployment.supervisor import ProcessGroup
    from fl_protocol.provisioning.kit_check import KitCheckRequest, check_kit, refuse_problems
    from fl_protocol.provisioning.kit_file import read_unit_kit

    settings = node_process_settings(overrides)
    unit = read_unit_kit(kit)
    refuse_problems(check_kit(KitCheckRequest(kit, holdings, policy)), kit)
    paths = NodePaths(kit, holdings, policy, state)
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    _ensure_secret(paths.superexec_secret)
    port = settings.supernode.runtime_port
    with ProcessGroup("node", state, settings.stop_timeout_s) as group:
        group.start(supernode_spec(paths, unit.unit, unit.fleet_address, port, settings.supernode),
                    settings.ready_timeout_s)
        group.start(executor_spec(paths, port, settings.supernode), settings.ready_timeout_s)
        group.mark_ready({"unit": unit.unit, "federation": unit.federation, "coordinator": unit.fleet_address,
                          "holdings": str(holdings), "logs": str(group.log_dir), "state": str(state)})
        print(f"node {unit.unit} of federation {unit.federation!r} connected to {unit.fleet_address}; "
              f"logs in {group.log_dir}; state in {state}; Ctrl-C stops it", flush=True)
        group.watch()
    print(f"node {unit.unit} stopped", flush=True)
    return 0


def _ensure_secret(path: Path) -> None:
    """32 random bytes as hex, owner-only; kept across starts (the SuperExec reads the same)."""
    if path.is_file():
        return
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as sink:
        sink.write(secrets.token_hex(32))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
