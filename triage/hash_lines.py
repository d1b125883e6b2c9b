"""The lines of a known-material list that name one file: its MD5, SHA-1 and PDQ hashes.

The hashes are taken exactly as `fedtriage classify` takes them (the same decode, the
same frame sampling, the same reduction before PDQ), so a list made from a file matches
that file when triage meets it again, and near copies of it within the PDQ threshold.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from configs.compose import default_tree, typed_settings
from media.decode import DEFAULT_MAX_PIXELS, UnreadableImage, decode_upright
from media.hashes import hash_file
from media.kind import is_video
from media.pdq import PDQ_SIDE, PdqHash, pdq_of_picture
from media.video import KeyFrames, UnreadableVideo, VideoLimits
from triage.settings import CLASSIFY_CONFIG, TRIAGE_CONFIG_DIR, PdqSettings, VideoSettings

PDQ_PREFIX = "pdq:"


@dataclass(frozen=True)
class HashLister:
    """Writes list lines with the video sampling and PDQ settings of a triage run."""

    video: VideoLimits
    min_quality: int

    @classmethod
    def from_defaults(cls) -> "HashLister":
        """With the defaults of configs/triage/classify.yaml."""
        config = default_tree(CLASSIFY_CONFIG, TRIAGE_CONFIG_DIR)
        video = typed_settings(VideoSettings, config["video"])
        pdq = typed_settings(PdqSettings, config["pdq"])
        limits = video.limits(max_pixels=int(config["max_image_pixels"]), frame_side=PDQ_SIDE)
        return cls(limits, pdq.min_quality)

    def lines(self, path: Path, shown: str) -> Iterator[str]:
        """`<md5>  shown`, `<sha1>  shown`, then a `pdq:<hex>  shown` line per picture (a video's
        frames each), or a comment saying why there is none."""
        try:
            hashes = hash_file(path)
            with path.open("rb") as stream:
                head = stream.read(16)
        except OSError as err:
            yield f"# {shown}: cannot be read ({err.strerror or err})"
            return
        yield f"{hashes.md5}  {shown}"
        yield f"{hashes.sha1}  {shown}"
        if is_video(shown, head):
            yield from self._video_lines(path, shown)
            return
        try:
            picture = decode_upright(path.read_bytes(), PDQ_SIDE, DEFAULT_MAX_PIXELS)
        except UnreadableImage as unreadable:
            yield f"# {shown}: no PDQ hash ({unreadable.reason})"
            return
        yield self._pdq_line(pdq_of_picture(picture), shown, "")

    def _video_lines(self, path: Path, shown: str) -> Iterator[str]:
        try:
            with path.open("rb") as stream, KeyFrames(stream, self.video) as video:
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
