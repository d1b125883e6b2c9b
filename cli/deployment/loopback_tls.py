"""The TLS of the coordinator's loopback link: SuperLink <-> proxy, SuperExec and Flower's CLI.

The SuperLink listens on loopback behind the proxy, and the kit's server certificate names
the addresses units use, which need not include loopback. So each start makes a fresh CA
and certificate for `localhost`/127.0.0.1 in the state folder; only processes on this host
trust it, and its CA key is never written (nothing else can be issued under it).
"""

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from fl_protocol.provisioning.defaults import load_defaults
from fl_protocol.provisioning.federation_file import parse_address
from fl_protocol.provisioning.tls import (
    certificate_pem,
    issue_server_certificate,
    new_ca,
    new_private_key,
    private_key_pem,
)

LOOPBACK_NAME = "localhost"


@dataclass(frozen=True)
class LoopbackTls:
    ca_certificate: Path
    certificate: Path
    key: Path


def make_loopback_tls(folder: Path, federation: str) -> LoopbackTls:
    """Write a fresh loopback CA certificate, server certificate and key (0600) into `folder`."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    settings = load_defaults().certificates
    ca = new_ca(f"{federation} loopback", settings, now)
    key = new_private_key()
    addresses = [parse_address(LOOPBACK_NAME, "loopback"), parse_address("127.0.0.1", "loopback")]
    certificate = issue_server_certificate(ca, key, f"{federation} loopback", addresses, settings, now)
    tls = LoopbackTls(folder / "loopback-ca.crt", folder / "loopback.crt", folder / "loopback.key")
    tls.ca_certificate.write_bytes(certificate_pem(ca.certificate))
    tls.certificate.write_bytes(certificate_pem(certificate))
    descriptor = os.open(tls.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as sink:
        sink.write(private_key_pem(key))
    return tls
