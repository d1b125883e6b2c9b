"""The SecAgg+ communication graph: each node masks with, and shares with, k neighbours.

A Harary-style k-regular graph over a seeded shuffle of the participants (Bell et
al. 2020): node at position p neighbours positions p +- 1 .. p +- k/2. Both sides
compute it from the participant list and the round's public seed, so it never needs
to be sent. With k >= n - 1 it is the complete graph (classic SecAgg).
"""

import random
from collections.abc import Sequence


def neighbours(participants: Sequence[int], degree: int | None, seed: bytes) -> dict[int, list[int]]:
    """Node id -> sorted neighbour ids (a node is never its own neighbour)."""
    nodes = sorted(set(participants))
    n = len(nodes)
    if degree is None or degree >= n - 1:
        return {node: [other for other in nodes if other != node] for node in nodes}
    if degree < 2 or degree % 2:
        raise ValueError(f"the neighbourhood size must be even and >= 2, got {degree}")
    order = list(nodes)
    random.Random(seed).shuffle(order)  # public, seeded layout, not a secret
    position = {node: index for index, node in enumerate(order)}
    graph: dict[int, list[int]] = {}
    for node in nodes:
        p = position[node]
        graph[node] = sorted({order[(p + step) % n] for step in range(-degree // 2, degree // 2 + 1) if step})
    return graph
