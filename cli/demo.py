"""`fedtriage demo`: a demo seized device of proxy files, and a known-hash list of some of them;
or, with --holdings UNIT, a demo unit's holdings for `fedtriage node start`.

    fedtriage demo evidence/device1 --known-list known.txt
    fedtriage demo holdings/unit1 --holdings unit1

Writes digit images from scikit-learn's bundled `digits` (never anything else) as a
phone's camera folder would hold them, plus what real devices also hold and triage must
account for: copies of listed images that were resized or re-encoded (as messengers
leave them), two short videos of digit scenes (one of them cut
off mid-file), a truncated JPEG and a text file; and a list of some images' MD5 and PDQ
hashes, as `fedtriage hash` writes it, as a unit's list of known material. With them the
README's `fedtriage classify` example runs as written: on a model trained on digits, "7"
stands in for a relevant category.

With --holdings UNIT it writes a unit's holdings instead: category folders of generated
shapes (the classes of configs/holdings/synthetic.yaml: disc, square, triangle, cross),
drawn from a seed of the unit's name, so every unit holds different images and the same
unit always the same. A re-run leaves a complete set as it is (a container that restarts
runs it again); it never writes into a non-empty folder it did not write.
"""

import argparse
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fedtriage.errors import ConfigError

if TYPE_CHECKING:
    from PIL import Image

# Digits are scaled up to this side, as a camera's pictures are larger than 8 x 8 pixels.
_SIDE = 128
_FPS = 12


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="fedtriage demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("device", metavar="DIR", type=Path, help="the folder to write the demo device into (new)")
    parser.add_argument(
        "--known-list", type=Path, default=None, help="write a list of some of its images' MD5 and PDQ hashes here"
    )
    parser.add_argument("--images", type=int, default=200, help="digit images to write (default: %(default)s)")
    parser.add_argument("--known", type=int, default=10, help="how many of them the list names (default: %(default)s)")
    parser.add_argument(
        "--holdings",
        metavar="UNIT",
        default=None,
        help="write UNIT's generated holdings (category folders) into DIR instead of a device",
    )
    parser.add_argument(
        "--images-per-class", type=int, default=24, help="with --holdings: images of each class (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    if args.holdings is not None:
        return _holdings(args.device, args.holdings, args.images_per_class)
    if args.device.exists() and any(args.device.iterdir()):
        raise ConfigError("DIR", f"{args.device} is not empty: the demo writes into a new or empty folder")
    if not 1 <= args.images <= 1797 or not 0 <= args.known <= args.images:
        raise ConfigError("--images", "must be in [1, 1797], and --known in [0, --images]")
    written = write_demo_device(args.device, args.images, args.known)
    if args.known_list is not None:
        from triage.hash_lines import HashLister

        lister = HashLister.from_defaults()
        lines = [line for name in written.images[: args.known] for line in lister.lines(args.device / name, name)]
        args.known_list.write_text(
            "# MD5, SHA-1 and PDQ of known demo files\n" + "\n".join(lines) + "\n", encoding="utf-8"
        )
    print(
        f"wrote {written.files} files into {args.device}"
        + (f" and the hashes of {args.known} of them into {args.known_list}" if args.known_list else "")
    )
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
    settings = replace(
        synthetic, path=str(root.resolve()), synthetic=replace(synthetic.synthetic, images_per_class=images_per_class)
    )
    seed = int.from_bytes(hashlib.sha256(unit.encode("utf-8")).digest()[:4], "big")
    return ensure_synthetic_holdings(settings, seed)


@dataclass(frozen=True)
class DemoDevice:
    """What `write_demo_device` wrote: the digit images' names (the first ones are the listable
    ones), and how many files in all."""

    images: list[str]
    files: int


def write_demo_device(root: Path, images: int, known: int = 10) -> DemoDevice:
    """`images` digit PNGs under `root/DCIM`, near copies of three of the first `known`, two videos,
    a truncated JPEG and a text file."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for folder in ("DCIM/100MEDIA", "Documents", "Movies", "WhatsApp/Media", "Pictures/Edited"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    pictures = [
        Image.fromarray(np.rint(digits.images[index] * (255 / 16)).clip(0, 255).astype(np.uint8), mode="L").resize(
            (_SIDE, _SIDE), Image.Resampling.BICUBIC
        )
        for index in range(max(images, 60))
    ]
    names = []
    for index in range(images):
        name = f"DCIM/100MEDIA/IMG_{index:04d}.png"
        pictures[index].save(root / name)
        names.append(name)
    files = len(names)
    # Near copies of listed images: resized, re-encoded, or both, as messengers send them on.
    listed = [index % max(known, 1) for index in (1, 2, 3)] if known else []
    copies = (
        ("WhatsApp/Media", "IMG-{:04d}-WA0001.png", 96, None),
        ("WhatsApp/Media", "IMG-{:04d}-WA0002.jpg", _SIDE, 80),
        ("Pictures/Edited", "IMG_{:04d}_small.jpg", 80, 85),
    )
    for index, (folder, name, side, quality) in zip(listed, copies):
        copy = pictures[index].resize((side, side), Image.Resampling.LANCZOS).convert("RGB")
        if quality is None:
            copy.save(root / folder / name.format(index))
        else:
            copy.save(root / folder / name.format(index), format="JPEG", quality=quality)
        files += 1
    # Two videos of digit scenes: one with a listed image among its scenes; one cut off mid-file.
    scenes = (40, 7, listed[0] if listed else 8)
    _write_digit_video(root / "Movies" / "VID_0001.mp4", [pictures[index] for index in scenes])
    _write_digit_video(root / "Movies" / "VID_0002.mp4", [pictures[index] for index in (50, 17, 27)], faststart=True)
    video = (root / "Movies" / "VID_0002.mp4").read_bytes()
    (root / "Movies" / "VID_0002.mp4").write_bytes(video[: len(video) * 6 // 10])  # as a broken copy is
    jpeg = root / "DCIM" / "100MEDIA" / "IMG_9999.jpg"
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(jpeg, format="JPEG")
    jpeg.write_bytes(jpeg.read_bytes()[:200])  # cut off mid-file, as a broken copy is
    (root / "Documents" / "notes.txt").write_text("shopping list\n", encoding="utf-8")
    return DemoDevice(names, files + 4)


def _write_digit_video(path: Path, scenes: list["Image.Image"], faststart: bool = False) -> None:
    """A video of one second per digit, each drifting a little so no two frames are alike."""
    import numpy as np

    from media.video_writer import write_video

    def frames() -> Iterator[np.ndarray]:
        for picture in scenes:
            large = np.asarray(picture.convert("RGB"))
            for step in range(_FPS):
                yield np.roll(large, step // 4, axis=1)

    write_video(path, frames(), _FPS, faststart=faststart)
