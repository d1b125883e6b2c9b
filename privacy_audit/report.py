"""What the audit found, for readers: a table, the claims table beside the README's threat model, the figures.

Every claim row names the threat model's wording, the attack that tests it, the attacked
setting and the measured number; a reconstruction's quality is shown beside the floor that
knowing only the data's distribution gives (the pool's mean image), a membership advantage
beside what a score without information reaches by chance on as many images.
"""

import math
from dataclasses import dataclass

from fl_protocol.protection.modes import PrivacyMode, ProtectionMode
from privacy_audit.inversion_audit import InversionFinding
from privacy_audit.membership_audit import MembershipFinding
from privacy_audit.membership_inference import LIRA, LOSS_THRESHOLD
from privacy_audit.settings import AuditSettings

# Kolmogorov-Smirnov's 5 % constant: the largest TPR - FPR an uninformative score exceeds 5 % of the time.
_KS_5_PERCENT = 1.358

_ATTACK_NAMES = {
    LOSS_THRESHOLD: "loss threshold (Yeom et al. 2018)",
    LIRA: "LiRA, online, global variance (Carlini et al. 2022)",
}


@dataclass(frozen=True)
class AuditContext:
    """What was audited, as a reader needs it to read the figures."""

    dataset: str
    model: str
    lr: float
    noise_multiplier: float
    clip_norm: float
    max_grad_norm: float
    min_cohort: int


@dataclass(frozen=True)
class AuditReport:
    context: AuditContext
    settings: AuditSettings
    inversion: tuple[InversionFinding, ...]
    membership: tuple[MembershipFinding, ...]
    seconds: float


def chance_advantage(members: int, non_members: int) -> float:
    """The advantage an uninformative score exceeds only 5 % of the time on this many images."""
    return _KS_5_PERCENT * math.sqrt((members + non_members) / (members * non_members))


def format_table(report: AuditReport) -> str:
    """The readable table the command prints."""
    lines = [
        f"Privacy audit on {report.context.dataset}, model {report.context.model} "
        f"({report.seconds:.0f} s)",
        "",
        "Gradient inversion by the server (one SGD step per node, labels known, "
        f"{report.settings.inversion.iterations} iterations, {report.settings.inversion.trials} trial(s))",
        f"{'mode':<24}{'cohort':>7}{'images/node':>12}{'PSNR dB':>9}{'SSIM':>7}{'best dB':>9}"
        f"{'floor dB':>10}{'epsilon':>9}",
    ]
    for finding in report.inversion:
        lines.append(
            f"{finding.mode.label:<24}{finding.mode.cohort:>7}{finding.images_per_node:>12}{finding.psnr:>9.1f}"
            f"{finding.ssim:>7.3f}{finding.best_psnr:>9.1f}{finding.prior_psnr:>10.1f}{_epsilon(finding.epsilon):>9}"
        )
    lines += [
        "floor: the pool's mean image in place of every reconstruction",
        "",
        "Membership inference against the final global model (secure sum over "
        f"{_membership_nodes(report)} nodes, {report.settings.membership.rounds} rounds)",
        f"{'privacy':<24}{'attack':<16}{'AUC':>7}{'advantage':>11}{'epsilon':>9}{'member acc':>12}{'held-out acc':>14}",
    ]
    for membership in report.membership:
        lines.append(
            f"{membership.mode.label:<24}{membership.attack:<16}{membership.auc:>7.3f}{membership.advantage:>11.3f}"
            f"{_epsilon(membership.epsilon):>9}{membership.member_accuracy:>12.3f}{membership.heldout_accuracy:>14.3f}"
        )
    if report.membership:
        members = report.membership[0].members
        lines.append(f"an uninformative score reaches advantage {chance_advantage(members, members):.3f} "
                     f"by chance (5 %) on {members} members and {members} non-members")
    return "\n".join(lines)


def claims_markdown(report: AuditReport) -> str:
    """The claims table: each claim of the README's threat model, the attack that tests it, the measured number."""
    context, inversion = report.context, report.settings.inversion
    lines = [
        f"# Privacy audit: claims and measurements ({context.dataset}, model {context.model})",
        "",
        "The server is honest but curious: it attacks exactly what it receives in each mode. Gradient inversion "
        f"(Geiping et al. 2020): cosine gradient matching with a total-variation prior, {inversion.iterations} "
        "iterations; each node trains one SGD step on its images; the attacker knows the model it sent, the "
        "nodes' training settings and seeds, and (an upper bound) their labels. PSNR and SSIM (scikit-image) "
        "are against the true images, each matched to its best reconstruction; *floor* is the pool's mean image. "
        f"Mean of {inversion.trials} trial(s).",
        "",
        "| claim (README threat model) | attack that tests it | attacked setting | measured |",
        "|---|---|---|---|",
    ]
    for finding in report.inversion:
        lines.append(f"| {_inversion_claim(finding, context)} | gradient inversion of {_attacked_object(finding)} | "
                     f"{_inversion_setting(finding)} | PSNR {finding.psnr:.1f} dB, SSIM {finding.ssim:.2f} "
                     f"(best image {finding.best_psnr:.1f} dB; floor {finding.prior_psnr:.1f} dB, "
                     f"SSIM {finding.prior_ssim:.2f}){_epsilon_note(finding.epsilon)} |")
    for membership in report.membership:
        chance = chance_advantage(membership.members, membership.members)
        lines.append(
            f"| {_membership_claim(membership.mode.privacy)} | membership inference: "
            f"{_ATTACK_NAMES[membership.attack]} | {_membership_setting(report, membership)} | "
            f"AUC {membership.auc:.3f}, advantage {membership.advantage:.3f} (chance {chance:.3f}); "
            f"held-out accuracy {membership.heldout_accuracy:.3f}{_epsilon_note(membership.epsilon)} |"
        )
    return "\n".join(lines) + "\n"


def audit_figures(report: AuditReport) -> dict[str, float | int | str]:
    """Every figure under a flat name, for the JSON line."""
    figures: dict[str, float | int | str] = {"dataset": report.context.dataset}
    for finding in report.inversion:
        name = f"inversion.{finding.mode.label}.cohort{finding.mode.cohort}.images{finding.images_per_node}"
        figures[f"{name}.psnr"] = round(finding.psnr, 2)
        figures[f"{name}.ssim"] = round(finding.ssim, 4)
        figures[f"{name}.best_psnr"] = round(finding.best_psnr, 2)
        figures[f"{name}.floor_psnr"] = round(finding.prior_psnr, 2)
        if finding.epsilon is not None:
            figures[f"{name}.epsilon"] = round(finding.epsilon, 3)
    for membership in report.membership:
        name = f"mia.{membership.mode.label}"
        figures[f"{name}.{membership.attack}.auc"] = round(membership.auc, 4)
        figures[f"{name}.{membership.attack}.advantage"] = round(membership.advantage, 4)
        figures[f"{name}.heldout_accuracy"] = round(membership.heldout_accuracy, 4)
        if membership.epsilon is not None:
            figures[f"{name}.epsilon"] = round(membership.epsilon, 3)
    if report.membership:
        members = report.membership[0].members
        figures["mia.chance_advantage"] = round(chance_advantage(members, members), 4)
    figures["seconds"] = round(report.seconds, 1)
    return figures


def _inversion_claim(finding: InversionFinding, context: AuditContext) -> str:
    mode = finding.mode
    if mode.privacy is PrivacyMode.local_dpsgd:
        return (f"`privacy=local_dpsgd`: DP-SGD on every node (noise {context.noise_multiplier:g} x clip "
                f"{context.max_grad_norm:g} per step) protects even an update the server reads alone")
    if mode.privacy is PrivacyMode.central:
        return (f"`privacy=central`: Gaussian noise ({context.noise_multiplier:g} x clip {context.clip_norm:g}) "
                "on the secure sum; trusts the coordinator to add it")
    if mode.protection is ProtectionMode.plaintext:
        return "`plaintext`: a coordinator reading one node's update: **exposed**"
    return (f"`secagg`: a coordinator sees only sums over a cohort of at least `secure.min_cohort` "
            f"({context.min_cohort}): protected")


def _attacked_object(finding: InversionFinding) -> str:
    if finding.mode.protection is ProtectionMode.plaintext:
        return "the node's plaintext update"
    return f"the unmasked secure sum, every image of the cohort's {finding.mode.cohort} nodes"


def _inversion_setting(finding: InversionFinding) -> str:
    return f"`{finding.mode.label}`, cohort {finding.mode.cohort}, {finding.images_per_node} image(s) per node"


def _membership_claim(privacy: PrivacyMode) -> str:
    if privacy is PrivacyMode.none:
        return ("what the aggregate itself reveals (membership): not protected without `privacy=central` or "
                "`local_dpsgd`")
    return f"membership: protected by `privacy={privacy}`"


def _membership_setting(report: AuditReport, membership: MembershipFinding) -> str:
    settings = report.settings.membership
    return (f"`{membership.mode.label}`, {membership.mode.cohort} nodes, {membership.members} members, "
            f"{settings.rounds} rounds x {settings.local_epochs} epochs, {membership.shadow_models} shadow models")


def _membership_nodes(report: AuditReport) -> int:
    return report.membership[0].mode.cohort if report.membership else 0


def _epsilon(epsilon: float | None) -> str:
    return "-" if epsilon is None else f"{epsilon:.2f}"


def _epsilon_note(epsilon: float | None) -> str:
    return "" if epsilon is None else f"; epsilon {epsilon:.2f}"
