"""Update protection as both sides agree on it: the modes, the message types of every
protocol stage, and the building blocks of SecAgg+ and CKKS.

The server's side is `fl_server.protection`, the node's `fl_client.protection`
(the same split as Flower's `common`/`server`/`client` secure aggregation). Nothing
here is imported on package import: CKKS pulls in TenSEAL only where it is used.
"""
