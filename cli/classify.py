"""`fedtriage classify`: rank a seized device's files by a federated model's score.

    fedtriage classify source=/evidence/device1 model=models:/fedtriage-model/1 out=triage-device1 \\
        known_hashes=[/lists/known.md5,/lists/hashset.json]

Settings are `key=value` overrides of configs/triage/classify.yaml (Hydra syntax).
Ctrl-C stops with exit code 130; finished files are kept, and the same command resumes.
"""

import argparse
import sys

from fedtriage.errors import Interrupted


def main(argv: list[str]) -> int:
    from configs.help import settings_help
    from triage.settings import CLASSIFY_CONFIG, TRIAGE_CONFIG_DIR

    parser = argparse.ArgumentParser(
        prog="fedtriage classify", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=settings_help(CLASSIFY_CONFIG, TRIAGE_CONFIG_DIR),
    )
    parser.add_argument("settings", nargs="*", metavar="key=value", help="overrides of configs/triage/classify.yaml")
    args = parser.parse_args(argv)
    from triage.classify import classify_media
    from triage.settings import load_classify_settings

    try:
        summary = classify_media(load_classify_settings(args.settings))
    except KeyboardInterrupt:
        raise Interrupted("finished files are kept in the journal: run the same command again to resume") from None
    if summary.note:
        print(f"fedtriage: {summary.note}", file=sys.stderr, flush=True)
    print("\n".join(summary.lines()), flush=True)
    if summary.files_seen == 0:
        print(f"fedtriage: warning: source: {summary.source} holds no file; nothing was triaged", file=sys.stderr)
    return 0
