"""Files that show the same picture: groups of near-duplicate PDQ hashes, so an examiner reviews one of each.

A seized device holds the same picture many times over: resized, re-encoded, sent
through chat apps, as a video's frames. Two files whose PDQ hashes (any of them, for
a video's key frames) are within `max_distance` bits of each other are near
duplicates, and near duplicates of near duplicates belong to the same group too
(single linkage): the group is what the examiner sees as one picture.
"""

from collections.abc import Iterable, Iterator

import numpy as np

from media.pdq import PDQ_BITS, PDQ_HEX, pdq_words

# Hashes compared at once: a tile of rows x columns of the pairwise distances, small
# enough to stay in cache; memory does not grow with the square of the hashes.
_TILE_ROWS = 64
_TILE_COLUMNS = 4096
# Near pairs are joined into groups in batches of at most this many.
_EDGE_BATCH = 1 << 20


def group_near_duplicates(items: Iterable[tuple[int, str]], max_distance: int) -> dict[int, int]:
    """The group of every file that is a near duplicate of at least one other file.

    `items` are (file seq, PDQ hex) pairs; a file may come several times (a video's key
    frames). The result maps each grouped file's seq to its group's key, the smallest
    seq in the group; files near no other file are absent, and a file whose own frames
    are near each other is not grouped by that alone. Meta recommends `max_distance` 31.

    Leave out hashes of low quality (Meta: below 50) before calling: blank frames and
    flat pictures are all near each other and would chain unrelated files together.
    """
    if isinstance(max_distance, bool) or not isinstance(max_distance, int) or not 0 <= max_distance <= PDQ_BITS:
        raise ValueError(f"max_distance must be an integer in 0..{PDQ_BITS}, got {max_distance!r}")
    # One node per distinct hash (an exact duplicate is found by the dict, not compared),
    # then one per file: a file joins each of its hashes, near hashes join each other.
    hash_node: dict[str, int] = {}
    file_node: dict[int, int] = {}
    occurrences: list[tuple[int, int]] = []
    for seq, value in items:
        if not isinstance(value, str) or not PDQ_HEX.fullmatch(value):
            raise ValueError(f"file {seq}: not a PDQ hash (64 hex characters): {value!r:.80}")
        occurrences.append((hash_node.setdefault(value.lower(), len(hash_node)), seq))
    hashes = len(hash_node)
    for _, seq in occurrences:
        file_node.setdefault(seq, hashes + len(file_node))
    if len(file_node) < 2:
        return {}

    groups = _Groups(hashes + len(file_node))
    groups.join(
        np.fromiter((node for node, _ in occurrences), dtype=np.int64, count=len(occurrences)),
        np.fromiter((file_node[seq] for _, seq in occurrences), dtype=np.int64, count=len(occurrences)),
    )
    for near_a, near_b in _near_pairs(pdq_words(list(hash_node)), max_distance):
        groups.join(near_a, near_b)

    seqs = np.fromiter(file_node, dtype=np.int64, count=len(file_node))
    roots = groups.roots(np.arange(hashes, hashes + len(file_node), dtype=np.int64))
    # A group is a root shared by two files or more; its key is its smallest seq.
    _, inverse, counts = np.unique(roots, return_inverse=True, return_counts=True)
    smallest = np.full(len(counts), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(smallest, inverse, seqs)
    grouped = counts[inverse] >= 2
    return dict(zip(seqs[grouped].tolist(), smallest[inverse][grouped].tolist(), strict=True))


def _near_pairs(words: np.ndarray, max_distance: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Index pairs (i < j) of hashes at most `max_distance` apart, in batches.

    Every pair is compared, a tile at a time. The first two words (128 bits) are
    counted for every pair, the other two only for the rare pairs not already too far.
    """
    count = len(words)
    columns = [np.ascontiguousarray(words[:, k]) for k in range(words.shape[1])]
    tile = _Tile()
    batch_a: list[np.ndarray] = []
    batch_b: list[np.ndarray] = []
    batched = 0
    for row_start in range(0, count, _TILE_ROWS):
        rows = slice(row_start, min(row_start + _TILE_ROWS, count))
        for column_start in range(row_start, count, _TILE_COLUMNS):
            cols = slice(column_start, min(column_start + _TILE_COLUMNS, count))
            half = tile.half_distances(columns[0][rows], columns[1][rows], columns[0][cols], columns[1][cols])
            if half.min() > max_distance:  # most tiles: no pair near enough
                continue
            local_a, local_b = np.nonzero(half <= max_distance)
            upper = local_a + row_start < local_b + column_start
            local_a, local_b = local_a[upper], local_b[upper]
            a, b = local_a + row_start, local_b + column_start
            distance = half[local_a, local_b].astype(np.uint16)
            for column in columns[2:]:
                distance += np.bitwise_count(column[a] ^ column[b])
            near = distance <= max_distance
            batch_a.append(a[near])
            batch_b.append(b[near])
            batched += int(np.count_nonzero(near))
            if batched >= _EDGE_BATCH:
                yield np.concatenate(batch_a), np.concatenate(batch_b)
                batch_a, batch_b, batched = [], [], 0
    if batched:
        yield np.concatenate(batch_a), np.concatenate(batch_b)


class _Tile:
    """Buffers for one tile of distances, reused so that no tile allocates."""

    def __init__(self) -> None:
        self._xor = np.empty((_TILE_ROWS, _TILE_COLUMNS), dtype=np.uint64)
        self._bits = np.empty((_TILE_ROWS, _TILE_COLUMNS), dtype=np.uint8)
        self._half = np.empty((_TILE_ROWS, _TILE_COLUMNS), dtype=np.uint8)

    def half_distances(self, row0: np.ndarray, row1: np.ndarray, col0: np.ndarray, col1: np.ndarray) -> np.ndarray:
        """Distances over the first 128 bits, rows x columns, as uint8 (a view into the buffers)."""
        shape = (len(row0), len(col0))
        xor, bits, half = (buffer[: shape[0], : shape[1]] for buffer in (self._xor, self._bits, self._half))
        np.bitwise_xor(row0[:, np.newaxis], col0, out=xor)
        np.bitwise_count(xor, out=half)
        np.bitwise_xor(row1[:, np.newaxis], col1, out=xor)
        np.bitwise_count(xor, out=bits)
        half += bits
        return half


class _Groups:
    """Union-find over integer nodes, joined a whole array of pairs at a time."""

    def __init__(self, size: int) -> None:
        self._parent = np.arange(size, dtype=np.int64)

    def roots(self, nodes: np.ndarray) -> np.ndarray:
        roots = self._parent[nodes]
        while True:
            above = self._parent[roots]
            if np.array_equal(above, roots):
                return roots
            roots = above

    def join(self, a: np.ndarray, b: np.ndarray) -> None:
        """Put each a[i] in the same group as b[i]."""
        while len(a):
            root_a, root_b = self.roots(a), self.roots(b)
            apart = root_a != root_b
            a, b = a[apart], b[apart]
            low = np.minimum(root_a[apart], root_b[apart])
            high = np.maximum(root_a[apart], root_b[apart])
            # Each root goes under the lowest root it meets; pairs that lose out here
            # are joined on the next pass, since their roots have moved.
            np.minimum.at(self._parent, high, low)
            # Halve the paths, so that the next pass finds roots sooner.
            self._parent = self._parent[self._parent]
