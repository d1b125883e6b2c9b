"""A real federation on this host, started with the very commands a coordinator and units type.

Provisioned from a federation file on free loopback ports; the coordinator (SuperLink,
SuperExec, nginx) and one node per unit with its own generated holdings and a policy that
accepts a cohort of the units present. Used by `fedtriage bench deploy` and the deployment
tests. Every process is stopped by its process id: the foreground commands by theirs, then
whatever their records still name.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from cli.deployment.supervisor import stop_recorded
from fl_client.holdings.synthetic import write_synthetic_holdings

FEDTRIAGE = str(Path(sys.executable).with_name("fedtriage"))
CLASSES = ("disc", "square", "triangle", "cross")
CLASSES_SETTING = f"holdings.classes=[{','.join(CLASSES)}]"


@dataclass
class LoopbackFederation:
    root: Path
    kits: Path
    units: tuple[str, ...]
    fleet_port: int
    policy: Path
    commands: list[subprocess.Popen[str]] = field(default_factory=list)

    def kit(self, party: str) -> Path:
        return self.kits / party

    def fedtriage(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """A `fedtriage` command, run to its end, in the federation's folder."""
        return subprocess.run([FEDTRIAGE, *args], capture_output=True, text=True, timeout=timeout, cwd=self.root)

    def holdings(self, unit: str, images_per_class: int, seed: int) -> Path:
        folder = self.root / f"holdings-{unit}"
        write_synthetic_holdings(folder, CLASSES, images_per_class, 32, "png", seed=seed)
        return folder

    def start_node(self, unit: str, holdings: Path, host: Sequence[str] = ()) -> subprocess.Popen[str]:
        """`fedtriage node start` for `unit`; `host` prefixes the command (e.g. `ip netns exec NS`)."""
        command = start_foreground(
            [*host, FEDTRIAGE, "node", "start", "--kit", str(self.kit(unit)), "--holdings", str(holdings), "--policy",
             str(self.policy), f"supernode.runtime_port={free_port()}"], "connected", self.root)
        self.commands.append(command)
        return command


@contextmanager
def loopback_federation(root: Path, units: Sequence[str] = ("unit1", "unit2", "unit3"),
                        images_per_class: int = 12, *, addresses: Sequence[str] = ("127.0.0.1", "localhost"),
                        min_peers: int | None = None, started_units: Sequence[str] | None = None,
                        ) -> Iterator[LoopbackFederation]:
    """Provision, start the coordinator and the nodes of `started_units` (default: every unit); stop them all
    on the way out. Nodes connect to the first of `addresses`; their policy accepts a cohort of `min_peers`
    other nodes (default: every other unit)."""
    root.mkdir(parents=True, exist_ok=True)
    fleet_port = free_port()
    federation_file = root / "federation.yaml"
    federation_file.write_text(yaml.safe_dump({
        "federation": "loopback", "coordinator": {"addresses": list(addresses), "fleet_port": fleet_port},
        "units": list(units),
    }))
    policy = root / "policy.yaml"
    policy.write_text(yaml.safe_dump({
        "secure": {"min_peers": len(units) - 1 if min_peers is None else min_peers},
        "protection": {"modes": ["plaintext", "secagg"]},  # the benchmark compares both
        # The generated holdings name their folders as the federation names its classes.
        "holdings": {"categories": {name: [name] for name in CLASSES}},
    }))
    federation = LoopbackFederation(root, root / "kits", tuple(units), fleet_port, policy)
    provisioned = federation.fedtriage("provision", str(federation_file), "--out", str(federation.kits))
    if provisioned.returncode != 0:
        raise RuntimeError(f"provision failed: {provisioned.stderr}")
    try:
        federation.commands.append(start_foreground(
            [FEDTRIAGE, "coordinator", "start", "--kit", str(federation.kit("coordinator")),
             f"superlink.port={free_port()}"], "ready", root))
        for seed, unit in enumerate(units, start=1):
            if started_units is None or unit in started_units:
                federation.start_node(unit, federation.holdings(unit, images_per_class, seed))
        yield federation
    finally:
        for command in reversed(federation.commands):
            stop_foreground(command)
        for kit in sorted(federation.kits.iterdir()):
            stop_recorded(kit / "state", timeout_s=10)


def start_foreground(command: list[str], ready: str, cwd: Path, timeout: float = 90) -> subprocess.Popen[str]:
    """Start a command that stays in the foreground and wait for its line saying `ready`."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd)
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        if ready in line:
            return process
    stop_foreground(process)
    raise RuntimeError(f"{' '.join(command[1:3])} did not say {ready!r}: {''.join(seen)}")


def stop_foreground(process: subprocess.Popen[str]) -> None:
    """SIGTERM, as a service manager stops it; SIGKILL if it does not stop within 40 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


def stop_session(process: subprocess.Popen[str], timeout: float = 30) -> None:
    """SIGTERM to the session `process` leads (a server and its workers); SIGKILL after `timeout` seconds."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS's choice)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
