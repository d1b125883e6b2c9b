"""How updates are protected on their way to the server, and differential privacy.

Schemas and range checks of `secure.*` and `privacy.*`; the modes themselves are
`fl_protocol.protection.modes`.
"""

import math
from dataclasses import dataclass

from configs.compose import require
from fl_protocol.protection.modes import PrivacyMode, ProtectionMode, Weighting

# SEAL's largest total coefficient modulus (bits) per CKKS polynomial modulus degree, at
# 128-bit security; the degrees fedtriage accepts.
CKKS_MAX_COEFF_MOD_BITS = {4096: 109, 8192: 218, 16384: 438, 32768: 881}
# Most bits per quantized secure-aggregation value (a float32 update has 24 significant bits).
MAX_QUANTIZATION_BITS = 24


@dataclass
class SecAggSettings:
    """SecAgg+ parameters (`secure.mode: secagg`, and what `ckks` does not encrypt)."""

    # Shares needed to rebuild a node's secrets, as a fraction (> 0.5) of its k + 1 holders.
    threshold: float
    # Bits per quantized value; None: the most the federation's size allows (`bits_for`).
    quantization_bits: int | None
    # Each value of a node's weighted update must lie in [-clip_range, clip_range].
    clip_range: float
    # weighting=examples: a node's weight is min(examples, max_weight) / max_weight.
    max_weight: int
    # Bound of the training and evaluation losses carried in the secure vector.
    metric_bound: float
    # Graph degree k (even); null: every node neighbours every other (classic SecAgg).
    neighbours: int | None = None
    # equal (no count leaves a node) or examples (counts travel in the sum; nodes must allow it).
    weighting: Weighting = Weighting.equal

    def bits_for(self, max_contributors: int) -> int:
        """Bits per value: as set, or the most that keep `max_contributors` summed values within 32 bits.

        The masked vector is uint32 whatever the bits, so more bits cost nothing on the wire
        and make the secure mean closer to the plaintext one.
        """
        if self.quantization_bits is not None:
            return self.quantization_bits
        return min(MAX_QUANTIZATION_BITS, 32 - math.ceil(math.log2(max_contributors + 1)))

    @property
    def weight_scale(self) -> int:
        """What a node's exact weight is divided by: its weight in the mean is at most 1."""
        return 1 if self.weighting is Weighting.equal else self.max_weight


@dataclass
class CkksSettings:
    """CKKS homomorphic encryption parameters (`secure.mode: ckks`, TenSEAL)."""

    poly_modulus_degree: int
    coeff_mod_bit_sizes: list[int]
    global_scale_bits: int
    # Layer-name prefixes encrypted under CKKS; the rest goes through SecAgg. null: all.
    encrypted_layers: list[str] | None = None


@dataclass
class UpdateProtectionSettings:
    """How model updates are protected on their way to the server."""

    mode: ProtectionMode
    secagg: SecAggSettings
    ckks: CkksSettings


@dataclass
class PrivacySettings:
    """Differential privacy: central (clip on nodes, noise on the secure sum) or local DP-SGD."""

    mode: PrivacyMode
    # Central DP: L2 norm each node's update is clipped to, and noise std / clip_norm.
    clip_norm: float
    noise_multiplier: float
    delta: float
    # The run stops before a round would push epsilon past this budget.
    epsilon_budget: float
    # Local DP-SGD (Opacus): per-sample gradient norm bound.
    max_grad_norm: float


def check_update_protection(secure: UpdateProtectionSettings, num_nodes: int) -> None:
    """Ranges of `secure.*` for a federation of `num_nodes` nodes."""
    if not secure.mode.is_secure:
        return
    sec = secure.secagg
    if sec.neighbours is not None:
        require(
            sec.neighbours >= 2 and sec.neighbours % 2 == 0,
            "secure.secagg.neighbours",
            f"must be an even number >= 2 (or null for all), got {sec.neighbours}",
        )
    require(0.5 < sec.threshold <= 1.0, "secure.secagg.threshold", f"must be in (0.5, 1], got {sec.threshold}")
    headroom = 32 - math.ceil(math.log2(num_nodes + 1))
    bits = sec.bits_for(num_nodes)
    require(
        8 <= bits <= min(MAX_QUANTIZATION_BITS, headroom),
        "secure.secagg.quantization_bits",
        f"must be in [8, {min(MAX_QUANTIZATION_BITS, headroom)}] so that the sum over {num_nodes} nodes fits 32 "
        f"bits, got {bits}",
    )
    require(sec.clip_range > 0, "secure.secagg.clip_range", f"must be > 0, got {sec.clip_range}")
    require(
        1 <= sec.max_weight and sec.max_weight * (num_nodes + 1) < 2**32,
        "secure.secagg.max_weight",
        f"must be >= 1 and small enough that {num_nodes} nodes' counts fit 32 bits, got {sec.max_weight}",
    )
    require(sec.metric_bound > 0, "secure.secagg.metric_bound", f"must be > 0, got {sec.metric_bound}")
    if secure.mode is ProtectionMode.ckks:
        _check_ckks(secure.ckks)


def _check_ckks(ckks: CkksSettings) -> None:
    """Parameters SEAL would refuse only later, with an error that names no setting."""
    require(
        ckks.poly_modulus_degree in CKKS_MAX_COEFF_MOD_BITS,
        "secure.ckks.poly_modulus_degree",
        f"must be 4096, 8192, 16384 or 32768, got {ckks.poly_modulus_degree}",
    )
    bits = ckks.coeff_mod_bit_sizes
    require(len(bits) >= 2, "secure.ckks.coeff_mod_bit_sizes", "needs at least 2 moduli")
    require(
        all(2 <= size <= 60 for size in bits), "secure.ckks.coeff_mod_bit_sizes", f"each must be in [2, 60], got {bits}"
    )
    limit = CKKS_MAX_COEFF_MOD_BITS[ckks.poly_modulus_degree]
    require(
        sum(bits) <= limit,
        "secure.ckks.coeff_mod_bit_sizes",
        f"add up to {sum(bits)} bits, more than the {limit} SEAL allows for "
        f"secure.ckks.poly_modulus_degree={ckks.poly_modulus_degree}",
    )
    require(
        20 <= ckks.global_scale_bits <= 60, "secure.ckks.global_scale_bits", f"must be in [20, 60], got "
        f"{ckks.global_scale_bits}"
    )
    require(
        ckks.encrypted_layers is None or len(ckks.encrypted_layers) > 0,
        "secure.ckks.encrypted_layers",
        "must name at least one layer prefix (or be null for the whole model); [] would encrypt nothing",
    )


def check_privacy(privacy: PrivacySettings, protection: ProtectionMode) -> None:
    """Ranges of `privacy.*`; central DP needs a secure sum to add its noise to."""
    if privacy.mode is PrivacyMode.none:
        return
    if privacy.mode is PrivacyMode.central:
        require(
            protection.is_secure,
            "privacy.mode",
            "central DP adds noise to the securely aggregated sum: it needs secure.mode secagg or ckks",
        )
        require(privacy.clip_norm > 0, "privacy.clip_norm", f"must be > 0, got {privacy.clip_norm}")
    require(privacy.noise_multiplier > 0, "privacy.noise_multiplier", f"must be > 0, got {privacy.noise_multiplier}")
    require(0 < privacy.delta < 1, "privacy.delta", f"must be in (0, 1), got {privacy.delta}")
    require(privacy.epsilon_budget > 0, "privacy.epsilon_budget", f"must be > 0, got {privacy.epsilon_budget}")
    require(privacy.max_grad_norm > 0, "privacy.max_grad_norm", f"must be > 0, got {privacy.max_grad_norm}")
