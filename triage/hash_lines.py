"""The lines of a known-material list that name one file: its MD5, SHA-1 and PDQ hashes.

The hashes are taken exactly as `fedtriage classify` takes them (the same decode, the
same frame sampling, the same reduction before PDQ), so a list made from a file matches
that file when triage meets it again, and near copies of it within the PDQ threshold.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from configs.compose import default_tree, typed_settings
from media.decode import UnreadableImage, decode_upright
from media.hashes import hash_stream
from media.kind import is_video
from media.pdq import PDQ_SIDE, PdqHash, pdq_of_picture
from media.video import KeyFrames, UnreadableVideo, VideoLimits
from triage.settings import CLASSIFY_CONFIG, TRIAGE_CONFIG_DIR, PdqSettings, VideoSettings

PDQ_PREFIX = "pdq:"


@dataclass(frozen=True)
class HashLister:
    """Writes list lines with the video sampling, PDQ and size settings of a triage run."""

    video: VideoLimits
    min_quality: int
    max_file_bytes: int

    @classmethod
    def from_defaults(cls) -> "HashLister":
        """With the defaults of configs/triage/classify.yaml."""
        config = default_tree(CLASSIFY_CONFIG, TRIAGE_CONFIG_DIR)
        video = typed_settings(VideoSettings, config["video"])
        pdq = typed_settings(PdqSettings, config["pdq"])
        limits = video.limits(max_pixels=int(config["max_image_pixels"]), frame_side=PDQ_SIDE)
        return cls(limits, pdq.min_quality, int(float(config["max_file_mb"]) * 2**20))

    def lines(self, path: Path, shown: str) -> Iterator[str]:
        """`<md5>  shown`, `<sha1>  shown`, then a `pdq:<hex>  shown` line per picture (a video's
        frames each), or a comment saying why there is none. `shown` is written printable: a
        file name cannot add lines of its own to a list."""
        shown = printable(shown)
        try:
            with path.open("rb") as stream:
                hashes = hash_stream(stream)
                size = stream.tell()
                stream.seek(0)
                head = stream.read(16)
                yield f"{hashes.md5}  {shown}"
                yield f"{hashes.sha1}  {shown}"
                if is_video(shown, head):
                    yield from self._video_lines(stream, shown)
                    return
                if size > self.max_file_bytes:
                    yield f"# {shown}: no PDQ hash (file too large (max_file_mb))"
                    return
                stream.seek(0)
                data = stream.read()
        except OSError as err:
            yield f"# {shown}: cannot be read ({err.strerror or err})"
            return
        try:
            picture = decode_upright(data, PDQ_SIDE, self.video.max_pixels)
        except UnreadableImage as unreadable:
            yield f"# {shown}: no PDQ hash ({unreadable.reason})"
            return
        yield self._pdq_line(pdq_of_picture(picture), shown, "")

    def _video_lines(self, stream: BinaryIO, shown: str) -> Iterator[str]:
        try:
            stream.seek(0)
            with KeyFrames(stream, self.video) as video:
                for frame in video:
                    pdq = pdq_of_picture(Image.fromarray(frame.rgb))
                    yield self._pdq_line(pdq, shown, f"  frame {frame.time_s:.3f} s")
        except UnreadableVideo as unreadable:
            yield f"# {shown}: no further PDQ hash ({unreadable.reason})"

    def _pdq_line(self, pdq: PdqHash, shown: str, where: str) -> str:
        line = f"{PDQ_PREFIX}{pdq.hex}  {shown}{where}"
        if pdq.quality < self.min_quality:
            return f"# {line}  quality {pdq.quality} < pdq.min_quality {self.min_quality}: too featureless to match"
        return line


def printable(name: str) -> str:
    """A file name as one line of text: control characters escaped (\\n, \\t, ...), and bytes that
    are no UTF-8 (held as surrogates) written \\xNN."""
    if name.isprintable():
        return name
    out = []
    for character in name:
        code = ord(character)
        if 0xDC80 <= code <= 0xDCFF:  # a byte os.fsdecode could not decode
            out.append(f"\\x{code - 0xDC00:02x}")
        elif character.isprintable():
            out.append(character)
        else:
            out.append(character.encode("unicode_escape").decode("ascii"))
    return "".join(out)
