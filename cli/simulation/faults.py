"""Hand `simulation.adversaries` and `simulation.dropouts` to the simulated nodes, and to no one else.

They travel in the environment of the processes Flower's engine starts for its nodes (Ray's
workers inherit this process's environment when Ray starts), never in the run config a node
receives: a coordinator has no way to ask a node to misbehave. `fl_client.simulated_faults`
reads them on the node side; the variable is removed again once the federation is over, so a
later run in the same process starts honest.
"""

import dataclasses
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager

from fl_client.simulated_faults import SIMULATED_FAULTS_VARIABLE
from fl_protocol.settings.simulated_faults import SimulatedFaults


@contextmanager
def simulated_faults(faults: SimulatedFaults) -> Iterator[None]:
    """`faults` in the environment of the nodes started within the block (nothing when every node is honest)."""
    previous = os.environ.pop(SIMULATED_FAULTS_VARIABLE, None)
    if faults.adversaries.share > 0 or faults.dropouts.share > 0:
        os.environ[SIMULATED_FAULTS_VARIABLE] = json.dumps(dataclasses.asdict(faults))
    try:
        yield
    finally:
        os.environ.pop(SIMULATED_FAULTS_VARIABLE, None)
        if previous is not None:
            os.environ[SIMULATED_FAULTS_VARIABLE] = previous
