"""A unit's long-lived ClientApp executor, in place of Flower's `flower-superexec` on a node.

With `--isolation process` a SuperNode waits for an executor to take each message from its
Runtime API. Flower's SuperExec starts a new `flwr-clientapp` process per message, which
imports the app, PyTorch and the holdings again every time: most of a deployed round. Here
`runner.py` takes the same tasks with the node's SuperExec secret and hands each to a
worker (`worker.py`) that stays up for one app bundle (FAB hash), so imports and loaded
holdings are paid once per run. Both are scripts run by path with `python -P`: they
import Flower alone, never this project's packages, so the modules a worker imports are
the bundle's own, as in `flwr-clientapp`.
"""
