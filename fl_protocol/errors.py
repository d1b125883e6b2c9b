"""Errors that name the setting or path a user has to fix."""


class ConfigError(ValueError):
    """A setting is missing, has the wrong type, or has a value outside its range.

    The message always starts with the dotted name of the setting, e.g.
    ``partition.alpha: must be > 0, got -1.0``.
    """

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem
