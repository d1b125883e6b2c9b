"""A model's named arrays as one flat float64 vector, and back.

Secure aggregation works on vectors; both ends flatten in the order of the global
model's array names, which the server sends, so they always agree.
"""

from collections.abc import Mapping, Sequence

import numpy as np


def flatten(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """Concatenate `arrays` (in their mapping order) into one float64 vector."""
    parts = [np.asarray(array).reshape(-1) for array in arrays.values()]
    vector = np.empty(sum(part.size for part in parts), dtype=np.float64)
    start = 0
    for part in parts:  # cast while copying: no float64 temporary per array
        vector[start : start + part.size] = part
        start += part.size
    return vector


def selected(arrays: Mapping[str, np.ndarray], prefixes: Sequence[str] | None) -> np.ndarray:
    """A boolean mask over the flat vector: values of arrays whose name starts with a prefix.

    `None` selects everything.
    """
    parts = [
        np.full(np.asarray(array).size, prefixes is None or any(name.startswith(p) for p in prefixes))
        for name, array in arrays.items()
    ]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)


def unflatten(vector: np.ndarray, template: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Split `vector` into arrays shaped and typed like `template` (integers rounded)."""
    total = sum(int(np.asarray(array).size) for array in template.values())
    if vector.size != total:
        raise ValueError(f"vector has {vector.size} values, the model {total}")
    result: dict[str, np.ndarray] = {}
    start = 0
    for name, array in template.items():
        array = np.asarray(array)
        part = vector[start : start + array.size].reshape(array.shape)
        if np.issubdtype(array.dtype, np.integer):
            part = np.rint(part)
        # asarray: NumPy turns a 0-d array into a scalar (np.rint, astype), which Flower's Array refuses.
        result[name] = np.asarray(part, dtype=array.dtype)
        start += array.size
    return result
