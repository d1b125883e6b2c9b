"""Reader processes that no single file can take down with the run.

A file from a seized device may crash a decoder (a flaw in FFmpeg or an image codec
ends the process) or keep it busy without end; each reader stops itself when a file
takes longer than `file_time_limit_s` (`triage.reader`). Either way the pool breaks and
every chunk in flight with it. The chunks in flight are then read again one file at a
time in a fresh pool, so the file that breaks it again is known: it is listed as
unreadable with the reason, its outcome is journalled like any other (a resumed run
does not read it again), and the rest of the device is triaged as usual.
"""

import multiprocessing
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from triage.journal import UNREADABLE, FileOutcome, PendingFile
from triage.reader import Prepared, ReaderContext, prepare_chunk, start_reader


class ReaderPool:
    """`workers` reader processes, replaced whenever one of them dies."""

    def __init__(self, workers: int, context: ReaderContext) -> None:
        self._workers = workers
        self._context = context
        self._pool = self._start()

    def __enter__(self) -> "ReaderPool":
        return self

    def __exit__(self, *_: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def in_order(self, chunks: Iterator[list[PendingFile]], window: int) -> Iterator[Prepared]:
        """Every file of `chunks` read, in order, with at most `window` chunks in flight."""
        in_flight: deque[tuple[list[PendingFile], Future[list[Prepared]]]] = deque()
        for chunk in chunks:
            in_flight.append((chunk, self._submit(chunk)))
            if len(in_flight) >= window:
                yield from self._next(in_flight)
        while in_flight:
            yield from self._next(in_flight)

    def _next(self, in_flight: deque[tuple[list[PendingFile], Future[list[Prepared]]]]) -> list[Prepared]:
        chunk, future = in_flight.popleft()
        try:
            return future.result()
        except BrokenProcessPool:
            stranded = [chunk, *(waiting for waiting, _ in in_flight)]
            in_flight.clear()
            self._restart()
            return [self._alone(pending) for waiting in stranded for pending in waiting]

    def _alone(self, pending: PendingFile) -> Prepared:
        """One file read by itself: if the pool breaks now, this file broke it."""
        started = time.monotonic()
        try:
            (prepared,) = self._submit([pending]).result()
            return prepared
        except BrokenProcessPool:
            self._restart()
        limit = self._context.time_limit_s
        if time.monotonic() - started >= limit:
            reason = f"reading took longer than file_time_limit_s ({limit:g} s); stopped"
        else:
            reason = "crashed the reader process (a decoder failed on it); not read again"
        return Prepared(FileOutcome(pending.seq, UNREADABLE, reason))

    def _submit(self, chunk: list[PendingFile]) -> Future[list[Prepared]]:
        try:
            return self._pool.submit(prepare_chunk, chunk)
        except BrokenProcessPool:  # broken by a chunk still to be collected: it is found then
            failed: Future[list[Prepared]] = Future()
            failed.set_exception(BrokenProcessPool("a reader process died"))
            return failed

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=multiprocessing.get_context("fork"),
            initializer=start_reader,
            initargs=(self._context,),
        )

    def _restart(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = self._start()
