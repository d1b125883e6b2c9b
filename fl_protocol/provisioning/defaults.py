"""What a federation file may leave out, read from `configs/deployment/provision.yaml`."""

from dataclasses import dataclass

from configs import CONFIG_DIR
from configs.compose import compose_config, require, typed_settings

PROVISION_CONFIG_DIR = CONFIG_DIR / "deployment"
PROVISION_CONFIG_NAME = "provision"


@dataclass
class CoordinatorDefaults:
    fleet_port: int


@dataclass
class CertificateSettings:
    """How long certificates live; a federation file's `certificates:` overrides these key by key."""

    ca_validity_days: int
    server_validity_days: int
    renew_before_days: int
    backdate_minutes: int


@dataclass
class ProvisionDefaults:
    coordinator: CoordinatorDefaults
    certificates: CertificateSettings


def load_defaults() -> ProvisionDefaults:
    """The defaults, typed and checked; a bad value is a `ConfigError` naming its key."""
    defaults = typed_settings(
        ProvisionDefaults, compose_config(config_name=PROVISION_CONFIG_NAME, config_dir=PROVISION_CONFIG_DIR)
    )
    check_certificate_settings(defaults.certificates, "certificates")
    return defaults


def check_certificate_settings(settings: CertificateSettings, where: str) -> None:
    """Ranges the types cannot express; errors name `<where>.<key>`."""
    for key in ("ca_validity_days", "server_validity_days"):
        days = getattr(settings, key)
        require(1 <= days <= 36500, f"{where}.{key}", f"must be a number of days in [1, 36500], got {days}")
    require(
        settings.server_validity_days <= settings.ca_validity_days,
        f"{where}.server_validity_days",
        f"{settings.server_validity_days} days outlives the CA ({where}.ca_validity_days="
        f"{settings.ca_validity_days}): a certificate cannot outlive its issuer",
    )
    require(settings.renew_before_days >= 0, f"{where}.renew_before_days", "must be >= 0")
    require(0 <= settings.backdate_minutes <= 1440, f"{where}.backdate_minutes", "must be in [0, 1440]")
