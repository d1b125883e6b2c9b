"""Console output of fedtriage's own loggers ("fedtriage.*"), set up once per process."""

import logging

_FORMAT = "fedtriage %(levelname)s: %(message)s"


def configure_console_logging(level: int = logging.INFO) -> None:
    """Attach a console handler to the "fedtriage" logger unless one is there."""
    logger = logging.getLogger("fedtriage")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(_FORMAT))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level)
