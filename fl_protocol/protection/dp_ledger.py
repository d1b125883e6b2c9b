"""One entry of a differential-privacy ledger, as both sides keep and read it.

Opacus's RDP accountant composes (noise multiplier, sampling rate, steps) entries; the
server's central-DP ledger (in checkpoints) and each node's DP-SGD ledger (in its kit)
store exactly these, and read them back through `ledger_entry`, so a stored ledger that
could not come from a real release is refused, never taken as a smaller budget.
"""

LedgerEntry = tuple[float, float, int]


def ledger_entry(raw: object) -> LedgerEntry:
    """`raw` as a checked entry; `ValueError` for anything a release could not have recorded."""
    if not isinstance(raw, list | tuple) or len(raw) != 3:
        raise ValueError(f"entry {raw!r} is not [noise multiplier, sampling rate, steps]")
    noise, rate, steps = raw
    numbers = all(isinstance(value, int | float) and not isinstance(value, bool) for value in raw)
    if not (numbers and isinstance(steps, int)):
        raise ValueError(f"entry {raw!r} is not [noise multiplier, sampling rate, steps]")
    if not (noise > 0 and 0 < rate <= 1 and steps >= 0):
        raise ValueError(f"entry {raw!r} is impossible")
    return float(noise), float(rate), steps
