"""The MLflow names of the privacy audit's figures: the audit logs them, `fedtriage compare` reads them.

Both sides import this module, so a renamed metric cannot leave the comparison reading
nothing. An audit run logs each figure as a metric (its final value is the one compared)
and names what it attacked in `AUDITED_MODE_TAG`, e.g. `plaintext`, `secagg`,
`secagg+central` (protection mode, then the privacy mode when there is one), with the
cohort the attack faced in `AUDITED_COHORT_TAG`.
"""

# Gradient inversion: reconstruction quality against the true images (higher: more leaked).
INVERSION_PSNR = "audit.inversion_psnr"  # decibels
INVERSION_SSIM = "audit.inversion_ssim"  # structural similarity, at most 1
# Membership inference against the final global model (AUC 0.5 and advantage 0: nothing learned).
MIA_AUC = "audit.mia_auc"
MIA_ADVANTAGE = "audit.mia_advantage"  # max over thresholds of true positive rate - false positive rate

# Metric name -> how a report heads its column, in the order reports show them.
AUDIT_METRICS: dict[str, str] = {
    INVERSION_PSNR: "inversion PSNR (dB)",
    INVERSION_SSIM: "inversion SSIM",
    MIA_AUC: "MIA AUC",
    MIA_ADVANTAGE: "MIA advantage",
}

# What the audit attacked: the update protection and privacy mode it saw, e.g. `secagg+central`.
AUDITED_MODE_TAG = "fedtriage.audit.mode"
# How many nodes' updates the attacked aggregate held (1: a single node's plaintext update).
AUDITED_COHORT_TAG = "fedtriage.audit.cohort"
