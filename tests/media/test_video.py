"""Sampling frames of untrusted videos: cuts found, limits kept, broken and hostile files refused."""

import dataclasses
import http.server
import io
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from media import video
from media.video import KeyFrames, UnreadableVideo, VideoFrame, VideoLimits
from tests.support.videos import (
    ABSURD_SIDE,
    absurd_dimensions,
    corrupt_header,
    scenes_of,
    truncate,
    write_audio_only,
    write_video,
)

FPS = 12
GOP = 12  # the generator's default key frame interval, in frames

LIMITS = VideoLimits(
    max_pixels=4096 * 4096,
    max_declared_frames=100_000,
    max_decoded_frames=100_000,
    scan="all",
    full_scan_max_s=60.0,
    max_frames=100,
    min_spacing_s=0.0,
    max_gap_s=1_000.0,
    scene_threshold=0.05,
    frame_side=64,
)


def _sampled(path: Path, **limits: object) -> list[VideoFrame]:
    with path.open("rb") as stream, KeyFrames(stream, dataclasses.replace(LIMITS, **limits)) as frames:
        return list(frames)


def _refusal(path: Path, **limits: object) -> str:
    with pytest.raises(UnreadableVideo) as refused:
        _sampled(path, **limits)
    return refused.value.reason


def _times(frames: list[VideoFrame]) -> list[float]:
    return [frame.time_s for frame in frames]


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


# --- sampling ---------------------------------------------------------------------------


def test_a_full_scan_finds_each_cut_within_one_frame(tmp_path: Path) -> None:
    cuts = write_video(tmp_path / "v.mp4", scenes_of(18, 30, 24, 36), fps=FPS)

    times = _times(_sampled(tmp_path / "v.mp4", scan="all"))

    assert times[0] == 0.0
    assert len(times) == 1 + len(cuts)
    assert all(abs(time - cut) <= 1 / FPS for time, cut in zip(times[1:], cuts))


def test_a_key_frame_scan_finds_each_cut_within_the_key_frame_interval(tmp_path: Path) -> None:
    cuts = write_video(tmp_path / "v.mp4", scenes_of(18, 30, 24, 36), fps=FPS, gop=GOP)

    times = _times(_sampled(tmp_path / "v.mp4", scan="key"))

    assert times[0] == 0.0
    assert len(times) == 1 + len(cuts)
    assert all(0 <= time - cut <= GOP / FPS for time, cut in zip(times[1:], cuts))


def test_a_key_frame_scan_decodes_key_frames_only(tmp_path: Path) -> None:
    write_video(tmp_path / "v.mp4", scenes_of(48), fps=FPS, gop=GOP)  # one scene: a key frame every second

    times = _times(_sampled(tmp_path / "v.mp4", scan="key", max_gap_s=0.01))

    assert times == pytest.approx([0.0, 1.0, 2.0, 3.0])


def test_a_raw_h264_stream_without_timestamps_is_scanned_whole_to_time_its_frames(tmp_path: Path) -> None:
    write_video(tmp_path / "v.h264", scenes_of(12, 12), fps=FPS)

    assert _times(_sampled(tmp_path / "v.h264", scan="key")) == _times(_sampled(tmp_path / "v.h264", scan="all"))


@pytest.mark.parametrize("scan", ["all", "key"])
def test_the_first_frame_is_sampled_even_when_nothing_counts_as_a_cut(tmp_path: Path, scan: str) -> None:
    write_video(tmp_path / "v.mp4", scenes_of(12, 12, 12), fps=FPS)

    frames = _sampled(tmp_path / "v.mp4", scan=scan, scene_threshold=1.0)

    assert _times(frames) == [0.0]
    assert frames[0].rgb.dtype == np.uint8 and frames[0].rgb.shape == (48, 64, 3)  # 160x120, long side 64


def test_samples_keep_the_minimum_spacing_through_quick_cuts(tmp_path: Path) -> None:
    write_video(tmp_path / "v.mp4", scenes_of(*[3] * 16), fps=FPS)  # a cut every 0.25 s

    times = _times(_sampled(tmp_path / "v.mp4", min_spacing_s=0.6))

    assert len(times) > 2
    assert all(later - earlier >= 0.6 for earlier, later in zip(times, times[1:]))


def test_no_more_than_max_frames_are_sampled(tmp_path: Path) -> None:
    # Raw H.264 declares no duration, so nothing but the cap spaces its ten cuts.
    write_video(tmp_path / "v.h264", scenes_of(*[6] * 10), fps=FPS)

    assert len(_sampled(tmp_path / "v.h264")) == 10
    assert len(_sampled(tmp_path / "v.h264", max_frames=3)) == 3


def test_a_long_static_video_is_still_sampled_every_max_gap(tmp_path: Path) -> None:
    write_video(tmp_path / "v.mp4", scenes_of(120), fps=6, size=(64, 48))  # one scene, 20 s

    times = _times(_sampled(tmp_path / "v.mp4", max_gap_s=4.0))

    assert times == pytest.approx([0.0, 4.0, 8.0, 12.0, 16.0])


def test_the_cap_spreads_over_a_long_declared_duration(tmp_path: Path) -> None:
    # Five minutes at 2 fps, a cut every 10 s: five samples at the first five cuts would end
    # at 40 s; spaced by duration / max_frames (60 s) they cover the film.
    write_video(tmp_path / "v.mp4", scenes_of(*[20] * 30), fps=2, size=(64, 48), gop=20)

    with (tmp_path / "v.mp4").open("rb") as stream:
        with KeyFrames(stream, dataclasses.replace(LIMITS, scan="key", max_frames=5, min_spacing_s=1.0)) as frames:
            duration = frames.duration_s
            times = _times(list(frames))

    assert duration == pytest.approx(300.0)
    assert times == pytest.approx([0.0, 60.0, 120.0, 180.0, 240.0])


def test_a_portrait_phone_video_comes_out_upright(tmp_path: Path) -> None:
    # Stored landscape with a display rotation of 90 degrees counterclockwise, as phones write
    # portrait video; the generator's gradient brightens to the right, so upright it brightens upwards.
    write_video(tmp_path / "v.mp4", [(6, (200, 200, 200))], rotation=90)

    with (tmp_path / "v.mp4").open("rb") as stream, KeyFrames(stream, LIMITS) as frames:
        stored = (frames.width, frames.height)
        rgb = next(iter(frames)).rgb

    assert stored == (160, 120)
    assert rgb.shape == (64, 48, 3)
    assert rgb[:8].mean() > rgb[-8:].mean() + 40


@pytest.mark.parametrize(
    ("name", "codec"),
    [
        ("v.mov", "libx264"),
        ("v.3gp", "libx264"),
        ("v.mkv", "libx265"),
        ("v.webm", "libvpx"),
        ("v.avi", "mjpeg"),
        ("v.ts", "libx264"),
        ("v.mpg", "mpeg2video"),
        ("v.wmv", "wmv2"),
        ("v.flv", "flv"),
        ("v.h264", "libx264"),
    ],
)
def test_ordinary_phone_camera_and_web_videos_are_read(tmp_path: Path, name: str, codec: str) -> None:
    cuts = write_video(tmp_path / name, scenes_of(12, 12), fps=FPS, codec=codec)

    times = _times(_sampled(tmp_path / name, scan="key"))

    assert len(times) == 2
    if not name.endswith(".h264"):  # raw H.264 carries no times (frames are timed by index / a guessed rate)
        assert times[1] - times[0] == pytest.approx(cuts[0], abs=1 / FPS)  # MPEG-TS and -PS start late


def test_decoding_starts_no_threads(tmp_path: Path) -> None:
    # Triage runs its model beside the decoder: FFmpeg's default would start a thread per core.
    if not Path("/proc/self/task").is_dir():
        pytest.skip("counting threads needs Linux /proc")
    write_video(tmp_path / "v.mp4", scenes_of(24, 24), size=(320, 240))
    before = _threads()

    with (tmp_path / "v.mp4").open("rb") as stream, KeyFrames(stream, LIMITS) as frames:
        during = [_threads() for _ in frames]

    assert max(during) == before


# --- limits -----------------------------------------------------------------------------


def test_absurd_declared_dimensions_are_refused_before_decoding(tmp_path: Path) -> None:
    path = absurd_dimensions(tmp_path / "v.mkv")
    with av.open(str(path)) as container:  # the patch took: FFmpeg reads the declared size
        assert container.streams.video[0].codec_context.width == ABSURD_SIDE

    with path.open("rb") as stream, pytest.raises(UnreadableVideo) as refused:
        KeyFrames(stream, LIMITS)  # construction alone: no frame is decoded

    assert refused.value.reason == "video too large (declared dimensions)"


@pytest.mark.parametrize("name", ["v.mp4", "v.mkv"])  # MP4 declares a frame count, Matroska a duration
def test_a_declared_frame_count_over_the_limit_is_refused(tmp_path: Path, name: str) -> None:
    write_video(tmp_path / name, scenes_of(30, 30), fps=FPS)

    with (tmp_path / name).open("rb") as stream, KeyFrames(stream, LIMITS) as frames:
        assert frames.declared_frames == 60
    assert _refusal(tmp_path / name, max_declared_frames=59) == "video too long (declared frame count)"


def test_the_scan_stops_after_max_decoded_frames_and_says_so(tmp_path: Path) -> None:
    write_video(tmp_path / "v.mp4", scenes_of(6, 6, 6, 6), fps=FPS)

    with (tmp_path / "v.mp4").open("rb") as stream:
        with KeyFrames(stream, dataclasses.replace(LIMITS, max_decoded_frames=10)) as frames:
            times = _times(list(frames))
            stopped_early = frames.stopped_early

    assert times == pytest.approx([0.0, 0.5])  # the cut at frame 12 is never reached
    assert stopped_early == "scan stopped after 10 frames"


def test_a_complete_scan_did_not_stop_early(tmp_path: Path) -> None:
    write_video(tmp_path / "v.mp4", scenes_of(6, 6), fps=FPS)

    with (tmp_path / "v.mp4").open("rb") as stream, KeyFrames(stream, LIMITS) as frames:
        list(frames)
        assert frames.stopped_early is None


def test_a_larger_picture_a_raw_stream_hides_after_its_header_is_refused_by_the_decoder(tmp_path: Path) -> None:
    # Raw H.264 declares only its first picture size: a later one may be any size.
    write_video(tmp_path / "small.h264", scenes_of(12), size=(160, 120))
    write_video(tmp_path / "large.h264", scenes_of(12), size=(640, 480))
    path = tmp_path / "v.h264"
    path.write_bytes((tmp_path / "small.h264").read_bytes() + (tmp_path / "large.h264").read_bytes())

    with path.open("rb") as stream, KeyFrames(stream, dataclasses.replace(LIMITS, max_pixels=2 * 160 * 120)) as frames:
        assert (frames.width, frames.height) == (160, 120)
        sampled: list[VideoFrame] = []
        with pytest.raises(UnreadableVideo) as refused:
            sampled.extend(frames)

    assert refused.value.reason == "truncated or corrupt video"
    assert len(sampled) == 1 and sampled[0].rgb.shape == (48, 64, 3)


# --- broken files -----------------------------------------------------------------------


@pytest.mark.parametrize("scan", ["all", "key"])
def test_a_truncated_video_yields_the_frames_before_the_cut_then_fails(tmp_path: Path, scan: str) -> None:
    # MP4 with its index first (faststart): the demuxer knows the frames that are missing.
    write_video(tmp_path / "v.mp4", scenes_of(24, 24, 24), fps=FPS)
    whole = _times(_sampled(tmp_path / "v.mp4", scan=scan, max_gap_s=0.5))
    cut = truncate(tmp_path / "v.mp4", 0.5)

    sampled: list[VideoFrame] = []
    with cut.open("rb") as stream, KeyFrames(stream, dataclasses.replace(LIMITS, scan=scan, max_gap_s=0.5)) as frames:
        with pytest.raises(UnreadableVideo) as refused:
            sampled.extend(frames)

    assert refused.value.reason == "truncated or corrupt video"
    assert len(sampled) >= 2  # frames the decoder still held when it failed were drained, in either scan
    assert _times(sampled) == whole[: len(sampled)]


def test_a_truncated_matroska_video_ends_cleanly_after_the_frames_it_has(tmp_path: Path) -> None:
    # Matroska (like MPEG-TS) just ends where the data ends: FFmpeg sees no damage.
    write_video(tmp_path / "v.mkv", scenes_of(24, 24, 24), fps=FPS)
    whole = _times(_sampled(tmp_path / "v.mkv", max_gap_s=0.5))

    sampled = _times(_sampled(truncate(tmp_path / "v.mkv", 0.5), max_gap_s=0.5))

    assert 2 <= len(sampled) < len(whole)
    assert sampled == whole[: len(sampled)]


def test_a_phone_video_cut_before_its_index_is_refused(tmp_path: Path) -> None:
    # Phones write the MP4 index last: an interrupted copy has none.
    write_video(tmp_path / "v.mp4", scenes_of(24, 24), faststart=False)

    assert _refusal(truncate(tmp_path / "v.mp4", 0.5)) == "corrupt or unknown container"


def test_a_video_with_a_corrupt_header_is_refused(tmp_path: Path) -> None:
    write_video(tmp_path / "v.mp4", scenes_of(12, 12))

    assert _refusal(corrupt_header(tmp_path / "v.mp4")) == "corrupt or unknown container"


def test_an_image_is_not_a_video(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 30, 30)).save(buffer, format="PNG")
    (tmp_path / "v.mp4").write_bytes(buffer.getvalue())

    assert _refusal(tmp_path / "v.mp4") == "not a video"


@pytest.mark.parametrize("content", [b"", bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8))])
def test_random_bytes_and_an_empty_file_are_refused(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "v.mp4").write_bytes(content)

    assert _refusal(tmp_path / "v.mp4") == "corrupt or unknown container"


def test_audio_alone_holds_no_video(tmp_path: Path) -> None:
    assert _refusal(write_audio_only(tmp_path / "v.m4a")) == "no video stream"


def test_a_rare_codec_is_refused(tmp_path: Path) -> None:
    write_video(tmp_path / "v.mkv", scenes_of(6), codec="ffv1")

    assert _refusal(tmp_path / "v.mkv") == "unsupported codec"


# --- hostile files: nothing outside the file is ever opened ----------------------------


class _Recorder(http.server.BaseHTTPRequestHandler):
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        self.send_error(404)

    def log_message(self, message: str, *args: object) -> None:
        pass


@contextmanager
def _server() -> Iterator[tuple[int, list[str]]]:
    """A real HTTP server on loopback; yields its port and the paths requested from it."""
    requests: list[str] = []
    handler = type("Handler", (_Recorder,), {"requests": requests})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def _fifo(path: Path) -> Iterator[threading.Event]:
    """A named pipe at `path`; the event is set once anything opens it for reading (a writer's
    open blocks until then), so even a look at the file is seen, not only a read."""
    os.mkfifo(path)
    opened = threading.Event()

    def wait_for_reader() -> None:
        with path.open("wb"):
            opened.set()

    writer = threading.Thread(target=wait_for_reader, daemon=True)
    writer.start()
    try:
        yield opened
    finally:
        if not opened.is_set():  # release the writer: open the pipe ourselves
            os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
        writer.join(timeout=5)


def _playlist(path: Path, port: int) -> Path:
    path.write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n"
        f"#EXTINF:10.0,\nhttp://127.0.0.1:{port}/x.ts\n#EXT-X-ENDLIST\n"
    )
    return path


def _concat_script(path: Path, target: str) -> Path:
    path.write_text(f"ffconcat version 1.0\nfile '{target}'\n")
    return path


# FFmpeg 8 probes a playlist as HLS only by an .m3u8 or .m3u name; under another name it is no
# container at all.
@pytest.mark.parametrize(
    ("name", "expected"), [("clip.m3u8", "not a video"), ("clip.mp4", "corrupt or unknown container")]
)
def test_an_hls_playlist_never_reaches_its_server(tmp_path: Path, name: str, expected: str) -> None:
    with _server() as (port, requests):
        reason = _refusal(_playlist(tmp_path / name, port))

    assert requests == []
    assert reason == expected


def test_a_concat_script_never_opens_the_file_it_names(tmp_path: Path) -> None:
    with _fifo(tmp_path / "target.mp4") as opened:
        reason = _refusal(_concat_script(tmp_path / "clip.mp4", "target.mp4"))
        assert not opened.wait(timeout=0.5)

    assert reason == "not a video"


def test_an_image_sequence_pattern_never_opens_the_files_it_matches(tmp_path: Path) -> None:
    # FFmpeg 8's image2 reads only the file object it is given, whitelists or not: this guards
    # the day it does not.
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    (tmp_path / "frame%03d.png").write_bytes(buffer.getvalue())

    with _fifo(tmp_path / "frame001.png") as opened:
        reason = _refusal(tmp_path / "frame%03d.png")
        assert not opened.wait(timeout=0.5)

    assert reason == "not a video"


# The tests above could pass for the wrong reason (FFmpeg declining the file by itself): these
# show that each attack is live with PyAV's defaults, and that each of the module's whitelists
# alone stops it.
_FORMATS_ONLY = {key: value for key, value in video._OPEN_OPTIONS.items() if key == "format_whitelist"}
_PROTOCOLS_ONLY = {key: value for key, value in video._OPEN_OPTIONS.items() if key == "protocol_whitelist"}


@pytest.mark.parametrize(("options", "reached"), [(None, True), (_FORMATS_ONLY, False), (_PROTOCOLS_ONLY, False)])
def test_a_playlist_reaches_its_server_unless_a_whitelist_stops_it(
    tmp_path: Path, options: dict[str, str] | None, reached: bool
) -> None:
    with _server() as (port, requests):
        with _playlist(tmp_path / "clip.m3u8", port).open("rb") as stream, pytest.raises(av.error.FFmpegError):
            av.open(stream, mode="r", container_options=options)

    assert bool(requests) is reached


@pytest.mark.parametrize(("options", "reached"), [(None, True), (_FORMATS_ONLY, False), (_PROTOCOLS_ONLY, False)])
def test_a_concat_script_opens_its_file_unless_a_whitelist_stops_it(
    tmp_path: Path, options: dict[str, str] | None, reached: bool
) -> None:
    with _fifo(tmp_path / "target.mp4") as opened:
        with _concat_script(tmp_path / "clip.mp4", "target.mp4").open("rb") as stream:
            with pytest.raises(av.error.FFmpegError):
                av.open(stream, mode="r", container_options=options)
        assert opened.wait(timeout=5 if reached else 0.5) is reached


def test_every_allowed_container_is_a_demuxer_ffmpeg_has() -> None:
    for name in video._OPEN_OPTIONS["format_whitelist"].split(","):
        assert av.format.ContainerFormat(name, "r").name  # raises for a name FFmpeg does not know
