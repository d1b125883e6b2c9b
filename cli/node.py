"""`fedtriage node start|stop|status|approve|policy`: a unit's node.

    fedtriage node start --kit KITS/unit1 --holdings PATH [--policy POLICY.yaml] [--state DIR] [key=value ...]
    fedtriage node status --kit KITS/unit1
    fedtriage node stop --kit KITS/unit1
    fedtriage node approve FAB_OR_HASH --kit KITS/unit1     # a .fab file, a SHA-256, or `fedtriage`
    fedtriage node policy check POLICY.yaml                 # what a policy allows, in plain words

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

The node runs only app bundles (FABs) the unit approved, checked by SHA-256 before any of
their code is installed or imported: the bundle of the fedtriage release installed on this
host (unless its policy sets `code.approve_installed_release: false`) and those `approve`
added to `state/approved-apps.json`. `approve` prints what it approves: name, version, hash
and files (`fedtriage` approves the installed release's bundle, as `flwr run` builds it). Any
other bundle gets the reply "refused: app-not-approved". Every instruction and reply is in the
node's audit log, `state/audit.jsonl` (`fedtriage audit verify|show`).
"""

import argparse
import os
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cli.arguments import CommandParser
from fedtriage.errors import ConfigError

if TYPE_CHECKING:
    from fl_protocol.settings.policy import NodePolicy

_ACTIONS = ("start", "stop", "status", "approve", "policy")


def main(argv: list[str]) -> int:
    parser = CommandParser(
        prog="fedtriage node", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=_ACTIONS, help="start (foreground), stop, status, approve or policy")
    parser.add_argument("--kit", type=Path, help="this unit's kit folder (from provision)")
    parser.add_argument("--holdings", type=Path, help="the unit's holdings: a folder of category folders, or a "
                        "VICS case's JSON file with its media under its folder (start)")
    parser.add_argument("--policy", type=Path, help="the unit's node policy (default: the kit's policy.yaml)")
    parser.add_argument("--state", type=Path, help="logs and node state (default: the kit's state/)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="settings of configs/deployment/node.yaml (approve: the bundle)")
    args = parser.parse_intermixed_args(argv)
    if args.action == "policy":
        if len(args.overrides) != 2 or args.overrides[0] != "check":
            raise ConfigError("FILE", "`node policy check FILE` takes one policy file")
        return _check_policy(Path(args.overrides[1]))
    if args.kit is None:
        raise ConfigError("--kit", f"`node {args.action}` needs this unit's kit folder")
    kit = args.kit.resolve()
    state = (args.state or kit / "state").resolve()
    if args.action == "start":
        if args.holdings is None:
            raise ConfigError("--holdings", "`node start` needs the unit's holdings (a folder or a VICS case file)")
        policy = args.policy.resolve() if args.policy else None
        return _start(kit, args.holdings.resolve(), policy, state, args.overrides)
    if args.action == "approve":
        if len(args.overrides) != 1 or args.holdings or args.policy:
            raise ConfigError("FAB_OR_HASH", "`node approve` takes one .fab file, SHA-256 or `fedtriage`, and --kit")
        return _approve(args.overrides[0], state)
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
    from fl_protocol.identity.kits import POLICY_FILE
    from fl_protocol.provisioning.kit_check import KitCheckRequest, check_kit, refuse_problems
    from fl_protocol.provisioning.kit_file import read_unit_kit
    from fl_protocol.settings.policy import load_node_policy

    settings = node_process_settings(overrides)
    unit = read_unit_kit(kit)
    refuse_problems(check_kit(KitCheckRequest(kit, holdings, policy)), kit)
    paths = NodePaths(kit, holdings, policy, state)
    approved = _installed_release_approval(load_node_policy(policy or kit / POLICY_FILE))
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    _ensure_secret(paths.superexec_secret)
    port = settings.supernode.runtime_port
    with ProcessGroup("node", state, settings.stop_timeout_s) as group:
        group.start(supernode_spec(paths, unit.unit, unit.fleet_address, port, settings.supernode),
                    settings.ready_timeout_s)
        group.start(executor_spec(paths, port, settings, approved), settings.ready_timeout_s)
        group.mark_ready({"unit": unit.unit, "federation": unit.federation, "coordinator": unit.fleet_address,
                          "holdings": str(holdings), "logs": str(group.log_dir), "state": str(state)})
        print(f"node {unit.unit} of federation {unit.federation!r} connected to {unit.fleet_address}; "
              f"logs in {group.log_dir}; state in {state}; Ctrl-C stops it", flush=True)
        group.watch()
    print(f"node {unit.unit} stopped", flush=True)
    return 0


def _installed_release_approval(policy: "NodePolicy") -> tuple[str, ...]:
    """The installed release's bundle hash, if the policy approves it; said in one line either way."""
    if not policy.code.approve_installed_release:
        print("approved app bundles: only those of `fedtriage node approve` (code.approve_installed_release=false)")
        return ()
    from cli.deployment.app_bundle import describe, release_bundle

    approval = describe(release_bundle())
    print(f"approved app bundles: this host's release {approval.name} {approval.version} (sha256 "
          f"{approval.sha256}) and those of `fedtriage node approve`", flush=True)
    return (approval.sha256,)


def _check_policy(path: Path) -> int:
    from cli.deployment.policy_words import policy_in_words
    from fl_protocol.settings.policy import load_node_policy

    if not path.is_file():
        raise ConfigError("FILE", f"{path} is not a file: give the unit's policy.yaml")
    policy = load_node_policy(path)
    print(f"{path}: a valid node policy. This node:")
    for line in policy_in_words(policy):
        print(f"  - {line}")
    return 0


def _approve(item: str, state: Path) -> int:
    from cli.deployment.app_bundle import approval_for
    from fl_client.executor.approved_apps import APPROVALS_FILE, read_approvals, write_approvals

    approval, files = approval_for(item)
    path = state / APPROVALS_FILE
    try:
        approvals = read_approvals(path)
    except ValueError as err:
        raise ConfigError("approvals", f"{err}: fix or remove it, then approve again") from err
    known = any(entry.sha256 == approval.sha256 for entry in approvals)
    if not known:
        state.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_approvals(path, [*approvals, approval])
    what = f"{approval.name} {approval.version}".strip() or "(an app bundle known by its hash only)"
    print(f"{'already approved' if known else 'approved'}: {what}, sha256 {approval.sha256}"
          + (f", {len(files)} files" if files else ""))
    for name in files:
        print(f"  {name}")
    print(f"approved on this node: {len(approvals) + (not known)} app bundle(s), in {path}")
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
