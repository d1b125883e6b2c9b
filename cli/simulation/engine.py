"""Run the project's Flower app in Flower's own simulation engine, in this process.

This is what Flower's `flwr-simulation` process does for `flwr run`, without the
SuperLink and SuperExec around it: the app's pyproject.toml supplies the components
and the run config, our settings arrive as run-config overrides (the nodes get only
their part of them), and Ray runs the ClientApp on `num_nodes` virtual SuperNodes
(Ray itself is started on loopback first, see `loopback_ray`). It uses `flwr.simulation`'s internal
`_run_simulation` (the public `run_simulation` wrapper is deprecated and cannot pass
a run config), which is why flwr is pinned exactly.
"""

import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

from flwr.app import Context, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.config import get_fused_config_from_dir, get_project_config
from flwr.common.constant import RUN_ID_NUM_BYTES, SUPERLINK_NODE_ID, TASK_ID_NUM_BYTES
from flwr.server.superlink.linkstate.utils import generate_rand_int_from_bytes
from flwr.serverapp import ServerApp
from flwr.simulation.run_simulation import _run_simulation
from flwr.supercore.constant import NOOP_FEDERATION_ID
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity
from flwr.supercore.telemetry import EventType

import fedtriage
from cli.simulation.faults import simulated_faults
from cli.simulation.loopback_ray import loopback_ray
from fedtriage.errors import ConfigError, FedtriageError
from fl_protocol.run_config import coordinator_run_config, node_run_config
from fl_protocol.settings import RunSettings
from fl_server.stop_request import clear_stop_request, request_stop, stop_requested


def project_dir() -> Path:
    """The Flower app directory: the source checkout holding pyproject.toml."""
    root = Path(fedtriage.__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        raise FedtriageError(
            f"no pyproject.toml next to {root}: run fedtriage from its source checkout "
            "installed with `pip install -e .`"
        )
    return root


def run_in_simulation_engine(settings: RunSettings, app_dir: Path | None = None) -> None:
    """Run one federation of `settings.federation.num_nodes` simulated nodes.

    Returns when the ServerApp returns; re-raises the ServerApp's exception.
    """
    app_dir = app_dir or project_dir()
    components = get_project_config(app_dir)["tool"]["flwr"]["app"]["components"]
    run_id = generate_rand_int_from_bytes(RUN_ID_NUM_BYTES)
    # Nodes build their run config from the run's overrides: they get only their part.
    run = replace(
        Run.create_empty(run_id=run_id),
        override_config=node_run_config(settings),
        primary_task_id=generate_rand_int_from_bytes(TASK_ID_NUM_BYTES),
        federation_id=NOOP_FEDERATION_ID,
    )
    # Messages the ServerApp builds are stamped with the current task's identity.
    TaskIdentity.task_id = run.primary_task_id
    TaskIdentity.run_id = run_id
    TaskIdentity.node_id = SUPERLINK_NODE_ID
    context = Context(
        run_id=run_id,
        node_id=SUPERLINK_NODE_ID,
        node_config={},
        state=RecordDict(),
        run_config=get_fused_config_from_dir(app_dir, coordinator_run_config(settings)),
    )
    _simulate(
        settings,
        server_app_attr=components["serverapp"],
        client_app_attr=components["clientapp"],
        app_dir=str(app_dir),
        run=run,
        server_app_context=context,
        is_app=True,
    )


def run_app_objects_in_simulation(server_app: ServerApp, client_app: ClientApp, settings: RunSettings) -> None:
    """Run given app objects (benchmarks' apps, Flower's own legacy apps) in the same engine.

    No run config reaches them: such apps carry what they need in their closures.
    """
    _simulate(settings, server_app=server_app, client_app=client_app)


def _simulate(settings: RunSettings, **apps: Any) -> None:
    """Flower's engine on `settings.federation.num_nodes` nodes, Ray on loopback, our log level, and
    the simulated nodes' misbehaviour in the environment their processes inherit."""
    logging.getLogger("flwr").setLevel(settings.simulation.flower_log_level.upper())
    backend_config = _backend_config(settings)
    init_args = backend_config["init_args"]
    with (
        stop_on_interrupt(),
        simulated_faults(settings.simulation.faults),
        loopback_ray(int(init_args["num_cpus"]), str(init_args["logging_level"])),
    ):
        _run_simulation(
            num_supernodes=settings.federation.num_nodes,
            backend_name="ray",
            backend_config=backend_config,
            exit_event=EventType.PYTHON_API_RUN_SIMULATION_LEAVE,
            **apps,
        )


@contextmanager
def stop_on_interrupt() -> Iterator[None]:
    """The first Ctrl-C asks the federation to stop at its next safe point; a second stops at once.

    Flower runs the ServerApp in a thread of its own, which a KeyboardInterrupt in the main
    thread never reaches: it would go on failing rounds against nodes that are gone. So the
    interrupt becomes a stop request that the round loop answers within moments, closing
    its record as killed and keeping its checkpoints.
    """

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop_requested():
            raise KeyboardInterrupt
        request_stop()
        print("\nfedtriage: stopping at the next safe point (Ctrl-C again to stop at once)", file=sys.stderr,
              flush=True)

    clear_stop_request()
    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _backend_config(settings: RunSettings) -> dict[str, dict[str, float | int | bool | str]]:
    sim = settings.simulation
    total = sim.total_cpus or os.cpu_count() or 1
    if sim.client_cpus > total:
        raise ConfigError(
            "simulation.client_cpus",
            f"{sim.client_cpus:g} CPUs per node exceed the {total} CPUs Ray may use "
            "(simulation.total_cpus); no node could start",
        )
    return {
        "client_resources": {"num_cpus": sim.client_cpus, "num_gpus": 0.0},
        "init_args": {
            "num_cpus": total,
            "num_gpus": 0,
            "include_dashboard": False,
            "logging_level": sim.flower_log_level.upper(),
            "log_to_driver": True,
        },
    }
