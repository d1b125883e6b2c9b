"""The Flower app of fedtriage, as pyproject.toml declares it to `flwr run` and the simulation engine.

The ServerApp is built here, where both sides of the federation may be imported,
because here is who starts it: it hands the server its central test set. With
`evaluation.test_set` that is the coordinator's own labelled folder (category
sub-folders named like `holdings.classes`); without it, in a simulation, the share of
the proxy pool withheld from every node (`holdings.test_fraction`).
"""

from pathlib import Path

from fedtriage.errors import ConfigError
from fl_client.client_app import app as client_app
from fl_client.holdings import Holdings, HoldingsError, central_test_holdings, load_folder_holdings
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
        if not hold.classes:
            raise ConfigError("holdings.classes", "evaluation.test_set needs the class names (its sub-folders)")
        try:
            test = load_folder_holdings(
                Path(settings.evaluation.test_set), hold.classes, hold.image_size, hold.channels
            )
        except HoldingsError as err:
            raise ConfigError("evaluation.test_set", err.problem) from err
    else:
        test = central_test_holdings(settings)
    if len(test) == 0:
        raise ConfigError("evaluation.central", "needs a held-out test set: set holdings.test_fraction > 0")
    return CentralTestSet(images=test.images, labels=test.labels, classes=test.classes)


server_app = build_server_app(central_test_set)

__all__ = ["central_test_set", "client_app", "server_app"]
