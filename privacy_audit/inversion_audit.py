"""The gradient inversion audit: each mode's server view of one round, attacked and scored.

Every trial draws fresh proxy images, gives each node of the largest cohort its own
`images_per_node` of them, and starts from a freshly initialised global model (round 1).
The nodes train once; their updates then reach the server as each mode delivers them:
node 0's plaintext update, the secure sum of the first `cohort` nodes (plain, or with
central DP's noise over the default cohort), and node 0's plaintext update trained under
local DP-SGD. The attack reconstructs every image the received object holds; its quality is
scored against all of them (`image_quality.matched_scores`).
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fl_client.holdings import Holdings
from fl_protocol.protection.modes import PrivacyMode, ProtectionMode
from fl_protocol.settings import RunSettings
from fl_server.protection.central_dp import CentralPrivacy
from privacy_audit.audited_model import ModelArrays, build_audited_model, model_arrays
from privacy_audit.audited_modes import AuditedMode, mode_settings
from privacy_audit.gradient_inversion import InversionBudget, InversionTarget, NodeKnowledge, invert_update
from privacy_audit.image_quality import matched_scores
from privacy_audit.node_kits import provision_node_kits
from privacy_audit.node_updates import NodeData, NodeUpdate, train_node
from privacy_audit.server_view import plaintext_delta, secure_sum
from privacy_audit.settings import InversionSettings

Progress = Callable[[str], None]


@dataclass(frozen=True)
class InversionFinding:
    """How well the attack reconstructed the images behind one mode's server view (mean over trials)."""

    mode: AuditedMode
    images_per_node: int
    psnr: float
    ssim: float
    # The best single image's PSNR over all trials: whether any one image leaked.
    best_psnr: float
    trials: int
    attack_seconds: float
    # The same scores for the pool's mean image in place of every reconstruction: what knowing
    # only the data's distribution gives, the floor against which a reconstruction counts.
    prior_psnr: float
    prior_ssim: float
    # Local DP-SGD: node 0's epsilon after the round; central DP: the round's epsilon; else None.
    epsilon: float | None = None


@dataclass(frozen=True)
class ReconstructionSample:
    """Node 0's true images (in its draw order) and the reconstructions matched to them, from the first trial."""

    mode: AuditedMode
    images_per_node: int
    truth: np.ndarray
    reconstructed: np.ndarray
    psnr: tuple[float, ...]


@dataclass(frozen=True)
class InversionAudit:
    findings: tuple[InversionFinding, ...]
    samples: tuple[ReconstructionSample, ...]


@dataclass(frozen=True)
class _TrialScore:
    psnr: float
    ssim: float
    best_psnr: float
    seconds: float
    prior_psnr: float
    prior_ssim: float
    epsilon: float | None


@dataclass(frozen=True)
class _ServerView:
    """What one mode delivered to the server in one trial, and the nodes it holds."""

    delta: ModelArrays
    nodes: tuple[NodeData, ...]
    updates: tuple[NodeUpdate, ...]
    epsilon: float | None


def audited_inversion_modes(run: RunSettings, inversion: InversionSettings) -> list[AuditedMode]:
    """One node's plaintext update; the secure sum per cohort size; central DP over the default cohort;
    one node's plaintext update under local DP-SGD."""
    none, plaintext, secagg = PrivacyMode.none, ProtectionMode.plaintext, ProtectionMode.secagg
    return [
        AuditedMode(plaintext, none, 1),
        *(AuditedMode(secagg, none, cohort) for cohort in sorted(set(inversion.cohort_sizes))),
        AuditedMode(secagg, PrivacyMode.central, run.federation.num_nodes),
        AuditedMode(plaintext, PrivacyMode.local_dpsgd, 1),
    ]


def run_inversion_audit(
    run: RunSettings, inversion: InversionSettings, pool: Holdings, scratch: Path, progress: Progress,
    modes: Sequence[AuditedMode] | None = None,
) -> InversionAudit:
    """Attack each of `modes` (None: `audited_inversion_modes`) for every `images_per_node`, `trials` times each."""
    modes = list(modes) if modes is not None else audited_inversion_modes(run, inversion)
    budget = InversionBudget(inversion.iterations, inversion.step_size, inversion.tv_weight)
    prior = pool.as_dataset().tensors[0].mean(dim=0, keepdim=True)
    findings: list[InversionFinding] = []
    samples: list[ReconstructionSample] = []
    for images_per_node in inversion.images_per_node:
        scores: dict[AuditedMode, list[_TrialScore]] = {mode: [] for mode in modes}
        for trial in range(inversion.trials):
            round_ = _AttackedRound(run, pool, images_per_node, trial, max(mode.cohort for mode in modes),
                                    scratch / f"kits-{images_per_node}-{trial}")
            for mode in modes:
                score, sample = _attack(round_, mode, budget, prior, seed=run.seed + trial)
                scores[mode].append(score)
                progress(f"inversion {mode.label} cohort={mode.cohort} images/node={images_per_node} "
                         f"trial {trial + 1}: PSNR {score.psnr:.1f} dB, SSIM {score.ssim:.3f} ({score.seconds:.0f} s)")
                if trial == 0:
                    samples.append(sample)
        findings.extend(_finding(mode, images_per_node, scores[mode]) for mode in modes)
    return InversionAudit(tuple(findings), tuple(samples))


def _attack(
    round_: "_AttackedRound", mode: AuditedMode, budget: InversionBudget, prior: torch.Tensor, seed: int
) -> tuple[_TrialScore, ReconstructionSample]:
    """Reconstruct every image behind `mode`'s server view of `round_`, and score it against the truth."""
    view = round_.server_view(mode)
    target = InversionTarget(
        round_.global_arrays,
        view.delta,
        tuple(NodeKnowledge(_drawn(node.labels, update), node.seed) for node, update in zip(view.nodes, view.updates)),
        tuple(view.nodes[0].images.shape[1:]),
    )
    started = time.perf_counter()
    reconstructed = invert_update(round_.settings(mode).for_nodes(), target, budget, seed=seed)
    seconds = time.perf_counter() - started
    truth = torch.cat([_drawn(node.images, update) for node, update in zip(view.nodes, view.updates)]).numpy()
    scored = matched_scores(truth, reconstructed.numpy())
    floor = matched_scores(truth, prior.expand(truth.shape).numpy())
    count = round_.images_per_node
    sample = ReconstructionSample(mode, count, truth[:count], reconstructed[list(scored.matched[:count])].numpy(),
                                  scored.psnr[:count])
    score = _TrialScore(scored.mean_psnr, scored.mean_ssim, scored.best_psnr, seconds, floor.mean_psnr,
                        floor.mean_ssim, view.epsilon)
    return score, sample


class _AttackedRound:
    """One trial's round 1: the global model, each node's images, and their updates (trained once each)."""

    def __init__(self, run: RunSettings, pool: Holdings, images_per_node: int, trial: int, nodes: int,
                 kits: Path) -> None:
        self._run = run
        self._kits = kits
        self.images_per_node = images_per_node
        rng = np.random.default_rng([run.seed, trial, images_per_node])
        chosen = rng.choice(len(pool), size=nodes * images_per_node, replace=False)
        dataset = pool.subset(chosen).as_dataset()
        images, labels = dataset.tensors
        self.nodes = tuple(
            NodeData(images[k * images_per_node:(k + 1) * images_per_node],
                     labels[k * images_per_node:(k + 1) * images_per_node],
                     seed=int(rng.integers(2**31)))
            for k in range(nodes)
        )
        torch.manual_seed(run.seed + trial)
        self.global_arrays = model_arrays(build_audited_model(run.for_nodes()))
        self._plain: dict[int, NodeUpdate] = {}

    def settings(self, mode: AuditedMode) -> RunSettings:
        return mode_settings(self._run, mode)

    def server_view(self, mode: AuditedMode) -> _ServerView:
        settings = self.settings(mode)
        nodes = self.nodes[: mode.cohort]
        if mode.privacy is PrivacyMode.local_dpsgd:
            kits = provision_node_kits(self._kits, mode.cohort)
            updates = tuple(train_node(settings.for_nodes(), self.global_arrays, node, kit)
                            for node, kit in zip(nodes, kits))
        else:
            # Training does not depend on the protection, and central DP clips when encoding: trained once.
            updates = tuple(self._plain_update(index) for index in range(mode.cohort))
        if mode.protection is ProtectionMode.plaintext:
            (update,) = updates
            return _ServerView(plaintext_delta(settings.for_nodes(), self.global_arrays, update), nodes, updates,
                               update.result.epsilon)
        privacy = CentralPrivacy(settings) if mode.privacy is PrivacyMode.central else None
        secure = secure_sum(settings, self.global_arrays, updates, privacy)
        epsilon = privacy.metrics()["dp-epsilon"] if privacy is not None else None
        return _ServerView(secure.mean_delta(self.global_arrays), nodes, updates, epsilon)

    def _plain_update(self, index: int) -> NodeUpdate:
        if index not in self._plain:
            settings = mode_settings(self._run, AuditedMode(ProtectionMode.plaintext, PrivacyMode.none, 1))
            self._plain[index] = train_node(settings.for_nodes(), self.global_arrays, self.nodes[index])
        return self._plain[index]


def _drawn(values: torch.Tensor, update: NodeUpdate) -> torch.Tensor:
    """`values` of a node in the order its loader drew them in its first step (all of them: one step)."""
    count = int(values.shape[0])
    order = list(update.drawn[:count])
    return values[order] if sorted(order) == list(range(count)) else values


def _finding(mode: AuditedMode, images_per_node: int, trials: list[_TrialScore]) -> InversionFinding:
    epsilons = [trial.epsilon for trial in trials if trial.epsilon is not None]
    return InversionFinding(
        mode=mode,
        images_per_node=images_per_node,
        psnr=float(np.mean([trial.psnr for trial in trials])),
        ssim=float(np.mean([trial.ssim for trial in trials])),
        best_psnr=float(np.max([trial.best_psnr for trial in trials])),
        trials=len(trials),
        attack_seconds=float(np.mean([trial.seconds for trial in trials])),
        prior_psnr=float(np.mean([trial.prior_psnr for trial in trials])),
        prior_ssim=float(np.mean([trial.prior_ssim for trial in trials])),
        epsilon=float(np.mean(epsilons)) if epsilons else None,
    )
