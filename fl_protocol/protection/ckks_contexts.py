"""The federation's CKKS contexts (TenSEAL): a secret one for nodes, a public one for the server.

Contexts are generated per federation, never shipped with the package. The server's
copy has no secret key, so it can add ciphertexts but cannot decrypt them. Layout of
`secure.ckks.context_dir`: `nodes/secret.bin` (nodes only) and `server/public.bin`.
No Galois keys are generated: aggregation only adds, and copies carrying them are slow.
"""

import functools
from pathlib import Path

import tenseal as ts

from fedtriage.errors import ConfigError
from fl_protocol.settings import CkksSettings

SECRET_FILE = Path("nodes") / "secret.bin"
PUBLIC_FILE = Path("server") / "public.bin"


def generate_contexts(settings: CkksSettings, directory: Path) -> Path:
    """Write a fresh secret/public context pair under `directory`; return `directory`."""
    context = ts.context(
        ts.SCHEME_TYPE.CKKS,
        poly_modulus_degree=settings.poly_modulus_degree,
        coeff_mod_bit_sizes=list(settings.coeff_mod_bit_sizes),
    )
    context.global_scale = 2**settings.global_scale_bits
    (directory / SECRET_FILE).parent.mkdir(parents=True, exist_ok=True)
    (directory / PUBLIC_FILE).parent.mkdir(parents=True, exist_ok=True)
    (directory / SECRET_FILE).write_bytes(context.serialize(save_secret_key=True))
    context.make_context_public()
    (directory / PUBLIC_FILE).write_bytes(context.serialize())
    (directory / SECRET_FILE).chmod(0o600)
    return directory


def node_context(settings: CkksSettings) -> ts.Context:
    """The secret context nodes encrypt and decrypt with."""
    return _load(str(_context_dir(settings) / SECRET_FILE))


def server_context(settings: CkksSettings) -> ts.Context:
    """The public context the server adds ciphertexts with; refuses one with a secret key."""
    context = _load(str(_context_dir(settings) / PUBLIC_FILE))
    if context.is_private():
        raise ConfigError("secure.ckks.context_dir", "the server's context holds a secret key; it must not")
    return context


def slot_count(settings: CkksSettings) -> int:
    return settings.poly_modulus_degree // 2


def _context_dir(settings: CkksSettings) -> Path:
    if not settings.context_dir:
        raise ConfigError(
            "secure.ckks.context_dir",
            "CKKS needs the federation's contexts; `fedtriage simulate` generates them, a deployment provisions them",
        )
    return Path(settings.context_dir)


@functools.lru_cache(maxsize=4)
def _load(path: str) -> ts.Context:
    file = Path(path)
    if not file.is_file():
        raise ConfigError("secure.ckks.context_dir", f"no CKKS context at {file}")
    return ts.context_from(file.read_bytes())
