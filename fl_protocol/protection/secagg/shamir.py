"""Shamir secret sharing of 32-byte secrets over the prime field GF(2^521 - 1).

A secret is the constant term of a random polynomial of degree `threshold - 1`;
each share is the polynomial's value at a non-zero x. Any `threshold` shares give
the secret back by Lagrange interpolation at 0; fewer reveal nothing about it.
"""

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

# A Mersenne prime larger than any 32-byte secret.
PRIME = 2**521 - 1
SECRET_BYTES = 32
SHARE_BYTES = 66  # 521 bits


@dataclass(frozen=True)
class Share:
    """One point (x, y) of the sharing polynomial."""

    x: int
    y: int

    def y_bytes(self) -> bytes:
        return self.y.to_bytes(SHARE_BYTES, "big")


def split(secret: bytes, threshold: int, xs: Sequence[int]) -> list[Share]:
    """Shares of `secret` at the distinct, non-zero points `xs`."""
    if len(secret) != SECRET_BYTES:
        raise ValueError(f"secrets are {SECRET_BYTES} bytes, got {len(secret)}")
    if not 1 <= threshold <= len(xs):
        raise ValueError(f"threshold must be in [1, {len(xs)}], got {threshold}")
    if len(set(xs)) != len(xs) or any(not 0 < x < PRIME for x in xs):
        raise ValueError("share points must be distinct and non-zero")
    coefficients = [int.from_bytes(secret, "big")] + [secrets.randbelow(PRIME) for _ in range(threshold - 1)]
    return [Share(x, _evaluate(coefficients, x)) for x in xs]


def reconstruct(shares: Sequence[Share], threshold: int) -> bytes:
    """The secret from (at least) `threshold` shares with distinct points."""
    chosen = list({share.x: share for share in shares}.values())[:threshold]
    if len(chosen) < threshold:
        raise ValueError(f"need {threshold} shares with distinct points, got {len(chosen)}")
    secret = 0
    for i, share in enumerate(chosen):
        numerator, denominator = 1, 1
        for j, other in enumerate(chosen):
            if i != j:
                numerator = numerator * (-other.x) % PRIME
                denominator = denominator * (share.x - other.x) % PRIME
        secret = (secret + share.y * numerator * pow(denominator, -1, PRIME)) % PRIME
    if secret >= 2 ** (8 * SECRET_BYTES):
        raise ValueError("shares do not belong to one secret")
    return secret.to_bytes(SECRET_BYTES, "big")


def _evaluate(coefficients: Sequence[int], x: int) -> int:
    result = 0
    for coefficient in reversed(coefficients):
        result = (result * x + coefficient) % PRIME
    return result
