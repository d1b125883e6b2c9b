"""Set up each Ray worker of a simulation to say only what a user needs to read.

Ray runs `setup()` in every worker process before any of its tasks
(`worker_process_setup_hook`). Flower's actors announce their own shutdown as a
coloured warning ("Manually terminating ClientAppActor") at the end of every run: a
normal event, not a warning, so that one message is dropped; every other one stays.
"""

import logging


def _not_a_shutdown_notice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Manually terminating ")


def setup() -> None:
    logging.getLogger("flwr").addFilter(_not_a_shutdown_notice)
