"""`fedtriage check --kit KIT`: is this kit usable, before anything runs?

    fedtriage check --kit KITS/unit1 [--holdings PATH] [--policy POLICY.yaml] [--timeout S]
    fedtriage check --kit KITS/coordinator

For a unit: its files and their modes, the CA certificate's dates against this machine's
clock, its SuperNode key, its identity key against the roster, its policy, its holdings
(with --holdings), and a TLS handshake with the coordinator's address trusting the kit's
CA only. For the coordinator: its files, the server certificate (signed by the CA, naming
every address, dates, due for renewal), its identity against the roster, every unit's
SuperNode public key. Prints one line per check; any problem ends with exit 2 and one line
counting them, each problem saying what to fix.
"""

import argparse
from pathlib import Path

from cli.arguments import CommandParser
from fedtriage.errors import ConfigError


def main(argv: list[str]) -> int:
    parser = CommandParser(
        prog="fedtriage check", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kit", type=Path, required=True, help="a kit folder `fedtriage provision` made")
    parser.add_argument("--holdings", type=Path,
                        help="the unit's holdings: a folder of category sub-folders, or a VICS case file")
    parser.add_argument("--policy", type=Path, help="the unit's node policy (default: the kit's policy.yaml)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the coordinator (default 5)")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        raise ConfigError("--timeout", f"must be > 0, got {args.timeout:g}")

    from fl_protocol.provisioning.kit_check import KitCheckRequest, check_kit

    findings = check_kit(KitCheckRequest(args.kit, args.holdings, args.policy, args.timeout))
    for finding in findings:
        status = "ok     " if finding.problem is None else "PROBLEM"
        print(f"{status} {finding.check}: {finding.detail}")
        if finding.problem:
            print(f"        {finding.problem}")
    problems = [finding for finding in findings if finding.problem is not None]
    if problems:
        raise ConfigError("--kit", f"{len(problems)} problem(s) in {args.kit}: "
                          + "; ".join(f"{finding.check}: {finding.problem}" for finding in problems))
    print(f"{args.kit}: usable")
    return 0
