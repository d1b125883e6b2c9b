"""A second host for deployment tests: a network namespace joined to this one by a veth pair.

The namespace gets 10.213.N.2/30 and this host 10.213.N.1/30 on the pair (N from the test
process id), addresses that exist only on the pair this fixture creates. Made with `ip netns`
as root; where that is not permitted, the tests that need it are skipped with the reason.
"""

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class SecondHost:
    """A network namespace reachable from this host at `address`, reaching it at `peer_address`."""

    namespace: str
    address: str
    peer_address: str

    def command(self, *argv: str) -> list[str]:
        """`argv` run on the test host (same files, own network)."""
        return ["ip", "netns", "exec", self.namespace, *argv]


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, text=True, timeout=30)


@contextmanager
def second_host() -> Iterator[SecondHost]:
    """Create the namespace and veth pair; delete both on the way out. Raises `PermissionError` with the
    reason where namespaces cannot be made here."""
    if shutil.which("ip") is None:
        raise PermissionError("the `ip` program (iproute2) is not installed")
    if os.geteuid() != 0:
        raise PermissionError("network namespaces need root")
    tag = os.getpid() % 10_000
    namespace, outside, inside = f"fedtriage-{tag}", f"ftv{tag}h", f"ftv{tag}n"
    host_address, peer_address = f"10.213.{os.getpid() % 256}.1", f"10.213.{os.getpid() % 256}.2"
    try:
        _ip("netns", "add", namespace)
    except subprocess.CalledProcessError as err:
        raise PermissionError(f"`ip netns add` is not permitted here: {err.stderr.strip()}") from err
    try:
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", namespace)
        _ip("addr", "add", f"{host_address}/30", "dev", outside)
        _ip("link", "set", outside, "up")
        _ip("netns", "exec", namespace, "ip", "addr", "add", f"{peer_address}/30", "dev", inside)
        _ip("netns", "exec", namespace, "ip", "link", "set", inside, "up")
        _ip("netns", "exec", namespace, "ip", "link", "set", "lo", "up")
        yield SecondHost(namespace, host_address, peer_address)
    finally:
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=30)  # takes the pair along
        subprocess.run(["ip", "link", "del", outside], capture_output=True, timeout=30)
