"""`fedtriage classify`: rank a seized device's files by a federated model's score.

    fedtriage classify source=/evidence/device1 model=models:/fedtriage-model/1 out=triage-device1 \\
        known_hashes=[/lists/known.md5,/lists/hashset.json]

Settings are `key=value` overrides of configs/triage/classify.yaml (Hydra syntax).
Ctrl-C stops with exit code 130; finished files are kept, and the same command resumes.
"""

import argparse

from fedtriage.errors import Interrupted


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="fedtriage classify", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("settings", nargs="*", metavar="key=value", help="overrides of configs/triage/classify.yaml")
    args = parser.parse_args(argv)
    from triage.classify import classify_media
    from triage.settings import load_classify_settings

    try:
        summary = classify_media(load_classify_settings(args.settings))
    except KeyboardInterrupt:
        raise Interrupted("finished files are kept in the journal: run the same command again to resume") from None
    print("\n".join(summary.lines()), flush=True)
    return 0
