"""`fedtriage node policy check FILE`: a policy is read as the node reads it, and said in plain words."""

from pathlib import Path

import pytest

from cli.app import main
from configs import CONFIG_DIR


def test_the_commented_defaults_are_a_valid_policy_said_in_plain_words(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["node", "policy", "check", str(CONFIG_DIR / "node" / "policy.yaml")]) == 0
    out = capsys.readouterr().out
    assert "takes part in runs protected by: secagg (never sends its own update as it is)" in out
    assert "runs only approved app bundles: the fedtriage release installed on it" in out


def test_a_units_own_choices_are_said_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("protection:\n  modes: [plaintext, secagg]\nprivacy:\n  required: true\n  max_epsilon: 8\n"
                      "training:\n  models: [cnn]\n  max_local_epochs: 3\n")
    assert main(["node", "policy", "check", str(policy)]) == 0
    out = capsys.readouterr().out
    assert "protected by: plaintext, secagg\n" in out and "only in runs with differential privacy" in out
    assert "an epsilon budget of at most 8" in out and "only these models: cnn, at most 3 local epochs" in out


@pytest.mark.parametrize("text, setting", [
    ("protection:\n  modes: []\n", "policy.protection.modes"),
    ("training:\n  min_batch_size: 64\n  max_batch_size: 8\n", "policy.training.min_batch_size"),
    ("privacy:\n  max_epsilon: -1\n", "policy.privacy.max_epsilon"),
    ("secure:\n  min_peerz: 3\n", "min_peerz"),
])
def test_a_bad_field_is_one_line_naming_it(text: str, setting: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "policy.yaml").write_text(text)
    assert main(["node", "policy", "check", str(tmp_path / "policy.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and setting in err
