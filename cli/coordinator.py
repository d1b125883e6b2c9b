"""`fedtriage coordinator start|stop|status --kit KITS/coordinator`: the federation's coordinator.

    fedtriage coordinator start --kit KITS/coordinator [--state DIR] [key=value ...]
    fedtriage coordinator status --kit KITS/coordinator
    fedtriage coordinator stop --kit KITS/coordinator

`start` checks the kit, then starts Flower's SuperLink on loopback (TLS, SuperNode
authentication, a database file, process isolation with the kit's SuperExec secret), a
SuperExec for the ServerApps, and nginx on the federation's fleet port exposing the
Fleet API alone; it registers every unit's SuperNode key of the kit. It prints one line
when ready and stays in the foreground: Ctrl-C or SIGTERM (or `stop` from another shell)
stops all it started. Logs and state go to --state (default: the kit's `state/`).
With tracking.server=true it first starts `mlflow server` (SQLite in the state folder, or
tracking.backend_store_uri=postgresql://...), started again should it end; its runs record
there (or at tracking.uri, or by default in state/mlflow.db), buffered on disk while MLflow
does not answer. Settings (ports, the proxy, tracking) are in
configs/deployment/coordinator.yaml; override one as key=value, e.g. `superlink.port=9200`.
"""

import argparse
import sys
from pathlib import Path

from cli.arguments import CommandParser
from fedtriage.errors import ConfigError

_ACTIONS = ("start", "stop", "status")


def main(argv: list[str]) -> int:
    parser = CommandParser(
        prog="fedtriage coordinator", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=_ACTIONS, help="start (foreground), stop or status")
    parser.add_argument("--kit", type=Path, required=True, help="the coordinator's kit folder (from provision)")
    parser.add_argument("--state", type=Path, help="logs, database and runs (default: the kit's state/)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="settings of configs/deployment/coordinator.yaml")
    args = parser.parse_intermixed_args(argv)
    kit = args.kit.resolve()
    state = (args.state or kit / "state").resolve()
    if args.action == "start":
        return _start(kit, state, args.overrides)
    if args.overrides:
        raise ConfigError("arguments", f"`coordinator {args.action}` takes no settings")
    from cli.deployment.settings import coordinator_settings
    from cli.deployment.supervisor import print_status, print_stop

    if args.action == "stop":
        return print_stop("coordinator", state, coordinator_settings().stop_timeout_s)
    return print_status("coordinator", "ready", kit, state)


def _start(kit: Path, state: Path, overrides: list[str]) -> int:
    from cli.deployment.control import register_supernode, write_cli_config
    from cli.deployment.coordinator_processes import (
        CoordinatorPaths,
        proxy_plan,
        proxy_spec,
        superexec_spec,
        superlink_spec,
    )
    from cli.deployment.loopback_tls import make_loopback_tls
    from cli.deployment.mlflow_server import (
        mlflow_server_spec,
        server_plan,
        tracking_uri,
        without_password,
        write_tracking_uri,
    )
    from cli.deployment.proxy import proxy_program, write_proxy_config
    from cli.deployment.settings import coordinator_settings
    from cli.deployment.supervisor import ProcessGroup
    from fl_protocol.provisioning.defaults import load_defaults
    from fl_protocol.provisioning.kit_check import KitCheckRequest, check_kit, refuse_problems
    from fl_protocol.provisioning.kit_file import read_coordinator_kit
    from fl_protocol.provisioning.layout import SUPERNODES_DIR, supernode_public_key_name

    settings = coordinator_settings(overrides)
    federation = read_coordinator_kit(kit, load_defaults())
    refuse_problems(check_kit(KitCheckRequest(kit)), kit)
    program = proxy_program(settings.proxy)
    if settings.superlink.port == federation.coordinator.fleet_port:
        raise ConfigError("superlink.port", f"{settings.superlink.port} is the federation's fleet port, where the "
                          "proxy listens: give the SuperLink another loopback port")
    if settings.tracking.server and settings.tracking.port in (settings.superlink.port,
                                                               federation.coordinator.fleet_port):
        raise ConfigError("tracking.port", f"{settings.tracking.port} is the SuperLink's or the fleet port: give the "
                          "MLflow server another port")
    paths = CoordinatorPaths(kit, state)
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    with ProcessGroup("coordinator", state, settings.stop_timeout_s) as group:
        if settings.tracking.server:
            group.start(mlflow_server_spec(server_plan(settings.tracking, state), state), settings.ready_timeout_s)
        runs_track_to = tracking_uri(settings.tracking, state)
        write_tracking_uri(state, runs_track_to)
        tls = make_loopback_tls(paths.tls, federation.name)
        port = settings.superlink.port
        group.start(superlink_spec(paths, tls, port, settings.superlink.database), settings.ready_timeout_s)
        group.start(superexec_spec(paths, tls, port), settings.ready_timeout_s)
        connection = write_cli_config(paths.flower_home, port, tls.ca_certificate)
        for unit in federation.units:
            key = kit / SUPERNODES_DIR / supernode_public_key_name(unit)
            news = "registered" if register_supernode(connection, key) else "already registered"
            print(f"SuperNode key of {unit}: {news}", flush=True)
        plan = proxy_plan(paths, tls, settings.proxy.listen, federation.coordinator.fleet_port, port,
                          settings.proxy.fleet_routes, settings.proxy.max_body_mb)
        write_proxy_config(plan)
        group.start(proxy_spec(program, plan), settings.ready_timeout_s)
        details = {
            "federation": federation.name,
            "fleet": f"{settings.proxy.listen}:{federation.coordinator.fleet_port} (units connect to "
                     f"{federation.coordinator.fleet_address})",
            "control": f"127.0.0.1:{port} (this host only)",
            "tracking": without_password(runs_track_to),
            "logs": str(group.log_dir),
            "state": str(state),
        }
        group.mark_ready(details)
        print(f"coordinator of federation {federation.name!r} ready: units connect to "
              f"{federation.coordinator.fleet_address}; logs in {group.log_dir}; state in {state}; "
              "Ctrl-C stops it", flush=True)
        group.watch()
    print("coordinator stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
