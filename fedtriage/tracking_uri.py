"""MLflow's tracking URI for one block of code: MLflow keeps it process-wide.

Both the coordinator (logging the global model) and triage (loading one) talk to a
tracking server named in their config, not the one the process happens to point at.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def process_tracking_uri(tracking_uri: str | None) -> Iterator[None]:
    """Point MLflow's process-wide tracking URI at `tracking_uri`, then point it back.

    With no `tracking_uri` MLflow's own choice stands.
    """
    if not tracking_uri:
        yield
        return
    import mlflow  # imported here: triage without MLflow models never pays for it
    from mlflow.environment_variables import MLFLOW_TRACKING_URI

    previous_env = os.environ.get(MLFLOW_TRACKING_URI.name)
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(tracking_uri)
    try:
        yield
    finally:
        # `set_tracking_uri` also writes the environment variable; undo both.
        mlflow.set_tracking_uri(previous if previous != previous_env else None)  # type: ignore[arg-type]
        if previous_env is None:
            os.environ.pop(MLFLOW_TRACKING_URI.name, None)
        else:
            os.environ[MLFLOW_TRACKING_URI.name] = previous_env
