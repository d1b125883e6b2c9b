"""Which `UpdateAggregation` serves `secure.mode`."""

from fl_protocol.settings import RunSettings
from fl_server.ckks_aggregation import CkksAggregation
from fl_server.plaintext_aggregation import PlaintextAggregation
from fl_server.secure_aggregation import SecAggAggregation
from fl_server.update_aggregation import UpdateAggregation


def build_update_aggregation(settings: RunSettings) -> UpdateAggregation:
    """The aggregation for `secure.mode` (validated by the settings)."""
    mode = settings.secure.mode
    if mode == "none":
        return PlaintextAggregation()
    if mode == "secagg":
        return SecAggAggregation(settings)
    if mode == "ckks":
        return CkksAggregation(settings)
    raise ValueError(f"secure.mode: unknown mode {mode!r}")
