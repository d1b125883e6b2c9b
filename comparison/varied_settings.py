"""The settings that tell compared runs apart: a sweep's jobs share a run name, not their settings.

Runs log their whole resolved configuration as params (`fl_server.tracking.run_params`);
the keys whose values differ between runs are what the sweep varied. Bookkeeping that
differs for every run (its output folder, kit, tracking) says nothing about the result.
"""

from collections.abc import Mapping, Sequence

_BOOKKEEPING = ("output_dir", "kit", "tracking.", "checkpoint.")
_VALUE_LENGTH = 32


def varied_keys(params: Sequence[Mapping[str, str]]) -> tuple[str, ...]:
    """Keys that every run with params has, with more than one value among them, sorted."""
    logged = [run for run in params if run]
    if len(logged) < 2:
        return ()
    shared = set.intersection(*(set(run) for run in logged))
    return tuple(sorted(
        name for name in shared
        if not name.startswith(_BOOKKEEPING) and len({run[name] for run in logged}) > 1
    ))


def shared_values(params: Sequence[Mapping[str, str]], keys: Sequence[str]) -> dict[str, str]:
    """Of `keys`, those every run with params logged with one and the same value."""
    logged = [run for run in params if run]
    if not logged:
        return {}
    return {
        name: logged[0][name] for name in keys
        if all(name in run for run in logged) and len({run[name] for run in logged}) == 1
    }


def describe(params: Mapping[str, str], keys: Sequence[str]) -> str:
    """`key=value, ...` for `keys` (values shortened); empty when the run logged none of them."""
    return ", ".join(f"{name}={_short(params[name])}" for name in keys if name in params)


def _short(value: str) -> str:
    return value if len(value) <= _VALUE_LENGTH else value[: _VALUE_LENGTH - 1] + "…"
