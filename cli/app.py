"""`fedtriage COMMAND ...`: the entry point of every command.

The phone-home switches are set first, before any command imports Flower, Ray or
MLflow; then the command's module is imported and run. Every error of the family, and
Ctrl-C, ends the command here with one line and its exit code (`cli.exit`).
"""

import importlib
import sys

from cli.exit import report, report_interrupt
from fedtriage import __version__
from fedtriage.environment import disable_phone_home
from fedtriage.errors import EXIT_BAD_INPUT, ConfigError, FedtriageError, Interrupted

# Command name -> (module, one line of help). The only list of commands.
COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("cli.simulate", "run a simulated federation on proxy data (Hydra overrides; -m sweeps)"),
    "flwr-run": ("cli.flwr_run", "the same federation through Flower's own `flwr run` on a local SuperLink"),
    "classify": ("cli.classify", "rank a seized device's files by a federated model's score"),
    "hash": ("cli.hash", "print files' MD5, SHA-1 and PDQ hashes as lines of a known-material list"),
    "demo": ("cli.demo", "write a demo seized device for classify, or a demo unit's holdings (--holdings UNIT)"),
    "model": ("cli.model", "register a run's model as a candidate, approve a version for casework"),
    "bench": ("cli.bench", "measure accuracy, speed or memory: fedtriage bench NAME [--quick]"),
    "provision": ("cli.provision", "make a real federation's kits: CA, TLS, SuperNode keys, identities, roster"),
    "check": ("cli.check", "before anything runs: is a kit usable (certificates, keys, clock, coordinator address)"),
    "coordinator": ("cli.coordinator", "start, stop or ask after the coordinator (SuperLink, SuperExec, Fleet proxy)"),
    "node": ("cli.node", "start, stop or ask after a unit's node: its SuperNode on its own holdings"),
    "run": ("cli.run", "start, list, stop or resume a federated training run on the coordinator"),
    "audit": ("cli.audit", "verify a node's hash-chained audit log, or show it as a table"),
    "compare": ("cli.compare", "tables and plots comparing tracked runs (experiment, sweep or tag) for a report"),
    "privacy-audit": ("cli.privacy_audit", "attack what the server receives in each mode: gradient inversion, "
                      "membership inference"),
}


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    return "\n".join(
        [
            "usage: fedtriage COMMAND [ARGS ...]",
            "",
            "Federated training of triage classifiers across law-enforcement units, and triage with them.",
            "",
            "commands:",
            *(f"  {name:<{width}}  {line}" for name, (_, line) in COMMANDS.items()),
            "",
            "`fedtriage COMMAND --help` tells more about each.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Run `fedtriage` with `argv` (default: the process's arguments); return the exit code."""
    disable_phone_home()
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(usage(), file=sys.stderr)
        return EXIT_BAD_INPUT
    if args[0] in ("-h", "--help"):
        print(usage())
        return 0
    if args[0] == "--version":
        print(f"fedtriage {__version__}")
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        return report(ConfigError("command", f"unknown command {name!r}; choose one of {', '.join(COMMANDS)}"))
    try:
        module = importlib.import_module(COMMANDS[name][0])
        return int(module.main(rest) or 0)
    except Interrupted as err:
        return report_interrupt(str(err))
    except FedtriageError as err:
        return report(err)
    except KeyboardInterrupt:
        return report_interrupt()


if __name__ == "__main__":
    sys.exit(main())
