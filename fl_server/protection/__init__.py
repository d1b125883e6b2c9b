"""The server's side of update protection: the aggregation seam and one implementation per mode.

Strategies only ever see the aggregate this seam yields (`aggregation`); each mode
runs its own exchanges with the nodes behind it: `plaintext`, `secagg` (with its
session and run keys), `ckks`, and central DP (`central_dp`) on top of a secure sum.
The shared definitions are `fl_protocol.protection`, the node's side `fl_client.protection`.
"""

from collections.abc import Callable

from fl_protocol.protection.modes import ProtectionMode
from fl_protocol.settings import RunSettings
from fl_server.protection.aggregation import UpdateAggregation
from fl_server.protection.ckks import CkksAggregation
from fl_server.protection.plaintext import PlaintextAggregation
from fl_server.protection.secagg import SecAggAggregation

_MODES: dict[ProtectionMode, Callable[[RunSettings], UpdateAggregation]] = {
    ProtectionMode.plaintext: PlaintextAggregation,
    ProtectionMode.secagg: SecAggAggregation,
    ProtectionMode.ckks: CkksAggregation,
}


def build_update_aggregation(settings: RunSettings) -> UpdateAggregation:
    """The aggregation for `secure.mode` (validated by the settings)."""
    return _MODES[settings.secure.mode](settings)
