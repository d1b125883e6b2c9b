"""The federation's CA and the coordinator's TLS server certificate (`cryptography`'s x509).

Flower 1.42's SuperLink serves TLS with `--ssl-ca-certfile ca.crt --ssl-certfile server.crt
--ssl-keyfile server.key`; a SuperNode trusts only `--root-certificates ca.crt` and checks
that the certificate names the address it dialled, so the certificate carries every
coordinator address as a subject alternative name (`IPAddress` for IPs, `DNSName` for
names). TLS authenticates the coordinator only; units authenticate with SuperNode keys.
Keys are EC P-384, certificates carry what strict X.509 checking asks for (key
identifiers, critical basic constraints and key usage).
"""

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedtriage.errors import ConfigError
from fl_protocol.provisioning.defaults import CertificateSettings
from fl_protocol.provisioning.federation_file import CoordinatorAddress

CURVE = ec.SECP384R1


@dataclass(frozen=True)
class CertificateAuthority:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate


def new_private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(CURVE())


def new_ca(federation: str, settings: CertificateSettings, now: datetime.datetime) -> CertificateAuthority:
    """A self-signed CA that may sign server certificates only (path length 0)."""
    key = new_private_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"fedtriage federation {federation}"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"fedtriage {federation} CA"),
        ]
    )
    identifier = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    certificate = (
        _validity(x509.CertificateBuilder(), now, settings.ca_validity_days, settings.backdate_minutes)
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(identifier, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(identifier), critical=False)
        .sign(key, hashes.SHA384())
    )
    return CertificateAuthority(key, certificate)


def issue_server_certificate(
    ca: CertificateAuthority,
    server_key: ec.EllipticCurvePrivateKey,
    federation: str,
    addresses: Sequence[CoordinatorAddress],
    settings: CertificateSettings,
    now: datetime.datetime,
) -> x509.Certificate:
    """The coordinator's server certificate for `server_key`, naming every address; never outliving the CA."""
    builder = _validity(
        x509.CertificateBuilder(), now, settings.server_validity_days, settings.backdate_minutes,
        until=ca.certificate.not_valid_after_utc,
    )
    ca_identifier = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        builder.subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"fedtriage federation {federation}"),
                    x509.NameAttribute(NameOID.COMMON_NAME, addresses[0].text),
                ]
            )
        )
        .issuer_name(ca.certificate.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.SubjectAlternativeName([_general_name(address) for address in addresses]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_identifier), critical=False)
        .sign(ca.key, hashes.SHA384())
    )


def certificate_problems(
    certificate: x509.Certificate,
    ca_certificate: x509.Certificate,
    server_key: ec.EllipticCurvePrivateKey | None,
    addresses: Sequence[CoordinatorAddress],
    now: datetime.datetime,
) -> list[str]:
    """What makes `certificate` unfit for the federation file's coordinator now; [] when it is fit."""
    problems = []
    try:
        certificate.verify_directly_issued_by(ca_certificate)
    except (ValueError, TypeError, InvalidSignature):
        problems.append("it is not signed by the kits' CA")
    if server_key is not None and _public_bytes(certificate.public_key()) != _public_bytes(server_key.public_key()):
        problems.append("it is not the certificate of the coordinator's server.key")
    named = set(subject_alternative_names(certificate))
    missing = [address.text for address in addresses if address.text not in named]
    if missing:
        problems.append(f"it does not name {', '.join(missing)}")
    extra = sorted(named - {address.text for address in addresses})
    if extra:
        problems.append(f"it names {', '.join(extra)}, which the federation file no longer lists")
    if certificate.not_valid_after_utc <= now:
        problems.append(f"it expired on {certificate.not_valid_after_utc:%Y-%m-%d}")
    return problems


def subject_alternative_names(certificate: x509.Certificate) -> list[str]:
    """The DNS names and IP addresses `certificate` is valid for, as text."""
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [*names.get_values_for_type(x509.DNSName), *map(str, names.get_values_for_type(x509.IPAddress))]


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM, as uvicorn's `ssl_keyfile` (Flower's `--ssl-keyfile`) reads it."""
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def certificate_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(Encoding.PEM)


def load_certificate(path: Path) -> x509.Certificate:
    """The PEM certificate in `path`; anything else is a `ConfigError` naming the file."""
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except OSError as err:
        raise ConfigError("--out", f"cannot read certificate {path}: {err.strerror}") from err
    except ValueError as err:
        raise ConfigError("--out", f"{path} is not a PEM certificate") from err


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The unencrypted PEM EC key in `path`; anything else is a `ConfigError` naming the file."""
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except OSError as err:
        raise ConfigError("--out", f"cannot read private key {path}: {err.strerror}") from err
    except (ValueError, TypeError) as err:
        raise ConfigError("--out", f"{path} is not an unencrypted PEM private key") from err
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError("--out", f"{path} holds a {type(key).__name__}, not an EC key")
    return key


def same_public_key(certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bool:
    return _public_bytes(certificate.public_key()) == _public_bytes(key.public_key())


def _general_name(address: CoordinatorAddress) -> x509.GeneralName:
    return x509.IPAddress(address.ip) if address.ip is not None else x509.DNSName(address.text)


def _validity(
    builder: x509.CertificateBuilder,
    now: datetime.datetime,
    days: int,
    backdate_minutes: int,
    until: datetime.datetime | None = None,
) -> x509.CertificateBuilder:
    """From a little before `now` for `days`, but never past `until` (the issuer's own end)."""
    end = now + datetime.timedelta(days=days)
    return builder.not_valid_before(now - datetime.timedelta(minutes=backdate_minutes)).not_valid_after(
        min(end, until) if until is not None else end
    )


def _public_bytes(key: object) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined]
