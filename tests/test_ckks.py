"""CKKS mode: the server adds ciphertexts it cannot decrypt; nodes decrypt the sum."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import tenseal as ts

from fl_client import ckks_node
from fl_client.client_app import app as client_app
from fl_protocol.ckks_contexts import PUBLIC_FILE, SECRET_FILE, generate_contexts, node_context, server_context
from fl_protocol.errors import ConfigError
from fl_protocol.run_config import load_settings, to_run_config
from fl_protocol.settings import CkksSettings, RunSettings
from fl_server.server_app import run_federation
from tests.support.inprocess_grid import InProcessGrid


@pytest.fixture(scope="module")
def ckks(tmp_path_factory: pytest.TempPathFactory) -> CkksSettings:
    settings = load_settings(["secure=ckks"]).secure.ckks
    directory = generate_contexts(settings, tmp_path_factory.mktemp("ckks"))
    return dataclasses.replace(settings, context_dir=str(directory))


def test_the_server_context_has_no_secret_key_and_cannot_decrypt(ckks: CkksSettings) -> None:
    public = server_context(ckks)
    assert not public.is_private()
    ciphertext = ts.ckks_vector_from(public, ckks_node.encrypt(np.ones(10), ckks)[0])
    with pytest.raises(ValueError, match="secret"):
        ciphertext.decrypt()


def test_a_server_path_holding_a_secret_key_is_refused(ckks: CkksSettings, tmp_path: Path) -> None:
    (tmp_path / PUBLIC_FILE).parent.mkdir(parents=True)
    (tmp_path / PUBLIC_FILE).write_bytes((Path(str(ckks.context_dir)) / SECRET_FILE).read_bytes())
    with pytest.raises(ConfigError, match="secret key"):
        server_context(dataclasses.replace(ckks, context_dir=str(tmp_path)))


def test_the_sum_of_encrypted_updates_decrypts_within_1e_3(ckks: CkksSettings) -> None:
    rng = np.random.default_rng(0)
    updates = [rng.uniform(-0.5, 0.5, 10_000) for _ in range(5)]
    public = server_context(ckks)
    encrypted = [[ts.ckks_vector_from(public, chunk) for chunk in ckks_node.encrypt(u, ckks)] for u in updates]
    summed = encrypted[0]
    for node in encrypted[1:]:
        summed = [a + b for a, b in zip(summed, node)]
    secret = node_context(ckks)
    decrypted = np.concatenate([ts.ckks_vector_from(secret, v.serialize()).decrypt() for v in summed])[:10_000]
    assert np.max(np.abs(decrypted - np.sum(updates, axis=0))) < 1e-3


def federate(tmp_path: Path, name: str, ckks: CkksSettings, *overrides: str) -> dict:
    settings: RunSettings = load_settings(
        [
            "secure=ckks", "federation.num_rounds=3", f"output_dir={tmp_path / name}", "tracking.enabled=false",
            f"secure.ckks.context_dir={ckks.context_dir}", *overrides,
        ]
    )
    nodes = {10 + i: {"partition-id": i, "num-partitions": 4} for i in range(4)}
    summary = run_federation(InProcessGrid(client_app, nodes, to_run_config(settings)), settings, flower_run_id=1)
    return {"summary": summary, "history": json.loads((Path(summary.output_dir) / "history.json").read_text())}


def test_a_ckks_federation_learns_and_reports_ciphertext_expansion(ckks: CkksSettings, tmp_path: Path) -> None:
    run = federate(tmp_path, "all", ckks)
    rounds = run["history"]
    assert rounds[-1]["central_eval"]["eval-accuracy"] > rounds[0]["central_eval"]["eval-accuracy"] + 0.3
    assert rounds[-1]["protocol_metrics"]["ckks-expansion"] > 1
    assert "ckks-decrypt-seconds" in rounds[-1]["protocol_metrics"]


def test_selective_encryption_encrypts_only_the_named_layers(ckks: CkksSettings, tmp_path: Path) -> None:
    everything = federate(tmp_path, "all", ckks)["history"]
    selective = federate(tmp_path, "classifier", ckks, "secure.ckks.encrypted_layers=[classifier]")["history"]
    # Same training, different protection of the same sums: same result within quantization error.
    assert abs(selective[-1]["central_eval"]["eval-accuracy"] - everything[-1]["central_eval"]["eval-accuracy"]) < 0.02
    # Fewer values encrypted: fewer bytes uploaded per node.
    uploaded = [run[-1]["protocol_metrics"]["bytes-per-node-max"] for run in (selective, everything)]
    assert uploaded[0] < uploaded[1]
