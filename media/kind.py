"""A file's kind, told before decoding: videos by their first bytes, else by their name."""

from pathlib import PurePosixPath

_VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".wmv", ".flv", ".webm", ".mpg", ".mpeg", ".3gp", ".ts", ".vob", ".asf"}
)


def is_video(relative_path: str, head: bytes) -> bool:
    """True for a video container, judged by its first bytes, or else its name."""
    if len(head) >= 12 and head[4:8] == b"ftyp" and not head[8:12].startswith((b"avif", b"heic", b"heix", b"mif1")):
        return True  # ISO base media (mp4, mov, 3gp); AVIF/HEIF images share the box
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return True
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # Matroska / WebM
        return True
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):  # ASF / WMV
        return True
    if head.startswith((b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3")):  # MPEG program / video stream
        return True
    if head.startswith(b"FLV"):
        return True
    return PurePosixPath(relative_path).suffix.lower() in _VIDEO_SUFFIXES and not _looks_like_image(head)


def _looks_like_image(head: bytes) -> bool:
    return head.startswith((b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM")) or head[8:12] == b"WEBP"
