"""Small videos written for tests with PyAV: scenes cut at known frames, and broken copies.

Every picture is generated (gradients and a moving square, never real footage), the encoder
runs on one thread, so the same arguments always give the same bytes.
"""

import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# (frame count, colour): one scene of a video.
Scene = tuple[int, tuple[int, int, int]]

# Colours far apart in grey too, so consecutive scenes differ whatever the threshold of a test.
PALETTE = ((220, 40, 40), (40, 200, 60), (40, 60, 220), (240, 220, 60), (30, 30, 30), (200, 200, 220))
# Width and height PyAV's Matroska muxer writes in two bytes each, so the patch keeps every size.
_SMALL_SIDE = 256
ABSURD_SIDE = 16_000


def scenes_of(*counts: int) -> list[Scene]:
    """Scenes of these frame counts, in the palette's colours."""
    return [(count, PALETTE[i % len(PALETTE)]) for i, count in enumerate(counts)]


def write_video(
    path: Path,
    scenes: list[Scene],
    fps: int = 12,
    size: tuple[int, int] = (160, 120),
    codec: str = "libx264",
    gop: int = 12,
    faststart: bool = True,
    rotation: int = 0,
) -> list[float]:
    """Writes a video of `scenes` (container from the suffix) and returns the cut times in seconds.

    libx264 keeps its scene-cut detection, as phone encoders do: a key frame at each cut,
    else one every `gop` frames. `faststart` puts an MP4's index before its frames (downloads,
    editors); phones write it last. `rotation` is the display rotation a phone writes for a
    portrait video (degrees counterclockwise).
    """
    width, height = size
    cuts: list[float] = []
    options = {"fflags": "+bitexact"}  # no random ids (Matroska), no version strings
    if faststart and path.suffix in (".mp4", ".mov"):
        options["movflags"] = "faststart"
    with av.open(str(path), mode="w", options=options) as output:
        stream = output.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        stream.gop_size = gop
        stream.codec_context.thread_count = 1
        if codec == "libx265":  # its own thread pool and log, else
            stream.codec_context.options = {"x265-params": "log-level=none:pools=none:frame-threads=1"}
        stream.codec_context.time_base = Fraction(1, fps)
        if rotation:
            stream.set_display_rotation(rotation)
        index = 0
        for number, (count, colour) in enumerate(scenes):
            if number:
                cuts.append(index / fps)
            for step in range(count):
                frame = av.VideoFrame.from_ndarray(_picture(number, step, size, colour), format="rgb24")
                frame.pts = index
                frame.time_base = Fraction(1, fps)
                output.mux(stream.encode(frame))
                index += 1
        output.mux(stream.encode())
    return cuts


def truncate(path: Path, keep_fraction: float) -> Path:
    """A copy of the first `keep_fraction` of the file, as an interrupted copy or download leaves it."""
    data = path.read_bytes()
    cut = path.with_name(f"{path.stem}-truncated{path.suffix}")
    cut.write_bytes(data[: int(len(data) * keep_fraction)])
    return cut


def corrupt_header(path: Path, length: int = 64) -> Path:
    """A copy whose first `length` bytes are overwritten, as a damaged sector leaves it."""
    corrupt = path.with_name(f"{path.stem}-corrupt{path.suffix}")
    shutil.copyfile(path, corrupt)
    with corrupt.open("r+b") as stream:
        stream.write(b"\xff" * length)
    return corrupt


def absurd_dimensions(path: Path) -> Path:
    """A Matroska video whose header declares 16000x16000 pixels; its two frames hold 256x256.

    The decoder would need hundreds of megabytes for one such frame: a guard must refuse it by
    the declared size. The PixelWidth (0xB0) and PixelHeight (0xBA) elements are patched in
    place, their sizes kept (two bytes each), so the file stays parseable.
    """
    with av.open(str(path), mode="w", format="matroska", options={"fflags": "+bitexact"}) as output:
        stream = output.add_stream("rawvideo", rate=12)
        stream.width = stream.height = _SMALL_SIDE
        stream.pix_fmt = "gray"
        for index in range(2):
            frame = av.VideoFrame.from_ndarray(np.full((_SMALL_SIDE, _SMALL_SIDE), 60 * index, np.uint8), "gray")
            frame.pts = index
            output.mux(stream.encode(frame))
        output.mux(stream.encode())
    data = bytearray(path.read_bytes())
    for element_id in (b"\xb0", b"\xba"):
        element = element_id + b"\x82" + _SMALL_SIDE.to_bytes(2, "big")  # ID, size (2 bytes), value
        assert data.count(element) == 1, "the muxer no longer writes the sizes this patch expects"
        at = data.index(element)
        data[at + 2 : at + 4] = ABSURD_SIDE.to_bytes(2, "big")
    path.write_bytes(bytes(data))
    return path


def write_audio_only(path: Path, seconds: float = 1.0) -> Path:
    """An MP4 (M4A) of AAC audio only: a container triage reads, without a picture."""
    rate = 48_000
    with av.open(str(path), mode="w", format="mp4", options={"fflags": "+bitexact"}) as output:
        stream = output.add_stream("aac", rate=rate)
        samples = int(rate * seconds)
        tone = np.sin(np.arange(samples, dtype=np.float32) * (2 * np.pi * 440 / rate))[np.newaxis]
        frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = 0
        output.mux(stream.encode(frame))
        output.mux(stream.encode())
    return path


def _picture(scene: int, step: int, size: tuple[int, int], colour: tuple[int, int, int]) -> np.ndarray:
    """A gradient in the scene's colour (direction alternating between scenes) with a square that
    moves two pixels a frame: frames of one scene differ a little, scenes a lot."""
    width, height = size
    across = np.linspace(0.25, 1.0, width, dtype=np.float32)
    if scene % 2:
        across = across[::-1]
    down = np.linspace(0.6, 1.0, height, dtype=np.float32)[:, np.newaxis]
    picture = ((across[np.newaxis, :] * down)[..., np.newaxis] * np.array(colour, np.float32)).astype(np.uint8)
    side = max(2, height // 4)
    left = (width // 4 + 2 * step) % max(1, width - side)
    top = height // 2 - side // 2
    picture[top : top + side, left : left + side] = 255 - np.array(colour, np.uint8)
    return picture
