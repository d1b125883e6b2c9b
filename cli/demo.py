"""`fedtriage demo`: a demo seized device of proxy files, and a known-hash list of some of them;
or, with --holdings UNIT, a demo unit's holdings for `fedtriage node start`.

    fedtriage demo evidence/device1 --known-list known_md5.txt
    fedtriage demo holdings/unit1 --holdings unit1

Writes digit images from scikit-learn's bundled `digits` (never anything else) as a
phone's camera folder would hold them, plus what real devices also hold and triage must
account for: a truncated JPEG, a text file and a video; and an MD5 list of some images,
as a unit's list of known material. With them the README's `fedtriage classify` example
runs as written: on a model trained on digits, "7" stands in for a relevant category.

With --holdings UNIT it writes a unit's holdings instead: category folders of generated
shapes (the classes of configs/holdings/synthetic.yaml: disc, square, triangle, cross),
drawn from a seed of the unit's name, so every unit holds different images and the same
unit always the same. A re-run leaves a complete set as it is (a container that restarts
runs it again); it never writes into a non-empty folder it did not write.
"""

import argparse
import hashlib
from pathlib import Path

from fedtriage.errors import ConfigError

_MP4_HEAD = bytes.fromhex("0000001866747970") + b"isom" + bytes(4) + b"isomiso2"  # an ISO media file's ftyp box


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="fedtriage demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("device", metavar="DIR", type=Path, help="the folder to write the demo device into (new)")
    parser.add_argument("--known-list", type=Path, default=None, help="write an MD5 list of some of its images here")
    parser.add_argument("--images", type=int, default=200, help="digit images to write (default: %(default)s)")
    parser.add_argument("--known", type=int, default=10, help="how many of them the list names (default: %(default)s)")
    parser.add_argument("--holdings", metavar="UNIT", default=None,
                        help="write UNIT's generated holdings (category folders) into DIR instead of a device")
    parser.add_argument("--images-per-class", type=int, default=24,
                        help="with --holdings: images of each class (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.holdings is not None:
        return _holdings(args.device, args.holdings, args.images_per_class)
    if args.device.exists() and any(args.device.iterdir()):
        raise ConfigError("DIR", f"{args.device} is not empty: the demo writes into a new or empty folder")
    if not 1 <= args.images <= 1797 or not 0 <= args.known <= args.images:
        raise ConfigError("--images", "must be in [1, 1797], and --known in [0, --images]")
    names = write_demo_device(args.device, args.images)
    if args.known_list is not None:
        md5s = [hashlib.md5((args.device / name).read_bytes(), usedforsecurity=False).hexdigest() for name in names]
        lines = [f"{md5}  {name}" for md5, name in zip(md5s[: args.known], names[: args.known])]
        args.known_list.write_text("# MD5 of known demo files\n" + "\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(names) + 3} files into {args.device}"
          + (f" and {args.known} hashes into {args.known_list}" if args.known_list else ""))
    return 0


def _holdings(root: Path, unit: str, images_per_class: int) -> int:
    written = write_demo_holdings(root, unit, images_per_class)
    print(f"{'wrote' if written else 'kept'} {unit}'s holdings in {root}")
    return 0


def write_demo_holdings(root: Path, unit: str, images_per_class: int) -> bool:
    """Generated holdings of `unit` in category folders under `root`; False when they were there already."""
    from dataclasses import replace

    from fl_client.holdings.synthetic import ensure_synthetic_holdings
    from fl_protocol.run_config import load_settings

    if not unit.strip():
        raise ConfigError("--holdings", "name the unit whose holdings to write, e.g. --holdings unit1")
    if images_per_class < 1:
        raise ConfigError("--images-per-class", f"must be >= 1, got {images_per_class}")
    synthetic = load_settings(["holdings=synthetic"]).holdings
    settings = replace(synthetic, path=str(root.resolve()),
                       synthetic=replace(synthetic.synthetic, images_per_class=images_per_class))
    seed = int.from_bytes(hashlib.sha256(unit.encode("utf-8")).digest()[:4], "big")
    return ensure_synthetic_holdings(settings, seed)


def write_demo_device(root: Path, images: int) -> list[str]:
    """`images` digit PNGs under `root/DCIM`, a truncated JPEG, a text file and a video; the PNGs' names."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    (root / "DCIM" / "100MEDIA").mkdir(parents=True, exist_ok=True)
    (root / "Documents").mkdir(exist_ok=True)
    (root / "Movies").mkdir(exist_ok=True)
    names = []
    for index in range(images):
        pixels = np.rint(digits.images[index] * (255 / 16)).clip(0, 255).astype(np.uint8)
        name = f"DCIM/100MEDIA/IMG_{index:04d}.png"
        Image.fromarray(pixels, mode="L").save(root / name)
        names.append(name)
    jpeg = root / "DCIM" / "100MEDIA" / "IMG_9999.jpg"
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(jpeg, format="JPEG")
    jpeg.write_bytes(jpeg.read_bytes()[:200])  # cut off mid-file, as a broken copy is
    (root / "Documents" / "notes.txt").write_text("shopping list\n", encoding="utf-8")
    (root / "Movies" / "clip.mp4").write_bytes(_MP4_HEAD + bytes(64))
    return names
