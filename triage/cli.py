"""The `fedtriage` command.

    fedtriage classify source=/evidence/device1 model=models:/fedtriage-model/1 out=triage-device1 \\
        known_hashes=[/lists/known.md5,/lists/hashset.json]

Settings are `key=value` overrides of configs/triage/classify.yaml (Hydra syntax).
"""

from fl_protocol.telemetry import disable_phone_home

disable_phone_home()  # before MLflow or torch start

import argparse  # noqa: E402
import sys  # noqa: E402

from fl_client.holdings.vics import VicsError  # noqa: E402
from fl_protocol.errors import ConfigError  # noqa: E402
from triage.classify import classify_media  # noqa: E402
from triage.journal import JournalMismatch  # noqa: E402
from triage.known_hashes import KnownHashesError  # noqa: E402
from triage.media_walk import MediaRootError  # noqa: E402
from triage.settings import load_classify_settings  # noqa: E402

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # as shells report Ctrl-C


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fedtriage", description="Federated triage of seized media.")
    commands = parser.add_subparsers(dest="command", required=True)
    classify = commands.add_parser(
        "classify",
        help="rank a seized device's files by a federated model's score",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    classify.add_argument("settings", nargs="*", metavar="key=value", help="overrides of configs/triage/classify.yaml")
    args = parser.parse_args(argv)
    try:
        summary = classify_media(load_classify_settings(args.settings))
    except (ConfigError, VicsError, KnownHashesError, MediaRootError, JournalMismatch) as err:
        print(f"fedtriage: error: {err}", file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(
            "\nfedtriage: interrupted; finished files are kept in the journal: "
            "run the same command again to resume",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_INTERRUPTED
    print("\n".join(summary.lines()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
