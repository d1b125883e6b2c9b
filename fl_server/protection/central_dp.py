"""Central differential privacy on top of secure aggregation.

Nodes clip their update's L2 norm to `privacy.clip_norm` before masking; the server
adds Gaussian noise of std `noise_multiplier * clip_norm` to the securely aggregated
sum before the strategy sees it. One node changes that sum by at most `clip_norm`,
so each round is a sampled Gaussian mechanism; Opacus's RDP accountant composes them
(sampling rate: the nodes a round samples over the nodes connected when it samples,
as Flower's strategies sample). Noise is drawn from a generator seeded by the OS,
never from the run's seed. The ledger (the accountant's history) travels in every
checkpoint and is restored on resume, so a resumed run goes on from what was spent.
"""

import copy
import math
import secrets

import numpy as np
from opacus.accountants import RDPAccountant

from fl_protocol.protection.dp_ledger import LedgerEntry
from fl_protocol.settings import RunSettings


class CentralPrivacy:
    """Adds the noise and keeps the privacy ledger of one run."""

    def __init__(self, settings: RunSettings) -> None:
        privacy = settings.privacy
        self._noise_multiplier = privacy.noise_multiplier
        self._std = privacy.noise_multiplier * privacy.clip_norm
        self._delta = privacy.delta
        self._budget = privacy.epsilon_budget
        self._fraction_train = settings.federation.fraction_train
        self._min_train_nodes = settings.federation.min_train_nodes
        # The nodes connected when the current round sampled (set by `refuses_round`).
        self._connected = settings.federation.num_nodes
        self._accountant = RDPAccountant()
        self._rng = np.random.default_rng(secrets.randbits(128))

    def noise_warning(self, update_values: int, sampled: int) -> str | None:
        """Why the noise will drown what `sampled` nodes send of a model of `update_values`
        values, or None.

        The mean update the sampled nodes can send has an L2 norm of at most `clip_norm`;
        the noise on it has a norm of about `std * sqrt(values) / total weight`, and the
        total weight is at most the number of nodes (exactly that under
        `secure.secagg.weighting=equal`; less under `examples` when `max_weight` exceeds a
        node's example count). A model learns nothing from rounds whose noise is larger
        than their signal even in that best case.
        """
        ratio = self._noise_multiplier * math.sqrt(update_values) / max(sampled, 1)
        if ratio <= 1:
            return None
        needed = math.ceil(self._noise_multiplier * math.sqrt(update_values))
        return (
            f"privacy=central: the noise added to each round's mean update is about {ratio:.0f} times the largest "
            f"update {sampled} nodes can send (noise std {self._std:g} over {update_values:,} values, even with "
            f"every node at full weight), so the model will not learn; raise the cohort towards {needed:,} nodes, "
            "lower privacy.noise_multiplier (weaker privacy), or train a smaller model"
        )

    def refuses_round(self, server_round: int, connected: int) -> str | None:
        """Why the next round, sampling from `connected` nodes, may not run (its release would
        exceed the budget), or None. Its ledger entry is priced at the same rate."""
        self._connected = connected
        trial = copy.deepcopy(self._accountant)
        trial.step(noise_multiplier=self._noise_multiplier, sample_rate=self._rate(self._round_sample_size()))
        epsilon = trial.get_epsilon(self._delta)
        if epsilon > self._budget:
            return (
                f"round {server_round} would spend epsilon {epsilon:.3f} > privacy.epsilon_budget={self._budget:g} "
                f"(delta={self._delta:g})"
            )
        return None

    def ledger(self) -> list[LedgerEntry]:
        """Every release accounted so far, for the checkpoint: without it a resumed run would start at 0."""
        return [(float(noise), float(rate), int(steps)) for noise, rate, steps in self._accountant.history]

    def resume(self, ledger: list[LedgerEntry]) -> None:
        """Continue from a checkpoint's ledger: epsilon and the budget stop count what was already spent."""
        self._accountant.history = [(float(noise), float(rate), int(steps)) for noise, rate, steps in ledger]

    def add_noise(self, update_sum: np.ndarray) -> np.ndarray:
        return update_sum + self._rng.normal(0.0, self._std, size=update_sum.shape)

    def record_round(self, sampled: int) -> dict[str, float]:
        """Account for one noisy release of `sampled` nodes' sum; return what was spent so far."""
        self._accountant.step(noise_multiplier=self._noise_multiplier, sample_rate=self._rate(sampled))
        return self.metrics()

    def metrics(self) -> dict[str, float]:
        epsilon = self._accountant.get_epsilon(self._delta) if self._accountant.history else 0.0
        return {"dp-epsilon": float(epsilon), "dp-delta": self._delta, "dp-noise-std": self._std}

    def _round_sample_size(self) -> int:
        """How many nodes the next round samples: Flower's `max(int(n * fraction_train), min_train_nodes)`."""
        return max(int(self._connected * self._fraction_train), self._min_train_nodes)

    def _rate(self, sampled: int) -> float:
        """One node's chance to be in the round: the same for the budget check and the ledger."""
        return min(1.0, sampled / self._connected)
