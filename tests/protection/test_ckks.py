"""CKKS mode: the server adds ciphertexts it cannot decrypt; nodes decrypt the sum."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import tenseal as ts

from fedtriage.errors import ConfigError
from fl_client.kit import NodeKit, load_node_kit
from fl_client.protection import ckks as ckks_node
from fl_client.protection import secagg as secagg_node
from fl_protocol.identity.kits import provision_simulation
from fl_protocol.protection.ckks_contexts import (
    PUBLIC_FILE,
    SECRET_FILE,
    generate_context,
    node_context,
    server_context,
    share_context,
    slot_count,
)
from fl_protocol.run_config import load_settings
from fl_protocol.settings import CkksSettings, RunSettings
from fl_server.protection.ckks import CkksError, check_ciphertexts, chunk_sizes
from tests.support.inprocess_grid import federate_in_process


@dataclasses.dataclass(frozen=True)
class CkksKits:
    """A test federation's kits with a CKKS key made by node 0 and shared, as a simulation does."""

    settings: CkksSettings
    node: NodeKit
    coordinator: Path


@pytest.fixture(scope="module")
def ckks(tmp_path_factory: pytest.TempPathFactory) -> CkksKits:
    settings = load_settings(["secure=ckks"]).secure.ckks
    provisioned = provision_simulation(tmp_path_factory.mktemp("kits"), "ckks-test", 2)
    generate_context(settings, provisioned.nodes[0])
    share_context(provisioned.nodes[0], provisioned.nodes, provisioned.coordinator)
    return CkksKits(settings, load_node_kit(provisioned.nodes[1]), provisioned.coordinator)


def test_the_server_context_has_no_secret_key_and_cannot_decrypt(ckks: CkksKits) -> None:
    public = server_context(ckks.coordinator)
    assert not public.is_private()
    ciphertext = ts.ckks_vector_from(public, ckks_node.encrypt(np.ones(10), ckks.settings, ckks.node)[0])
    with pytest.raises(ValueError, match="secret"):
        ciphertext.decrypt()


def test_a_coordinator_kit_holding_a_secret_key_is_refused(ckks: CkksKits, tmp_path: Path) -> None:
    (tmp_path / PUBLIC_FILE).write_bytes((ckks.node.path / SECRET_FILE).read_bytes())
    with pytest.raises(ConfigError, match="secret key"):
        server_context(tmp_path)


def test_the_sum_of_encrypted_updates_decrypts_within_1e_3(ckks: CkksKits) -> None:
    rng = np.random.default_rng(0)
    updates = [rng.uniform(-0.5, 0.5, 10_000) for _ in range(5)]
    secret = node_context(ckks.node.path)
    encrypted = [
        [ts.ckks_vector_from(secret, chunk) for chunk in ckks_node.encrypt(update, ckks.settings, ckks.node)]
        for update in updates
    ]
    summed = [sum(chunks[1:], chunks[0]) for chunks in zip(*encrypted)]
    decrypted = np.concatenate([vector.decrypt() for vector in summed])
    assert np.max(np.abs(decrypted - np.sum(updates, axis=0))) < 1e-3


def _tampered_chunks(chunks: list[bytes], how: str) -> list[bytes]:
    if how == "garbage":
        return [b"not a ciphertext"] + chunks[1:]
    if how == "truncated":
        return [chunks[0][: len(chunks[0]) // 2]] + chunks[1:]
    if how == "empty":  # parses as a vector of no values; TenSEAL crashes adding it to a real one
        return [b""] + chunks[1:]
    if how == "missing":
        return chunks[:-1]
    return chunks[1:] + chunks[:1]  # "reordered": the last, short chunk comes first


@pytest.mark.parametrize("how", ["garbage", "truncated", "empty", "missing", "reordered"])
def test_a_malformed_ciphertext_fails_the_sum_naming_its_node(ckks: CkksKits, how: str) -> None:
    update = np.ones(10_000)
    contributions = {
        "node-0": ckks_node.encrypt(update, ckks.settings, ckks.node),
        "node-1": _tampered_chunks(ckks_node.encrypt(update, ckks.settings, ckks.node), how),
    }
    # A RuntimeError: `SecAggAggregation.train_round` turns it into a failed round.
    with pytest.raises(CkksError, match="node node-1 sent"):
        sizes = chunk_sizes(10_000, slot_count(ckks.settings))
        check_ciphertexts(server_context(ckks.coordinator), contributions, sizes)


def federate(directory: Path, name: str, *overrides: str) -> dict:
    settings: RunSettings = load_settings(
        ["secure=ckks", "federation.num_rounds=3", f"output_dir={directory / name}", "tracking.enabled=false",
         *overrides]
    )
    summary, _ = federate_in_process(settings)
    return {"summary": summary, "history": json.loads((Path(summary.output_dir) / "history.json").read_text())}


@pytest.fixture(scope="module")
def everything(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """The history of a federation encrypting the whole update (shared: it takes seconds)."""
    return federate(tmp_path_factory.mktemp("federations"), "all")["history"]


def test_a_ckks_federation_learns_and_reports_ciphertext_expansion(everything: list[dict]) -> None:
    rounds = everything
    assert rounds[-1]["central_eval"]["eval-accuracy"] > rounds[0]["central_eval"]["eval-accuracy"] + 0.3
    assert rounds[-1]["protocol_metrics"]["ckks-expansion"] > 1
    assert "ckks-decrypt-seconds" in rounds[-1]["protocol_metrics"]


def test_selective_encryption_encrypts_only_the_named_layers(everything: list[dict], tmp_path: Path) -> None:
    selective = federate(tmp_path, "classifier", "secure.ckks.encrypted_layers=[classifier]")["history"]
    # Same training, different protection of the same sums: same result within quantization error.
    assert abs(selective[-1]["central_eval"]["eval-accuracy"] - everything[-1]["central_eval"]["eval-accuracy"]) < 0.02
    # Fewer values encrypted: fewer bytes uploaded per node.
    uploaded = [run[-1]["protocol_metrics"]["bytes-per-node-max"] for run in (selective, everything)]
    assert uploaded[0] < uploaded[1]
    # Yet some were: the expansion is reported only for encrypted values, and few values in
    # one partly filled ciphertext cost more bytes each than the whole model in full ones.
    assert selective[-1]["protocol_metrics"]["ckks-expansion"] > everything[-1]["protocol_metrics"]["ckks-expansion"]


def test_a_layer_prefix_matching_no_layer_is_refused_before_any_node_trains(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"secure.ckks.encrypted_layers: \['clasifier'\] match no layer"):
        federate(tmp_path, "typo", "secure.ckks.encrypted_layers=[clasifier]")


def test_a_node_sending_a_garbage_ciphertext_fails_only_its_round_and_reports_no_stale_expansion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    honest_masked = secagg_node.masked
    sent: dict[int, int] = {}

    def garbage_from_node_11_in_round_2(msg, context, kit, contribution, node_info, attachments=None, checked=None):  # type: ignore[no-untyped-def]
        if attachments:
            sent[context.node_id] = sent.get(context.node_id, 0) + 1
            if context.node_id == 11 and sent[11] == 2:
                attachments = [b"not a ciphertext"] * len(attachments)  # authenticated by the node itself
        return honest_masked(msg, context, kit, contribution, node_info, attachments, checked)

    monkeypatch.setattr(secagg_node, "masked", garbage_from_node_11_in_round_2)
    rounds = federate(tmp_path, "garbage", "federation.num_rounds=2")["history"]
    assert "ckks-expansion" in rounds[1]["protocol_metrics"]
    assert "ckks-expansion" not in rounds[2]["protocol_metrics"]  # round 2 failed: no figure from round 1
    assert "round 2 failed" in caplog.text
    assert "CkksError: node node-1 sent a ciphertext that does not parse" in caplog.text
