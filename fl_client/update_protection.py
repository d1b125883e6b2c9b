"""The one door through which a model update leaves a node.

Every trained update passes `release_update`; it refuses to hand out a plaintext
update unless the run's configuration chose `secure.mode: none` explicitly.
"""

import logging

from flwr.app import ArrayRecord

from fl_protocol.settings import UpdateProtectionSettings

logger = logging.getLogger("fedtriage.client")


class UpdateProtectionError(RuntimeError):
    """A node was asked to release an update in a way its settings do not allow."""


def release_update(update: ArrayRecord, settings: UpdateProtectionSettings) -> ArrayRecord:
    """Return `update` in the form that may leave the node under `settings`."""
    if settings.mode == "none":
        return update
    raise UpdateProtectionError(
        f"secure.mode={settings.mode!r} is not available on this node; refusing to send "
        "a plaintext update"
    )
