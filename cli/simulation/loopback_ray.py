"""Start Ray for the simulation engine on loopback only, with no way to phone home.

Even with usage stats disabled, Ray 2.55 reaches beyond the machine: the driver finds
its node address by "connecting" a UDP socket to 8.8.8.8, its daemons then talk over
that non-loopback address, and the dashboard process (started even with the
dashboard off) probes cloud metadata services (169.254.169.254,
metadata.google.internal) on start-up, with no setting to stop it.
So Ray is started here, before Flower's engine would start it:
- as a single-machine Ray pinned to 127.0.0.1 (`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`,
  set from `fedtriage.environment` before `ray` is imported), which removes the
  8.8.8.8 probe and the non-loopback node address;
- with its daemons' HTTP proxy pointed at a closed loopback port, so the metadata
  probes (made with `requests`) fail locally instead of leaving the machine. Loopback
  traffic bypasses the proxy, and this process's own environment is restored once
  Ray's daemons have started, so MLflow and the ServerApp are unaffected.
`tests/test_simulation_e2e.py` traces every connect() of a whole run to prove it.
"""

import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import ray

LOOPBACK = "127.0.0.1"
# Nothing listens on the discard port of loopback: a proxied request fails at once.
_CLOSED_LOOPBACK_PROXY = f"http://{LOOPBACK}:9"
_DAEMON_ENVIRONMENT = {
    "HTTP_PROXY": _CLOSED_LOOPBACK_PROXY,
    "HTTPS_PROXY": _CLOSED_LOOPBACK_PROXY,
    "http_proxy": _CLOSED_LOOPBACK_PROXY,
    "https_proxy": _CLOSED_LOOPBACK_PROXY,
    "NO_PROXY": f"localhost,{LOOPBACK},::1",
    "no_proxy": f"localhost,{LOOPBACK},::1",
}


@contextmanager
def loopback_ray(num_cpus: int, logging_level: str) -> Iterator[None]:
    """Ray on loopback for the duration of the block (Flower's Ray backend uses it)."""
    if ray.is_initialized():
        ray.shutdown()
    # As Flower's backend does: workers import the app from the driver's sys.path.
    pythonpath = os.pathsep.join(sys.path)
    with _environment(_DAEMON_ENVIRONMENT), warnings.catch_warnings():
        # Ray's notice of a future change of its own defaults: nothing a user can act on.
        warnings.filterwarnings("ignore", message="Tip: In future versions of Ray", category=FutureWarning)
        ray.init(
            num_cpus=num_cpus,
            num_gpus=0,
            include_dashboard=False,
            _node_ip_address=LOOPBACK,
            logging_level=logging_level,
            log_to_driver=True,
            runtime_env={
                "env_vars": {"PYTHONPATH": pythonpath},
                "worker_process_setup_hook": "cli.simulation.quiet_workers.setup",
            },
        )
    try:
        yield
    finally:
        if ray.is_initialized():  # Flower's backend normally shuts it down itself
            ray.shutdown()


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
