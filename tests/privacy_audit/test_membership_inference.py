"""Membership inference: the attack figures are sane, and DP lowers what the attacks learn from the global model."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from fl_client.holdings import load_holdings
from fl_protocol.protection.modes import PrivacyMode, ProtectionMode
from fl_protocol.run_config import load_settings
from privacy_audit.audited_modes import AuditedMode, mode_settings
from privacy_audit.membership_audit import draw_candidates, run_membership_audit, train_on_members
from privacy_audit.membership_inference import (
    ModelOutputs,
    lira_scores,
    loss_threshold_scores,
    model_outputs,
    score_attack,
)
from privacy_audit.report import chance_advantage
from privacy_audit.settings import MembershipSettings

NODES, MEMBERS_PER_NODE = 4, 50
TRAINING = MembershipSettings(members_per_node=MEMBERS_PER_NODE, rounds=15, local_epochs=2, shadow_models=2,
                              privacy=["none"], epsilon_budget=1000.0)


def outputs(confidence: np.ndarray) -> ModelOutputs:
    return ModelOutputs(loss=-confidence, confidence=confidence, correct=confidence > 0)


def test_a_score_that_separates_members_perfectly_has_auc_and_advantage_one() -> None:
    is_member = np.array([True, True, False, False])
    perfect = score_attack(is_member, np.array([0.9, 0.8, 0.2, 0.1]))
    assert (perfect.auc, perfect.advantage) == (1.0, 1.0)


def test_an_uninformative_score_stays_near_auc_half_and_below_the_chance_advantage() -> None:
    rng = np.random.default_rng(3)
    is_member = np.arange(2000) < 1000
    blind = score_attack(is_member, rng.normal(size=2000))
    assert abs(blind.auc - 0.5) < 0.05
    assert blind.advantage < chance_advantage(1000, 1000)


def test_lira_scores_an_image_higher_when_the_target_is_as_confident_as_the_shadows_that_trained_on_it() -> None:
    # Two images; shadows that trained on an image are confident (4), the others are not (0).
    shadow_members = np.array([[True, False], [False, True], [True, False], [False, True]])
    shadows = [outputs(np.where(row, 4.0, 0.0) + 0.1 * index) for index, row in enumerate(shadow_members)]
    target = outputs(np.array([4.0, 0.0]))  # trained on image 0, not on image 1

    scores = lira_scores(target, shadows, shadow_members)

    assert scores[0] > 0 > scores[1]


def federation_advantage(privacy: PrivacyMode, tmp_path: Path) -> tuple[float, float]:
    """Loss-threshold advantage and held-out accuracy against a 4-node secure federation on 200 digits."""
    run = load_settings(["tracking.enabled=false"])
    settings = mode_settings(run, AuditedMode(ProtectionMode.secagg, privacy, NODES), epsilon_budget=1000.0)
    candidates = draw_candidates(run.seed, load_holdings(run.holdings), NODES * MEMBERS_PER_NODE, shadow_models=2)
    model = train_on_members(settings, TRAINING, NODES, candidates, candidates.target_members, run.seed,
                             tmp_path / "kits")
    seen = model_outputs(settings.for_nodes(), model.arrays, candidates.images, candidates.labels)
    is_member = candidates.target_members
    return score_attack(is_member, loss_threshold_scores(seen)).advantage, float(seen.correct[~is_member].mean())


def test_without_dp_the_global_model_gives_its_members_away(tmp_path: Path) -> None:
    advantage, heldout_accuracy = federation_advantage(PrivacyMode.none, tmp_path)
    chance = chance_advantage(NODES * MEMBERS_PER_NODE, NODES * MEMBERS_PER_NODE)
    assert advantage > chance + 0.05
    assert heldout_accuracy > 0.85  # it learned the task: the advantage is overfitting, not a broken model


@pytest.mark.slow
def test_local_dp_sgd_lowers_the_membership_advantage(tmp_path: Path) -> None:
    without, _ = federation_advantage(PrivacyMode.none, tmp_path / "none")
    with_dp, _ = federation_advantage(PrivacyMode.local_dpsgd, tmp_path / "dp")
    assert with_dp < without - 0.1
    assert with_dp < chance_advantage(NODES * MEMBERS_PER_NODE, NODES * MEMBERS_PER_NODE)


def test_the_figures_are_the_same_whether_one_process_or_two_train_the_federations(tmp_path: Path) -> None:
    run = load_settings(["tracking.enabled=false"])
    tiny = MembershipSettings(members_per_node=5, rounds=1, local_epochs=1, shadow_models=2,
                              privacy=["none", "local_dpsgd"], epsilon_budget=1000.0)
    pool = load_holdings(run.holdings)
    alone, side_by_side = (
        run_membership_audit(run, dataclasses.replace(tiny, workers=workers), pool, tmp_path / str(workers), print)
        for workers in (1, 2)
    )
    assert [dataclasses.replace(finding, train_seconds=0.0) for finding in alone] == [
        dataclasses.replace(finding, train_seconds=0.0) for finding in side_by_side]
