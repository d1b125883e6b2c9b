"""A Flower app no unit approved: its ClientApp would leave a marker file the moment its code runs.

Its ServerApp asks every connected node once and writes what came back (the error reason, or
"content") as JSON to the run config's `out`, so a test sees each node's answer.
"""

from pathlib import Path

_PYPROJECT = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "marker-app"
version = "1.0.0"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "attacker"

[tool.flwr.app.components]
serverapp = "marker_app.server:app"
clientapp = "marker_app.client:app"

[tool.flwr.app.config]
out = ""
nodes = 3
"""

_SERVER = """import json
import time
from pathlib import Path

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    deadline = time.time() + 60
    nodes = list(grid.get_node_ids())
    while len(nodes) < int(context.run_config["nodes"]) and time.time() < deadline:
        time.sleep(0.5)
        nodes = list(grid.get_node_ids())
    asks = [Message(RecordDict({"ask": ConfigRecord({"x": 1})}), dst_node_id=node, message_type="train")
            for node in nodes]
    replies = grid.send_and_receive(asks, timeout=120)
    answers = [reply.error.reason if reply.has_error() else "content" for reply in replies]
    Path(str(context.run_config["out"])).write_text(json.dumps(answers))
"""

_CLIENT = """from pathlib import Path

from flwr.app import Context, Message, RecordDict
from flwr.clientapp import ClientApp

Path({marker!r}).write_text("the unapproved app's code ran")
app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    Path({marker!r}).write_text("the unapproved app trained")
    return Message(RecordDict(), reply_to=msg)
"""


def write_marker_app(folder: Path, marker: Path) -> Path:
    """The app's folder (for `flwr build` or `fedtriage run start --app`)."""
    package = folder / "marker_app"
    package.mkdir(parents=True)
    (folder / "pyproject.toml").write_text(_PYPROJECT)
    (package / "__init__.py").write_text("")
    (package / "server.py").write_text(_SERVER)
    (package / "client.py").write_text(_CLIENT.format(marker=str(marker)))
    return folder
