"""The membership inference audit: per privacy setting, a target federation, its shadows, both attacks.

The candidates are `2 * nodes * members_per_node` proxy images; half of each class's are the
target federation's members, split evenly among its nodes, the other half stay out: members
and non-members hold the classes alike, so no attack scores a class's frequency instead of
membership (a model that learned little still fits its members' class mix better). Every
shadow model trains the same way (same nodes, rounds, training and privacy setting) on its
own random half, each image being a member of exactly half of the shadows (`shadow_models // 2`).

The target and shadow federations of every setting are independent trainings with seeds of their
own: `membership.workers` processes train them side by side (the figures do not depend on how many).
"""

import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fl_client.holdings import Holdings
from fl_protocol.protection.modes import PrivacyMode, ProtectionMode
from fl_protocol.settings import RunSettings
from privacy_audit.audited_modes import AuditedMode, mode_settings
from privacy_audit.federated_training import GlobalModel, NodeMembers, train_federation
from privacy_audit.membership_inference import (
    LIRA,
    LOSS_THRESHOLD,
    ModelOutputs,
    lira_scores,
    loss_threshold_scores,
    model_outputs,
    score_attack,
)
from privacy_audit.settings import MembershipSettings

Progress = Callable[[str], None]


@dataclass(frozen=True)
class MembershipFinding:
    """One attack on the global model of one privacy setting."""

    mode: AuditedMode
    attack: str
    auc: float
    advantage: float
    members: int
    shadow_models: int
    # What the target cost and what it learned: its epsilon (None without DP) and its accuracy.
    epsilon: float | None
    member_accuracy: float
    heldout_accuracy: float
    train_seconds: float


@dataclass(frozen=True)
class Candidates:
    """The images the attacks score, which of them the target trains on, and which each shadow trains on."""

    images: torch.Tensor
    labels: torch.Tensor
    target_members: np.ndarray
    # [shadow_models, candidates]: which shadow trains on which image.
    shadow_members: np.ndarray


@dataclass(frozen=True)
class _Training:
    """One federation the audit trains (a target or a shadow), as a worker process receives it."""

    settings: RunSettings
    membership: MembershipSettings
    nodes: int
    candidates: Candidates
    members: np.ndarray
    seed: int
    kits: Path


@dataclass(frozen=True)
class _Trained:
    """What the audit keeps of a trained federation: its outputs on every candidate, and its cost."""

    outputs: ModelOutputs
    epsilon: float | None
    seconds: float


def run_membership_audit(
    run: RunSettings, membership: MembershipSettings, pool: Holdings, scratch: Path, progress: Progress
) -> tuple[MembershipFinding, ...]:
    """Both attacks against the target federation of every privacy setting in `membership.privacy`."""
    nodes = membership.nodes or run.federation.num_nodes
    candidates = draw_candidates(run.seed, pool, nodes * membership.members_per_node, membership.shadow_models)
    modes = [AuditedMode(ProtectionMode.secagg, PrivacyMode(privacy), nodes) for privacy in membership.privacy]
    trainings: list[_Training] = []
    for privacy, mode in zip(membership.privacy, modes):
        settings = mode_settings(run, mode, epsilon_budget=membership.epsilon_budget)
        trainings.append(_Training(settings, membership, nodes, candidates, candidates.target_members, run.seed,
                                   scratch / f"{privacy}-target"))
        trainings += [
            _Training(settings, membership, nodes, candidates, members, run.seed + 1 + index,
                      scratch / f"{privacy}-shadow-{index}")
            for index, members in enumerate(candidates.shadow_members)
        ]
    findings: list[MembershipFinding] = []
    with closing(_train_all(trainings, membership.workers or os.cpu_count() or 1, run.train.threads)) as trained:
        for mode in modes:  # in order: each mode's target, then its shadows
            target, *shadow_runs = (next(trained) for _ in range(1 + membership.shadow_models))
            findings += _attack(mode, target, [shadow.outputs for shadow in shadow_runs], candidates, progress)
    return tuple(findings)


def _attack(mode: AuditedMode, target: _Trained, shadows: list[ModelOutputs], candidates: Candidates,
            progress: Progress) -> list[MembershipFinding]:
    outputs = target.outputs
    findings = []
    scores = {
        LOSS_THRESHOLD: loss_threshold_scores(outputs),
        LIRA: lira_scores(outputs, shadows, candidates.shadow_members),
    }
    is_member = candidates.target_members
    for attack, attack_scores in scores.items():
        score = score_attack(is_member, attack_scores)
        findings.append(MembershipFinding(
            mode=mode, attack=attack, auc=score.auc, advantage=score.advantage, members=int(is_member.sum()),
            shadow_models=len(shadows), epsilon=target.epsilon,
            member_accuracy=float(outputs.correct[is_member].mean()),
            heldout_accuracy=float(outputs.correct[~is_member].mean()), train_seconds=target.seconds,
        ))
        progress(f"membership {mode.label} {attack}: AUC {score.auc:.3f}, advantage {score.advantage:.3f}")
    return findings


def _train_all(trainings: list[_Training], workers: int, threads: int) -> Iterator[_Trained]:
    """The trainings' results in the order given: in this process (one worker), else in up to `workers`
    fresh ones (spawned: nothing of this process's threads or state is forked), `threads` torch threads each."""
    if min(workers, len(trainings)) <= 1:
        yield from map(_train, trainings)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(trainings)), mp_context=context, initializer=torch.set_num_threads,
                             initargs=(threads,)) as executor:
        yield from executor.map(_train, trainings)


def _train(training: _Training) -> _Trained:
    started = time.perf_counter()
    model = train_on_members(training.settings, training.membership, training.nodes, training.candidates,
                             training.members, training.seed, training.kits)
    outputs = _outputs(training.settings, model, training.candidates)
    return _Trained(outputs, model.epsilon, time.perf_counter() - started)


def draw_candidates(seed: int, pool: Holdings, members: int, shadow_models: int) -> Candidates:
    """`2 * members` images of `pool`; the target's members are half of each class's (an odd one out at random)."""
    rng = np.random.default_rng([seed, members, shadow_models])
    chosen = rng.choice(len(pool), size=2 * members, replace=False)
    images, labels = pool.subset(chosen).as_dataset().tensors
    target = np.zeros(2 * members, dtype=bool)
    for label in np.unique(labels.numpy()):
        same = rng.permutation(np.flatnonzero(labels.numpy() == label))
        target[same[: len(same) // 2 + int(len(same) % 2 == 1 and rng.random() < 0.5)]] = True
    shadows = np.zeros((shadow_models, 2 * members), dtype=bool)
    for column in range(2 * members):
        shadows[rng.permutation(shadow_models)[: shadow_models // 2], column] = True
    return Candidates(images, labels, target, shadows)


def train_on_members(settings: RunSettings, membership: MembershipSettings, nodes: int, candidates: Candidates,
                     members: np.ndarray, seed: int, kits: Path) -> GlobalModel:
    """A federation of `nodes` trained on the `members` of the candidates, split evenly among its nodes."""
    indices = np.random.default_rng(seed).permutation(np.flatnonzero(members))
    parts = [torch.from_numpy(part) for part in np.array_split(indices, nodes)]
    return train_federation(
        settings, [NodeMembers(candidates.images[part], candidates.labels[part]) for part in parts],
        membership.rounds, membership.local_epochs, seed, kits,
    )


def _outputs(settings: RunSettings, model: GlobalModel, candidates: Candidates) -> ModelOutputs:
    return model_outputs(settings.for_nodes(), model.arrays, candidates.images, candidates.labels)
