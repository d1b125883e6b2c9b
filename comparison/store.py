"""Opening an MLflow store to read runs from: refuse one that is not there, rather than make it.

MLflow creates an empty SQLite database or file store wherever a URI points; for a
command that only reads, a mistyped path would then report "no such experiment" about
a store nobody meant. So a local store must exist, and any store must answer.
"""

from pathlib import Path
from urllib.parse import unquote, urlparse

from mlflow import MlflowClient

from fedtriage.errors import ConfigError
from fl_server.tracking import resolve_tracking_uri
from fl_server.tracking.mlflow_writes import shorten_http_patience

OPTION = "--tracking-uri"
_SQLITE_PREFIX = "sqlite:///"
_REASON_LENGTH = 200


def open_store(tracking_uri: str | None) -> tuple[MlflowClient, str]:
    """A client of the store `tracking_uri` names (default as the tracker's), checked to answer, and its URI."""
    uri = resolve_tracking_uri(tracking_uri)
    _check_local_store(uri)
    shorten_http_patience()  # a dead server fails in seconds, not after MLflow's minutes of retries
    try:
        client = MlflowClient(tracking_uri=uri)  # a SQLite store is opened (and migrated) here
        client.search_experiments(max_results=1)
    except Exception as err:  # HTTP, database and file errors alike: the store cannot be read
        raise ConfigError(OPTION, f"cannot read the MLflow store {uri}: {one_line(err)}") from err
    return client, uri


def one_line(err: BaseException) -> str:
    """An error's text as one short line: errors end a command on one line."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= _REASON_LENGTH else text[: _REASON_LENGTH - 3] + "..."


def _check_local_store(uri: str) -> None:
    if uri.startswith(_SQLITE_PREFIX):
        database = uri[len(_SQLITE_PREFIX) :].split("?", 1)[0]
        if not database or database == ":memory:":
            raise ConfigError(OPTION, f"{uri} is an in-memory database: it holds no runs to compare")
        if not Path(database).is_file():
            raise ConfigError(OPTION, f"no MLflow database at {Path(database).resolve()} ({uri})")
        return
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        folder = Path(unquote(parsed.path) if parsed.scheme else uri)
        if not folder.is_dir():
            raise ConfigError(OPTION, f"no MLflow file store at {folder.resolve()} ({uri})")
