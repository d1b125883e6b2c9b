"""A node's contribution as one vector of uint32, and the sum of many decoded again.

Everything a node reports travels inside this vector, so the server only ever learns
sums over the surviving nodes: its weighted model update, its example count, its
training loss and its evaluation counts. A segment is either

- bounded: real values in [-bound, bound], quantized to `bits` bits with an offset,
  so that the sum of up to `max_contributors` of them never wraps modulo 2^32; or
- exact: non-negative integers (counts) up to a per-node limit, summed exactly.

Values outside a bounded segment's range are counted and reported by the node, not
silently clipped (`EncodedContribution.out_of_range`). The server cannot see one node's
values, but it can see a sum that no set of honest nodes could have sent
(`ContributionLayout.impossible_sums`): one node that wraps its values modulo 2^32 shows
there, and the round is discarded rather than the model moved.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

MODULUS_BITS = 32


@dataclass(frozen=True)
class Segment:
    """A named run of `length` values; `bound` None means exact counts.

    `limit`: the largest count one node may send (exact segments; None: `count_limit`).
    `nonnegative`: a bounded segment whose values lie in [0, bound] (losses, accuracies).
    """

    name: str
    length: int
    bound: float | None = None
    limit: int | None = None
    nonnegative: bool = False


@dataclass(frozen=True)
class EncodedContribution:
    """The uint32 vector to mask, and how many values had to be clipped into range."""

    vector: np.ndarray
    out_of_range: int


class ContributionLayout:
    """How named values map onto one uint32 vector, shared by nodes and server."""

    def __init__(self, segments: Sequence[Segment], bits: int, max_contributors: int) -> None:
        if not 1 <= bits <= MODULUS_BITS - 1:
            raise ValueError(f"quantization bits must be in [1, {MODULUS_BITS - 1}], got {bits}")
        if max_contributors < 1 or bits + math.ceil(math.log2(max_contributors + 1)) > MODULUS_BITS:
            raise ValueError(
                f"{bits}-bit values from {max_contributors} nodes can overflow 2^{MODULUS_BITS}; "
                f"use at most {MODULUS_BITS - math.ceil(math.log2(max_contributors + 1))} bits"
            )
        names = [segment.name for segment in segments]
        if len(set(names)) != len(names):
            raise ValueError(f"segment names must be unique: {names}")
        self.segments = tuple(segments)
        self.bits = bits
        self.max_contributors = max_contributors
        self._levels = (1 << bits) - 1
        self._offsets: dict[str, int] = {}
        offset = 0
        for segment in self.segments:
            self._offsets[segment.name] = offset
            offset += segment.length
        self.length = offset

    @property
    def count_limit(self) -> int:
        """The largest exact count a node may send: `max_contributors` of them cannot overflow."""
        return (1 << MODULUS_BITS) // (self.max_contributors + 1) - 1

    def step(self, name: str) -> float:
        """The quantization step of a bounded segment (0 for exact segments)."""
        segment = self._segment(name)
        return 0.0 if segment.bound is None else 2 * segment.bound / self._levels

    def encode(
        self, values: Mapping[str, np.ndarray | float | int], clipped_into: str | None = None
    ) -> EncodedContribution:
        """One node's values as a uint32 vector (every segment must be given).

        With `clipped_into`, that exact one-value segment is not given but filled with
        the count of clipped values, so callers need no second pass to count them.
        """
        vector = np.empty(self.length, dtype=np.uint32)
        clipped = 0
        for segment in self.segments:
            if segment.name == clipped_into:
                continue
            start = self._offsets[segment.name]
            if segment.bound is None:
                vector[start : start + segment.length] = self._counts(segment, _values(segment, values[segment.name]))
                continue
            # In place on one float64 copy: an update of millions of values makes no further temporaries.
            levels = _values(segment, values[segment.name], copy=True)
            clipped += int(np.count_nonzero(levels > segment.bound)) + int(np.count_nonzero(levels < -segment.bound))
            np.clip(levels, -segment.bound, segment.bound, out=levels)
            levels += segment.bound
            levels *= self._levels / (2 * segment.bound)
            np.rint(levels, out=levels)
            vector[start : start + segment.length] = levels
        if clipped_into is not None:
            segment = self._segment(clipped_into)
            start = self._offsets[segment.name]
            vector[start : start + segment.length] = self._counts(segment, _values(segment, clipped))
        return EncodedContribution(vector, clipped)

    def decode_sum(self, total: np.ndarray, contributors: int) -> dict[str, np.ndarray]:
        """Per segment, the sum of `contributors` nodes' values (float64)."""
        if total.shape != (self.length,):
            raise ValueError(f"expected a vector of {self.length} values, got shape {total.shape}")
        sums: dict[str, np.ndarray] = {}
        for segment in self.segments:
            start = self._offsets[segment.name]
            part = total[start : start + segment.length].astype(np.float64)
            if segment.bound is None:
                sums[segment.name] = part
            else:
                sums[segment.name] = part * (2 * segment.bound / self._levels) - contributors * segment.bound
        return sums

    def impossible_sums(self, total: np.ndarray, contributors: int) -> list[str]:
        """Segments whose raw sum no `contributors` honest nodes could have sent.

        Honest values lie in [low, high] levels per node, so their sum lies in
        [contributors * low, contributors * high], far from the wrap-around at 2^32.
        """
        impossible = []
        for segment in self.segments:
            start = self._offsets[segment.name]
            part = total[start : start + segment.length]
            low, high = self._level_range(segment)
            if part.size and (int(part.min()) < contributors * low or int(part.max()) > contributors * high):
                impossible.append(segment.name)
        return impossible

    def sum_error_bound(self, name: str, contributors: int) -> float:
        """Largest absolute error of a decoded sum: half a step per contributor."""
        return contributors * self.step(name) / 2

    def _level_range(self, segment: Segment) -> tuple[int, int]:
        """The smallest and largest level one honest node sends in `segment`."""
        if segment.bound is None:
            return 0, self._limit(segment)
        # Zero encodes to rint(levels / 2), which is at least levels // 2.
        return (self._levels // 2 if segment.nonnegative else 0), self._levels

    def _limit(self, segment: Segment) -> int:
        return self.count_limit if segment.limit is None else min(segment.limit, self.count_limit)

    def _counts(self, segment: Segment, raw: np.ndarray) -> np.ndarray:
        if segment.bound is not None:
            raise ValueError(f"segment {segment.name!r} holds bounded values, not counts")
        limit = self._limit(segment)
        if np.any(raw < 0) or np.any(raw > limit) or np.any(raw != np.round(raw)):
            raise ValueError(f"segment {segment.name!r} holds counts: integers in [0, {limit}]")
        return raw.astype(np.uint32)

    def _segment(self, name: str) -> Segment:
        for segment in self.segments:
            if segment.name == name:
                return segment
        raise KeyError(name)


def _values(segment: Segment, given: np.ndarray | float | int, copy: bool = False) -> np.ndarray:
    raw = (np.array if copy else np.asarray)(given, dtype=np.float64).reshape(-1)
    if raw.size != segment.length:
        raise ValueError(f"segment {segment.name!r} has {segment.length} values, got {raw.size}")
    return raw
