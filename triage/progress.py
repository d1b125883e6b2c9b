"""A one-line progress display with rate and ETA, for long triage runs."""

import sys
import time
from typing import TextIO


class Progress:
    """Counts finished files and redraws one status line at most twice a second."""

    def __init__(self, total: int, enabled: bool, stream: TextIO | None = None) -> None:
        self._total = total
        self._enabled = enabled
        self._stream = stream or sys.stderr
        self._done = 0
        self._started = time.monotonic()
        self._drawn = 0.0

    def advance(self, count: int) -> None:
        self._done += count
        now = time.monotonic()
        if self._enabled and now - self._drawn >= 0.5:
            self._drawn = now
            self._draw(now)

    def close(self) -> None:
        if self._enabled:
            self._draw(time.monotonic())
            print(file=self._stream, flush=True)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self._started, 1e-9)
        rate = self._done / elapsed
        left = max(self._total - self._done, 0)
        eta = _clock(left / rate) if rate > 0 else "-"
        share = 100.0 * self._done / self._total if self._total else 100.0
        line = f"\rtriage {self._done}/{self._total} files ({share:.1f}%)  {rate:.0f} files/s  ETA {eta}   "
        self._stream.write(line)
        self._stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
