"""The node's side of update protection: the release gate of plaintext mode, the SecAgg+
and CKKS stages, the contribution a protected node encodes, and local DP-SGD.

`attach_protection` puts it on a ClientApp once; the shared definitions are
`fl_protocol.protection`, the server's side `fl_server.protection`.
"""

from fl_client.protection.dispatch import attach_protection, node_protection
from fl_client.protection.work import LocalTraining, NodeWork

__all__ = ["LocalTraining", "NodeWork", "attach_protection", "node_protection"]
