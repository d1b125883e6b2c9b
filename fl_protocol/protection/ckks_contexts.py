"""The federation's CKKS contexts (TenSEAL): a secret one in every node kit, a public one for the server.

The secret context is made by a node, in its own kit (`generate_context`), and shared
among the units' kits without the coordinator (`share_context`: in a deployment, each
unit copies it into its kit from another unit; a simulation does the same on one disk).
The coordinator's kit gets the public copy, which can add ciphertexts but not decrypt
them. A node reads its context only from its own kit, never from anything the
coordinator sends, so a coordinator cannot make nodes encrypt under a key it holds.
No Galois keys are generated: aggregation only adds, and copies carrying them are slow.
"""

import functools
import os
import shutil
from pathlib import Path

import tenseal as ts

from fedtriage.errors import ConfigError
from fl_protocol.settings import CkksSettings

# In every node kit (secret, owner-only) and in every kit (public).
SECRET_FILE = "ckks-secret.bin"
PUBLIC_FILE = "ckks-public.bin"


def generate_context(settings: CkksSettings, kit: Path) -> None:
    """Make a fresh CKKS key in node kit `kit`: the secret context and its public copy."""
    context = ts.context(
        ts.SCHEME_TYPE.CKKS,
        poly_modulus_degree=settings.poly_modulus_degree,
        coeff_mod_bit_sizes=list(settings.coeff_mod_bit_sizes),
    )
    context.global_scale = 2**settings.global_scale_bits
    _write_private(kit / SECRET_FILE, context.serialize(save_secret_key=True))
    context.make_context_public()
    (kit / PUBLIC_FILE).write_bytes(context.serialize())


def share_context(source: Path, node_kits: list[Path], coordinator_kit: Path) -> None:
    """Copy the secret context of node kit `source` into the other node kits, the public one into all."""
    for kit in node_kits:
        if kit != source:
            _write_private(kit / SECRET_FILE, (source / SECRET_FILE).read_bytes())
            shutil.copyfile(source / PUBLIC_FILE, kit / PUBLIC_FILE)
    shutil.copyfile(source / PUBLIC_FILE, coordinator_kit / PUBLIC_FILE)


def node_context(kit: Path) -> ts.Context:
    """The secret context a node encrypts and decrypts with, from its own kit."""
    return _load(str(kit / SECRET_FILE))


def server_context(kit: Path) -> ts.Context:
    """The public context the server adds ciphertexts with; refuses one with a secret key."""
    context = _load(str(kit / PUBLIC_FILE))
    if context.is_private():
        raise ConfigError("kit", f"the CKKS context in {kit} holds a secret key; the coordinator's must not")
    return context


def slot_count(settings: CkksSettings) -> int:
    return settings.poly_modulus_degree // 2


def _write_private(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


@functools.lru_cache(maxsize=8)
def _load(path: str) -> ts.Context:
    file = Path(path)
    if not file.is_file():
        raise ConfigError(
            "kit", f"no CKKS context at {file}: secure=ckks needs the federation's CKKS key in every kit"
        )
    return ts.context_from(file.read_bytes())
