"""The one error family of fedtriage: every error a user can act on, with its exit code.

An error raised anywhere (a setting, a holdings folder, a VICS case, a failed
federation) ends a command the same way: `fedtriage: error: <message>` on one line and
the exit code of its class. Like Flower's `AppExitException`, the code lives on the
class, so the `fedtriage` command (`cli.app`) maps the whole family with one `except`.
"""

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # as shells report Ctrl-C


class FedtriageError(Exception):
    """Base of every error fedtriage reports to its user."""

    exit_code = EXIT_FAILED


class BadInput(FedtriageError, ValueError):
    """Something the user gave cannot be used: a setting, a path, a file's content.

    The message names what to fix; nothing has been lost when this is raised.
    """

    exit_code = EXIT_BAD_INPUT


class ConfigError(BadInput):
    """A setting is missing, has the wrong type, or has a value outside its range.

    The message always starts with the dotted name of the setting, e.g.
    ``partition.alpha: must be > 0, got -1.0``.
    """

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class FederationFailed(FedtriageError, RuntimeError):
    """A federation cannot go on: too few nodes, or too many failed rounds."""

    exit_code = EXIT_FAILED


class Interrupted(FedtriageError):
    """The user stopped a command (Ctrl-C); what was finished is kept."""

    exit_code = EXIT_INTERRUPTED


class Refused(FedtriageError, RuntimeError):
    """A node refuses an instruction that its protocol or its settings do not allow.

    Raised inside a ClientApp, it becomes the error reply the coordinator sees, which
    carries only `public_reason`: the message, in the node's own words, goes to the
    node's log. The node itself goes on.
    """

    # What the coordinator learns: "refused: <code>".
    code = "instruction"

    @property
    def public_reason(self) -> str:
        return f"refused: {self.code}"
