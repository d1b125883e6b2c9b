"""`fedtriage flwr-run`: the federation through Flower's own `flwr run`, on a local SuperLink.

    fedtriage flwr-run federation.num_nodes=4 strategy=fedprox

The same ServerApp and ClientApp as `fedtriage simulate`, started the way a deployment
starts them: Flower's CLI submits the app to a local SuperLink, which runs it in its
simulation runtime. Around `flwr run` this command does what Flower's CLI leaves to its
user: the node count comes from `federation.num_nodes` alone; Flower's CLI state
(config.toml, the app bundle, the SuperLink's database and log) goes to `flwr-home/` in
the run's output folder, never to ~/.flwr; Flower's doubled log lines are shown once; the
local SuperLink and SuperExec it started are stopped by their process ids; and the exit
code is the run's (Flower's CLI exits 0 for a failed run).
"""

import argparse
import dataclasses
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from cli.deployment.control import shown_once
from fedtriage.environment import PHONE_HOME_SWITCHES
from fedtriage.errors import ConfigError, FederationFailed

# Flower's advice on the federation's size, which this command sets from federation.num_nodes.
_SIZE_ADVICE = (
    "default simulated SuperNodes changed", "To change federation size", "flwr federation simulation-config"
)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="fedtriage flwr-run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="The settings are those of `fedtriage simulate --help`.",
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="Hydra overrides, as for fedtriage simulate")
    args = parser.parse_args(argv)

    from cli.simulate import check_overrides
    from cli.simulation.engine import project_dir
    from cli.simulation.kits import provision_simulated_kits
    from fl_protocol.run_config import load_settings

    check_overrides(args.overrides)
    if any('"' in override for override in args.overrides):
        raise ConfigError("overrides", 'Flower\'s run config cannot carry a double quote (")')
    settings = load_settings(args.overrides)
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    output_dir = Path(settings.output_dir or Path.cwd() / "outputs" / f"flwr-run-{stamp}")
    flwr_home = output_dir / "flwr-home"
    flwr_home.mkdir(parents=True, exist_ok=True)
    print(f"Flower's CLI state goes to {flwr_home}", flush=True)
    # Flower's simulation runtime runs the nodes under this environment: they find their kits as in `simulate`.
    settings = provision_simulated_kits(dataclasses.replace(settings, output_dir=str(output_dir)))
    kit = [f"kit={settings.kit}"] if settings.kit else []
    overrides = shlex.join([*args.overrides, f"output_dir={output_dir}", *kit])
    command = [
        str(Path(sys.executable).with_name("flwr")), "run", str(project_dir()),
        "--run-config", f'fedtriage-overrides="{overrides}"',
        "--federation-config",
        f"num-supernodes={settings.federation.num_nodes} client-resources-num-cpus={settings.simulation.client_cpus:g}",
        "--stream",
    ]
    env = {
        **os.environ, **PHONE_HOME_SWITCHES, "FLWR_HOME": str(flwr_home),
        # The app runs in this very environment; nothing is downloaded.
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
        "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT": str(_free_port()), "FLWR_LOCAL_CONTROL_API_PORT": str(_free_port()),
    }
    try:
        _run_shown_once(command, env)
    finally:
        _stop_processes_of(flwr_home)
    return _outcome(output_dir)


def _run_shown_once(command: list[str], env: dict[str, str]) -> None:
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as flwr:
        assert flwr.stdout is not None
        for line in flwr.stdout:
            if shown_once(line) and not any(advice in line for advice in _SIZE_ADVICE):
                print(line, end="", flush=True)


def _outcome(output_dir: Path) -> int:
    from fl_server.run_summary import SUMMARY_FILE, read_summary

    if not (output_dir / SUMMARY_FILE).is_file():
        raise FederationFailed(f"the run left no {output_dir / SUMMARY_FILE}: Flower's output above says why")
    summary = read_summary(output_dir)
    if summary.status != "FINISHED":
        raise FederationFailed(f"the run ended {summary.status}: {summary.error}")
    return 0


def _stop_processes_of(flwr_home: Path) -> None:
    """Stop, by process id, what Flower's CLI started for this run: every process whose command
    line names this run's own Flower home (the local SuperLink), and their children."""
    mine = {pid for pid, command in _processes() if str(flwr_home) in command}
    family = set(mine)
    for pid in mine:
        family |= _descendants(pid)
    for pid in family:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in family) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in family:
        _signal(pid, signal.SIGKILL)


def _processes() -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                found.append((int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()))
            except OSError:
                continue
    return found


def _descendants(parent: int) -> set[int]:
    children = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                children.add(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return children | {grandchild for child in children for grandchild in _descendants(child)}


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
