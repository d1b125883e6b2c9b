"""`fedtriage run start|list|stop|resume --kit KITS/coordinator`: training runs on a real federation.

    fedtriage run start --kit KITS/coordinator holdings.classes=[a,b,c] secure=secagg federation.num_rounds=5
    fedtriage run start --kit KITS/coordinator --app path/to/flower-app key=value ...
    fedtriage run list --kit KITS/coordinator
    fedtriage run stop RUN_ID --kit KITS/coordinator
    fedtriage run resume RUN_ID --kit KITS/coordinator

`start` submits fedtriage's own app (or, with --app, another Flower app folder, its
key=value items passed as Flower run config) to the running coordinator, follows it with
the same progress lines as a simulation, and exits non-zero if the run failed. For the
project's app, key=value items are the settings of `fedtriage simulate --help`; the
coordinator adds what a deployment needs unless given: its kit, an output folder under
its state folder's runs/, the MLflow its start named (its tracking.* settings; by default
state/mlflow.db), one node per unit of the kit, folder holdings with no central test set
(the units' holdings never leave them; name their classes with holdings.classes).
`resume` continues a run that ended early (coordinator restarted, run stopped) from its
latest checkpoint, marks its MLflow run FAILED and links it to the run that continues it.
Flower's CLI state lives in the coordinator's state folder, never in ~/.flwr or the project.
"""

import argparse
import shlex
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cli.arguments import CommandParser
from fedtriage.errors import ConfigError, FederationFailed, Interrupted

if TYPE_CHECKING:
    from cli.deployment.run_records import RunRecord

_ACTIONS = ("start", "list", "stop", "resume")
# Flower's status of a run that ended well.
COMPLETED = "finished:completed"


def main(argv: list[str]) -> int:
    parser = CommandParser(
        prog="fedtriage run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=_ACTIONS)
    parser.add_argument("--kit", type=Path, required=True, help="the coordinator's kit folder")
    parser.add_argument("--state", type=Path, help="the coordinator's state folder (default: the kit's state/)")
    parser.add_argument("--app", type=Path, help="another Flower app folder to run (start)")
    parser.add_argument("items", nargs="*", metavar="RUN_ID | key=value",
                        help="stop/resume: the run id; start: settings")
    args = parser.parse_intermixed_args(argv)
    kit = args.kit.resolve()
    state = (args.state or kit / "state").resolve()
    if args.action == "start":
        return _start(kit, state, args.app.resolve() if args.app else None, args.items)
    if args.app is not None:
        raise ConfigError("--app", f"`run {args.action}` takes no --app")
    if args.action == "list":
        if args.items:
            raise ConfigError("arguments", "`run list` takes no other arguments")
        return _list(state)
    if len(args.items) != 1 or not args.items[0].isdigit():
        raise ConfigError("RUN_ID", f"`run {args.action}` takes one run id (`fedtriage run list` shows them)")
    run_id = int(args.items[0])
    if args.action == "stop":
        return _stop(state, run_id)
    return _resume(kit, state, run_id)


def _start(kit: Path, state: Path, app: Path | None, items: list[str], resumes: int | None = None) -> int:
    from cli.deployment.control import shown_once, started_run_id, submit_command
    from cli.deployment.run_records import RunRecord, write_record
    from cli.simulation.engine import project_dir

    connection = _running_coordinator(kit, state)
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    output_dir = Path()
    if app is None:
        overrides = _project_overrides(kit, state, items, stamp)
        output_dir = Path(_value_of(overrides, "output_dir"))
        run_config = f'fedtriage-overrides="{shlex.join(overrides)}"'
        app = project_dir()
    else:
        run_config = " ".join(items)
    command = submit_command(app, run_config)
    run_id = None
    with subprocess.Popen(command, env=connection.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, stdin=subprocess.DEVNULL) as flwr:
        assert flwr.stdout is not None
        try:
            for line in flwr.stdout:
                if run_id is None and (run_id := started_run_id(line)) is not None:
                    write_record(state / "runs", RunRecord(run_id, str(app), items, str(output_dir),
                                                           datetime.now().isoformat(timespec="seconds"), resumes))
                if shown_once(line):
                    print(line, end="", flush=True)
        except KeyboardInterrupt:
            flwr.terminate()
            if run_id is None:
                raise
            raise Interrupted(f"stopped following run {run_id}; it goes on at the coordinator: `fedtriage run list "
                              f"--kit {kit}` shows it, `fedtriage run stop {run_id} --kit {kit}` stops it") from None
    if run_id is None:
        raise FederationFailed(f"the coordinator did not accept the run (exit code {flwr.returncode}): Flower's "
                               "output above says why")
    return _outcome(connection, run_id, output_dir if app == project_dir() else None)


def _outcome(connection, run_id: int, output_dir: Path | None) -> int:  # type: ignore[no-untyped-def]
    from cli.deployment.control import list_runs
    from fl_server.run_summary import SUMMARY_FILE, read_summary

    try:
        runs = list_runs(connection, run_id)
    except FederationFailed as err:
        raise FederationFailed(f"the coordinator stopped answering while run {run_id} ran ({err}); once it is back, "
                               f"`fedtriage run resume {run_id}` continues the run from its latest checkpoint") from err
    status = str(runs[0].get("status")) if runs else "unknown"
    if status == COMPLETED:
        print(f"run {run_id}: {status}", flush=True)
        return 0
    if not status.startswith("finished"):
        raise FederationFailed(f"run {run_id} stopped reporting (its status: {status}): the coordinator went down "
                               f"mid-run; once it is back, `fedtriage run resume {run_id}` continues the run from its "
                               "latest checkpoint")
    reason = ""
    if output_dir is not None and (output_dir / SUMMARY_FILE).is_file():
        summary = read_summary(output_dir)
        reason = f": {summary.error}" if summary.error else ""
    raise FederationFailed(f"run {run_id} ended {status}{reason}")


def _project_overrides(kit: Path, state: Path, items: list[str], stamp: str) -> list[str]:
    """The user's settings plus what a deployment needs, checked here before anything is sent."""
    from cli.deployment.coordinator_processes import CoordinatorPaths
    from cli.simulate import check_overrides
    from fl_protocol.provisioning.defaults import load_defaults
    from fl_protocol.provisioning.kit_file import read_coordinator_kit
    from fl_protocol.run_config import load_settings

    check_overrides(items)
    if any('"' in item for item in items):
        raise ConfigError("overrides", 'Flower\'s run config cannot carry a double quote (")')
    federation = read_coordinator_kit(kit, load_defaults())
    given = {item.split("=", 1)[0].lstrip("+~") for item in items}
    defaults = {
        "kit": str(kit),
        "output_dir": str(CoordinatorPaths(kit, state).runs / f"run-{stamp}"),
        "tracking.tracking_uri": CoordinatorPaths(kit, state).mlflow_uri,
        "federation.num_nodes": str(len(federation.units)),
        "holdings": "folder",
        "evaluation.central": "false",
    }
    overrides = [*(f"{key}={value}" for key, value in defaults.items() if key not in given), *items]
    settings = load_settings(overrides)
    if not settings.holdings.classes:
        raise ConfigError("holdings.classes", "name the federation's classes, in label order, as every unit's "
                          "category folders are named: holdings.classes=[class_a,class_b]")
    return overrides


def _value_of(overrides: list[str], key: str) -> str:
    return [item.split("=", 1)[1] for item in overrides if item.split("=", 1)[0].lstrip("+~") == key][-1]


def _list(state: Path) -> int:
    from cli.deployment.control import ControlConnection, list_runs
    from cli.deployment.run_records import all_records

    records = all_records(state / "runs")
    runs = list_runs(ControlConnection(state / "flwr"))
    print(f"{'run id':<22} {'status':<20} {'elapsed':>10}  output")
    listed: set[int] = set()
    for run in runs:
        run_id = int(run.get("run-id", 0))
        listed.add(run_id)
        _print_run(run_id, str(run.get("status")), str(run.get("elapsed", "")), records.get(run_id))
    # A SuperLink with its state in memory (superlink.database) forgets the runs before its last start.
    for run_id in sorted(set(records) - listed):
        _print_run(run_id, "before last start", "", records[run_id])
    return 0


def _print_run(run_id: int, status: str, elapsed: str, record: "RunRecord | None") -> None:
    output = (record.output_dir or record.app) if record else "(not started by fedtriage run)"
    resumes = f" (resumes {record.resumes})" if record and record.resumes else ""
    print(f"{run_id:<22} {status:<20} {elapsed:>10}  {output}{resumes}")


def _stop(state: Path, run_id: int) -> int:
    from cli.deployment.control import ControlConnection, stop_run

    stop_run(ControlConnection(state / "flwr"), run_id)
    print(f"run {run_id}: stopped")
    return 0


def _resume(kit: Path, state: Path, run_id: int) -> int:
    from cli.deployment.control import list_runs
    from cli.deployment.run_records import read_record
    from fl_server.tracking.continuation import interrupted_checkpoint, link_continuation, mark_interrupted

    connection = _running_coordinator(kit, state)
    record = read_record(state / "runs", run_id)
    runs = list_runs(connection, run_id)
    # A SuperLink with its state in memory (superlink.database) knows no run from before its last
    # start, and none of those can be running on it.
    status = str(runs[0].get("status")) if runs else "with the coordinator (restarted since)"
    if status == COMPLETED:
        raise ConfigError("RUN_ID", f"run {run_id} finished: there is nothing to resume")
    if runs and not status.startswith("finished"):
        raise ConfigError("RUN_ID", f"run {run_id} is {status}: stop it first (`fedtriage run stop {run_id}`)")
    checkpoint = interrupted_checkpoint(Path(record.output_dir))
    tracking_uri = _value_of(_project_overrides(kit, state, record.overrides, "resume"), "tracking.tracking_uri")
    interrupted = mark_interrupted(checkpoint, tracking_uri, f"Flower run {run_id} ended {status}")
    print(f"run {run_id} ended {status}; resuming after its round {checkpoint.round}"
          + (f"; its MLflow run {interrupted} is marked FAILED" if interrupted else ""), flush=True)
    items = [item for item in record.overrides if not item.startswith("checkpoint.resume_from=")]
    outcome = _start(kit, state, None, [*items, f"checkpoint.resume_from={checkpoint.checkpoint}"], resumes=run_id)
    if interrupted:
        link_continuation(tracking_uri, interrupted)
    return outcome


def _running_coordinator(kit: Path, state: Path):  # type: ignore[no-untyped-def]
    from cli.deployment.control import ControlConnection
    from cli.deployment.supervisor import live_record

    record = live_record(state)
    if record is None or record.role != "coordinator" or not record.ready:
        raise ConfigError("--kit", f"no coordinator runs from {state}: start it with `fedtriage coordinator start "
                          f"--kit {kit}`")
    return ControlConnection(state / "flwr")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
