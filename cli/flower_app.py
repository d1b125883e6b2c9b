"""The Flower app of simulations, as pyproject.toml declares it to `flwr run` and the simulation engine.

The ServerApp is built here, above both sides of the federation, because here is who
starts it: a simulation (`fedtriage simulate`, or `flwr run` on Flower's local
simulation runtime) hands the server its central test set. That is the coordinator's
own labelled folder when `evaluation.test_set` names one (category sub-folders named
like `holdings.classes`), else the share of the proxy pool withheld from every node
(`holdings.test_fraction`). A deployed coordinator's app will hand over its own folder
or nothing; it never loads a proxy pool.
"""

import warnings
from pathlib import Path

from fedtriage.errors import ConfigError
from fl_client.holdings import Holdings, central_test_holdings, load_folder_holdings
from fl_protocol.settings import RunSettings
from fl_server.central_evaluation import CentralTestSet
from fl_server.server_app import build_server_app


def central_test_set(settings: RunSettings) -> CentralTestSet | None:
    """The labelled images the server scores each round's model on (None: no central evaluation)."""
    if not settings.evaluation.central:
        return None
    hold = settings.holdings
    test: Holdings
    if settings.evaluation.test_set:
        assert hold.classes, "the server checks holdings.classes before asking for its test set"
        test = load_folder_holdings(
            Path(settings.evaluation.test_set), hold.classes, hold.image_size, hold.channels,
            setting="evaluation.test_set",
        )
    else:
        test = central_test_holdings(settings)
        if len(test) == 0:
            raise ConfigError("evaluation.central", "needs a held-out test set: set holdings.test_fraction > 0")
    return CentralTestSet(images=test.images, labels=test.labels, classes=test.classes)


# Flower starts Ray itself under `flwr run`: its notice of a future change of its defaults is
# nothing a user can act on (`cli.simulation.loopback_ray` leaves it out the same way).
warnings.filterwarnings("ignore", message="Tip: In future versions of Ray", category=FutureWarning)

server_app = build_server_app(central_test_set)
