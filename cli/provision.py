"""`fedtriage provision`: the kits of a real federation, from its federation file.

    fedtriage provision FEDERATION.yaml --out KITS [--renew-certificate]
    fedtriage provision add-unit NAME --out KITS
    fedtriage provision rotate-unit NAME --out KITS

Makes a CA, the coordinator's TLS certificate (naming every coordinator address), each
unit's SuperNode authentication key (EC P-384, OpenSSH format, as Flower 1.42 loads it),
every party's identity key and the roster they pin, and the coordinator's SuperExec
secret; lays them out as KITS/ca/ (the CA key: keep it offline), KITS/coordinator/ and
KITS/<unit>/, each with a README.txt saying what every file is for and who must never
see it. No kit holds another party's private key.

A re-run never replaces a key: what exists is kept, what is missing is made, and a
federation file that no longer fits the kits (e.g. a new coordinator address the
certificate lacks) is one error saying what to do. add-unit and rotate-unit take the
federation from KITS/coordinator/kit.yaml; after either, every unit must pin the new
roster (its digest and fingerprints are printed). Defaults (certificate validity, the
Fleet port) are in configs/deployment/provision.yaml.
"""

import argparse
from collections import defaultdict
from pathlib import Path

from cli.arguments import CommandParser
from fedtriage.errors import ConfigError
from fl_protocol.identity.kits import COORDINATOR_KIT
from fl_protocol.provisioning.layout import CA_KIT, SUPERNODES_DIR, supernode_public_key_name
from fl_protocol.provisioning.report import ProvisionReport

_ACTIONS = ("add-unit", "rotate-unit")
_ORDER = ("created", "renewed", "updated", "retired", "kept")


def main(argv: list[str]) -> int:
    if argv and argv[0] in _ACTIONS:
        return _unit_action(argv[0], argv[1:])
    parser = CommandParser(
        prog="fedtriage provision", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("federation", metavar="FEDERATION", type=Path,
                        help="the federation file (see docker/federation.example.yaml), or add-unit / rotate-unit")
    parser.add_argument("--out", metavar="KITS", type=Path, required=True, help="the folder of kits (made if missing)")
    parser.add_argument("--renew-certificate", action="store_true",
                        help="re-issue the coordinator's server certificate from the CA key (KITS/ca/ca.key); "
                             "its key and every other file are kept")
    args = parser.parse_args(argv)
    if str(args.federation) in _ACTIONS:
        raise ConfigError(
            "arguments", f"{args.federation} comes first: fedtriage provision {args.federation} NAME --out KITS"
        )

    from fl_protocol.provisioning.defaults import load_defaults
    from fl_protocol.provisioning.federation_file import load_federation
    from fl_protocol.provisioning.kits import provision

    federation = load_federation(args.federation, load_defaults())
    report = provision(federation, args.out, renew_certificate=args.renew_certificate)
    _print_report(report)
    return 0


def _unit_action(action: str, argv: list[str]) -> int:
    what = "add a unit: its kit, and the grown roster in every kit" if action == "add-unit" else (
        "give a unit new SuperNode and identity keys; the old ones move to KITS/<unit>/retired/<UTC time>/"
    )
    parser = CommandParser(prog=f"fedtriage provision {action}", description=f"{what}. The federation is the one "
                     "KITS/coordinator/kit.yaml records.")
    parser.add_argument("name", metavar="NAME", help="the unit's name (lower-case letters, digits, - and _)")
    parser.add_argument("--out", metavar="KITS", type=Path, required=True, help="the folder of the federation's kits")
    args = parser.parse_args(argv)

    from fl_protocol.provisioning.kits import add_unit, rotate_unit

    report = (add_unit if action == "add-unit" else rotate_unit)(args.out, args.name)
    _print_report(report)
    if action == "add-unit":
        print(f"\nAdd {args.name} to `units:` in your federation file, so that it keeps matching these kits.")
    return 0


def _print_report(report: ProvisionReport) -> None:
    """What was made, kept and changed, kit by kit; then what people must check and do."""
    print(f"federation {report.federation!r}, kits in {report.out}:")
    files: dict[tuple[str, str], list[str]] = defaultdict(list)
    for change in report.changes:
        kit, _, name = change.path.partition("/")
        files[(change.action, kit)].append(f"{name} -> {change.detail}" if change.detail else name)
    if not any(change.action != "kept" for change in report.changes):
        print("  nothing to make: every kit is complete and fits the federation")
    kits = sorted({kit for _, kit in files}, key=lambda kit: (kit != CA_KIT, kit != COORDINATOR_KIT, kit))
    for action in _ORDER:
        for kit in kits:
            if (action, kit) in files:
                print(f"  {action:<8} {kit + '/':<14} {', '.join(files[(action, kit)])}")
    roster = report.roster
    assert roster is not None
    supernodes = report.out / COORDINATOR_KIT / SUPERNODES_DIR
    if report.rotated is not None:
        rotated = report.rotated
        print(f"\n{rotated.unit} has new keys:")
        print(f"  SuperNode key  old {rotated.old_supernode or '(none)'}  new {rotated.new_supernode}")
        print(f"  identity key   old {rotated.old_identity or '(none)'}  new {rotated.new_identity}")
        print(f"The coordinator must unregister {rotated.unit}'s old SuperNode key (`flwr supernode list`, then "
              f"`flwr supernode unregister NODE_ID`) and register the new one: flwr supernode register "
              f"{supernodes / supernode_public_key_name(rotated.unit)} CONNECTION")
    if report.roster_changed:
        first = report.previous_roster is None
        print("\nThe roster every kit pins" if first else "\nThe roster changed: every unit must pin the new "
              "roster.json of its kit", end="; ")
        print("check its digest and fingerprints with the coordinator by another channel (phone):")
        print(f"  digest sha256 {roster.digest()}")
        for role, name, key in roster.fingerprints():
            print(f"  {role:<11} {name:<14} {key}")
        print(f"\nSuperNode keys, to register on the SuperLink (flwr supernode register {supernodes}/<unit>.pub "
              "CONNECTION):")
        for unit, key in report.supernode_fingerprints.items():
            print(f"  {unit:<14} {key}")
    for note in report.notes:
        print(f"note: {note}")
    if report.paths("created") or report.paths("updated") or report.paths("renewed"):
        print(f"\nShip {report.out / COORDINATOR_KIT} to the coordinator and {report.out}/<unit> to each unit, over a "
              f"trusted channel; keep {report.out / CA_KIT} offline.")
