"""Sampling the frames of one untrusted video that triage looks at, or the reason it cannot be used.

Seized devices hold broken recordings, files named like videos and hostile files. FFmpeg
(through PyAV's bundled libraries, never an external program) reads only ordinary video
containers from the file object it is given and never opens another file or a URL, which a
playlist or concat script would make it do. Sizes and lengths a header declares are refused
before any frame is decoded, and the decoder refuses larger frames a lying header hides.
Decoding runs on one thread: triage runs its model beside the decoder on small machines.
"""

import math
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO

import av
import numpy as np

# FFmpeg's names of the demuxers of phone, camera and web video. FFmpeg probes every demuxer,
# then refuses one not named here: playlists (hls, dash), concat scripts, image sequences,
# audio and devices, the demuxers that open further files among them.
_CONTAINERS = ",".join(
    (
        "mov", "mp4", "m4a", "3gp", "3g2", "mj2",  # one demuxer: QuickTime, MP4, 3GPP
        "matroska", "webm",
        "avi", "asf", "flv",
        "dv",  # camcorders
        "mpeg", "mpegts", "mpegvideo",  # DVD and MPEG-PS, AVCHD and broadcast, raw MPEG-1/2
        "h264", "hevc", "m4v",  # raw streams from cameras and DVRs
    )
)  # fmt: skip
_OPEN_OPTIONS = {
    "format_whitelist": _CONTAINERS,
    # A file object gives FFmpeg no protocol to inherit a whitelist from, so any nested open
    # (an HLS segment, a concat entry) could reach any file or URL; an empty list allows none.
    "protocol_whitelist": "",
}
# Decoders of the codecs phones, cameras and the web use; FFmpeg's rarer decoders see less scrutiny.
_DECODERS = frozenset(
    {
        "h264", "hevc", "av1", "libdav1d", "vp8", "vp9", "libvpx", "libvpx-vp9",
        "mpeg4", "h263", "h263p", "mpeg1video", "mpeg2video", "mjpeg", "dvvideo", "prores",
        "msmpeg4v1", "msmpeg4v2", "msmpeg4", "wmv1", "wmv2", "wmv3", "vc1", "flv", "rawvideo",
    }
)  # fmt: skip
# Raw H.264 and HEVC streams carry no timestamps: their frames are timed by index, so all are decoded.
_UNTIMED_CONTAINERS = frozenset({"h264", "hevc"})
_THUMBNAIL_SIDE = 32


@dataclass(frozen=True)
class VideoLimits:
    """How much of a video is read, and which of its frames are kept."""

    max_pixels: int  # declared width * height above this: refused before any frame is decoded
    max_declared_frames: int  # declared frame count above this: refused before any frame is decoded
    max_decoded_frames: int  # the scan stops after decoding this many (key, in a key scan) frames: a header may lie
    # "all": every frame; "key": key frames only (fast; encoders put one at most cuts); "auto": every
    # frame of a video declared no longer than `full_scan_max_s`, key frames of a longer or undeclared one
    scan: str
    full_scan_max_s: float
    max_frames: int  # at most this many frames are sampled
    min_spacing_s: float  # sampled frames are at least this far apart
    max_gap_s: float  # a frame is sampled when this long has passed since the last one, cut or not
    scene_threshold: float  # mean absolute difference (0..1) of grey thumbnails that counts as a cut
    frame_side: int  # sampled frames' long side at most this (aspect kept)

    def __post_init__(self) -> None:
        if self.scan not in ("auto", "key", "all"):
            raise ValueError(f"scan must be 'auto', 'key' or 'all', not {self.scan!r}")
        if self.max_frames < 1 or self.max_decoded_frames < 1 or self.frame_side < 1:
            raise ValueError("max_frames, max_decoded_frames and frame_side must be positive")


class UnreadableVideo(ValueError):
    """A file that holds no usable video; `reason` says why in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class VideoFrame:
    """One sampled frame, upright (a phone's display rotation applied)."""

    time_s: float  # presentation time in seconds, as the container gives it
    rgb: np.ndarray  # uint8 [H, W, 3], long side <= frame_side


class KeyFrames:
    """The sampled frames of one video, decoded one at a time.

    Opening probes the file and raises `UnreadableVideo` for what cannot be scanned: not a
    video, a corrupt container, no video stream, an unsupported codec, a declared size or frame
    count over the limits. Iterating may raise it too, after some frames ("truncated or corrupt
    video"): the frames the decoder held when it failed are sampled first, so both scans yield
    every frame before the damage. A truncated container that ends cleanly (Matroska, MPEG-TS)
    just ends the scan. Raw H.264 and HEVC streams are scanned whole whatever `scan` says.
    Use as a context manager, so the container is closed.
    """

    width: int  # as declared and stored, before any display rotation
    height: int
    duration_s: float | None  # declared; None when the container does not say
    declared_frames: int | None  # the stream's frame count, else duration * rate
    stopped_early: str | None  # after iterating: why the scan stopped before the end, if it did
    key_frames_only: bool  # whether the scan decodes key frames only
    ended_at_s: float | None  # after iterating: the time of the last frame decoded

    def __init__(self, stream: BinaryIO, limits: VideoLimits, spread: bool = True) -> None:
        """`spread`: space the samples so `max_frames` cover the declared duration. A header can
        lie about the duration; a caller that finds the video ending far earlier scans it again
        without spreading."""
        self._limits = limits
        self._spread = spread
        self._iterated = False
        self.stopped_early = None
        self.ended_at_s = None
        try:
            # A file object, never a path: FFmpeg reads a "name:..." path as a protocol URL.
            self._container = av.open(
                stream,
                mode="r",
                container_options=_OPEN_OPTIONS,
                # For the decoders FFmpeg opens itself to probe the streams: they decode nothing
                # (a 4K H.264 frame would be decoded here otherwise), and the declared size stays.
                options={"threads": "1", "skip_frame": "all"},
                metadata_errors="replace",
            )
        except av.error.ArgumentError as err:  # recognised, but not an allowed container
            raise UnreadableVideo("not a video") from err
        except Exception as err:  # noqa: BLE001 - any failure to open means this one file is unusable
            raise UnreadableVideo("corrupt or unknown container") from err
        try:
            self._video = self._probe()
        except BaseException:
            self._container.close()
            raise

    def _probe(self) -> av.VideoStream:
        pictures = av.stream.Disposition.attached_pic  # cover art is no part of the video
        streams = [video for video in self._container.streams.video if not video.disposition & pictures]
        if not streams:
            raise UnreadableVideo("no video stream")
        video = streams[0]
        codec = video.codec_context
        if codec is None or codec.name not in _DECODERS:
            raise UnreadableVideo("unsupported codec")
        self.width, self.height = codec.width, codec.height
        if self.width <= 0 or self.height <= 0:
            raise UnreadableVideo("video size not declared")
        if self.width * self.height > self._limits.max_pixels:
            raise UnreadableVideo("video too large (declared dimensions)")
        self._start_s = _start_s(self._container, video)
        self.duration_s = _declared_duration_s(self._container, video)
        self.declared_frames = _declared_frames(video, self.duration_s)
        if self.declared_frames is not None and self.declared_frames > self._limits.max_declared_frames:
            raise UnreadableVideo("video too long (declared frame count)")
        codec.thread_count = 1
        codec.options = {"max_pixels": str(self._limits.max_pixels)}  # a later header may declare more
        scan = self._limits.scan
        if scan == "auto":
            short = self.duration_s is not None and self.duration_s <= self._limits.full_scan_max_s
            scan = "all" if short else "key"
        self.key_frames_only = scan == "key" and self._container.format.name not in _UNTIMED_CONTAINERS
        if self.key_frames_only:
            codec.skip_frame = "NONKEY"
        return video

    def __iter__(self) -> Iterator[VideoFrame]:
        if self._iterated:
            raise RuntimeError("a video is scanned once")
        self._iterated = True
        limits = self._limits
        # With a declared duration, the cap spreads over the whole video instead of its start.
        spread_over = (self.duration_s or 0.0) if self._spread else 0.0
        spacing = max(limits.min_spacing_s, spread_over / limits.max_frames)
        thumbnails, pixels = av.video.reformatter.VideoReformatter(), av.video.reformatter.VideoReformatter()
        decoded = sampled = 0
        last_sampled: float | None = None
        previous: np.ndarray | None = None
        frames = self._decoded()
        try:
            for frame in frames:
                time_s = self._time_s(frame, decoded)
                decoded += 1
                self.ended_at_s = time_s
                try:
                    thumbnail = _thumbnail(thumbnails, frame)
                    cut = previous is not None and _difference(previous, thumbnail) > limits.scene_threshold
                    # Timestamps of a damaged file may jump back: distance either way counts.
                    elapsed = None if last_sampled is None else abs(time_s - last_sampled)
                    if elapsed is None or ((cut or elapsed >= limits.max_gap_s) and elapsed >= spacing):
                        sample = VideoFrame(time_s, _upright_rgb(pixels, frame, limits.frame_side))
                    else:
                        sample = None
                except Exception as err:  # noqa: BLE001 - a frame FFmpeg cannot convert is damage too
                    raise UnreadableVideo("truncated or corrupt video") from err
                del frame  # at most one decoded frame held, even while the caller works on a sample
                previous = thumbnail
                if sample is not None:
                    yield sample
                    sampled += 1
                    last_sampled = time_s
                    if sampled >= limits.max_frames:
                        return
                if decoded >= limits.max_decoded_frames:
                    self.stopped_early = f"scan stopped after {decoded} frames"
                    return
            if decoded == 0:
                raise UnreadableVideo("no frames decoded")
        finally:
            frames.close()

    def _decoded(self) -> Iterator[av.VideoFrame]:
        """Decoded frames in presentation order, ended by the first error after the frames the
        decoder still held: without them a key-frame scan loses every frame before the damage."""
        codec = self._video.codec_context
        packets = self._container.demux(self._video)
        try:
            for packet in packets:
                decoded = codec.decode(packet)
                while decoded:
                    yield decoded.pop(0)
            return
        except Exception as err:  # noqa: BLE001 - FFmpeg and PyAV errors alike mean damage
            failure = err
        finally:
            packets.close()
        try:
            decoded = codec.decode(None)
            while decoded:
                yield decoded.pop(0)
        except Exception:  # noqa: BLE001 - the decoder may have nothing left to give
            pass
        raise UnreadableVideo("truncated or corrupt video") from failure

    def _time_s(self, frame: av.VideoFrame, index: int) -> float:
        """Seconds from the start of the video, as a player shows them (MPEG-TS and edited MP4
        files start their clocks later than 0)."""
        if frame.time is not None and math.isfinite(frame.time):  # NaN for frames the decoder is drained of
            return float(frame.time) - self._start_s
        if frame.pts is not None and self._video.time_base:
            return float(frame.pts * self._video.time_base) - self._start_s
        rate = self._video.guessed_rate or self._video.average_rate  # a raw demuxer's average rate is its default
        return index / float(rate) if rate else float(index)

    def __enter__(self) -> "KeyFrames":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._container.close()


def _start_s(container: av.container.InputContainer, video: av.VideoStream) -> float:
    """When the video's clock starts: its first frame's time, which players show as 0."""
    if video.start_time is not None and video.time_base:
        return float(video.start_time * video.time_base)
    if container.start_time is not None:
        return container.start_time / av.time_base
    return 0.0


def _declared_duration_s(container: av.container.InputContainer, video: av.VideoStream) -> float | None:
    if video.duration is not None and video.time_base:
        seconds = float(video.duration * video.time_base)
    elif container.duration is not None:
        seconds = container.duration / av.time_base
    else:
        return None
    return seconds if seconds > 0 else None


def _declared_frames(video: av.VideoStream, duration_s: float | None) -> int | None:
    if video.frames > 0:
        return video.frames
    rate = video.average_rate or video.guessed_rate
    if duration_s is None or not rate:
        return None
    return round(duration_s * float(rate))


def _thumbnail(reformatter: av.video.reformatter.VideoReformatter, frame: av.VideoFrame) -> np.ndarray:
    small = reformatter.reformat(
        frame, width=_THUMBNAIL_SIDE, height=_THUMBNAIL_SIDE, format="gray", interpolation="AREA", threads=1
    )
    return small.to_ndarray()


def _difference(first: np.ndarray, second: np.ndarray) -> float:
    return float(np.abs(first.astype(np.int16) - second.astype(np.int16)).mean()) / 255.0


def _upright_rgb(reformatter: av.video.reformatter.VideoReformatter, frame: av.VideoFrame, side: int) -> np.ndarray:
    scale = min(1.0, side / max(frame.width, frame.height))
    width, height = max(1, round(frame.width * scale)), max(1, round(frame.height * scale))
    rgb = reformatter.reformat(frame, width=width, height=height, format="rgb24", interpolation="AREA", threads=1)
    turns = round(frame.rotation / 90) % 4  # counterclockwise, as a player shows it
    return np.ascontiguousarray(np.rot90(rgb.to_ndarray(), turns))
