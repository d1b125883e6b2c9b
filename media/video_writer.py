"""Writing short generated videos: the proxy videos of demos, benchmarks and tests.

Written with the same library that reads them (PyAV and the FFmpeg it bundles), so a
demo device or a benchmark mix holds real H.264 in MP4, as phones record it.
"""

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_video(
    path: Path,
    frames: Iterable[np.ndarray],
    fps: int,
    codec: str = "libx264",
    key_frame_interval: int | None = None,
    faststart: bool = False,
) -> int:
    """Encode uint8 [H, W, 3] frames (even H and W) into `path` (container from its suffix); the frame count.

    `key_frame_interval` caps the frames between key frames (the encoder also puts one at each
    scene cut it detects); None leaves the encoder's default. `faststart` puts an MP4's index
    before its frames, as downloads and editors do (phones write it last).
    """
    count = 0
    options = {"fflags": "+bitexact"}  # the same frames give the same bytes
    if faststart:
        options["movflags"] = "faststart"
    with av.open(str(path), mode="w", options=options) as container:
        stream = None
        for frame in frames:
            if stream is None:
                stream = container.add_stream(codec, rate=fps)
                stream.width, stream.height = frame.shape[1], frame.shape[0]
                stream.pix_fmt = "yuv420p"
                stream.time_base = Fraction(1, fps)
                stream.codec_context.thread_count = 1
                if key_frame_interval is not None:
                    stream.codec_context.gop_size = key_frame_interval
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
            count += 1
        if stream is not None:
            for packet in stream.encode(None):
                container.mux(packet)
    return count
