"""What the server receives in each audited mode, named as MLflow tags and tables name it.

A mode is an update protection (plaintext: one node's own update; secagg: the sum over a
cohort), a privacy setting on top (central DP: noise on the secure sum; local DP-SGD: noise
in every node's own training) and the cohort size the attacked object holds.
"""

import dataclasses
from dataclasses import dataclass

from fl_protocol.protection.modes import PrivacyMode, ProtectionMode
from fl_protocol.settings import RunSettings


@dataclass(frozen=True)
class AuditedMode:
    protection: ProtectionMode
    privacy: PrivacyMode
    # Nodes whose updates the attacked object holds (1: one node's plaintext update).
    cohort: int

    @property
    def label(self) -> str:
        """`plaintext`, `secagg`, `secagg+central`, `plaintext+local_dpsgd`: protection, then privacy."""
        if self.privacy is PrivacyMode.none:
            return str(self.protection)
        return f"{self.protection}+{self.privacy}"


def mode_settings(run: RunSettings, mode: AuditedMode, epsilon_budget: float | None = None) -> RunSettings:
    """`run` with the mode's protection, privacy and cohort (the federation's nodes), checked.

    `epsilon_budget` replaces privacy.epsilon_budget: the audit measures what a noise level
    protects and reports the epsilon it reached, rather than stopping at the run's budget.
    """
    privacy = dataclasses.replace(run.privacy, mode=mode.privacy)
    if epsilon_budget is not None:
        privacy = dataclasses.replace(privacy, epsilon_budget=epsilon_budget)
    federation = dataclasses.replace(
        run.federation, num_nodes=mode.cohort, min_train_nodes=min(run.federation.min_train_nodes, mode.cohort)
    )
    settings = dataclasses.replace(
        run, secure=dataclasses.replace(run.secure, mode=mode.protection), privacy=privacy, federation=federation
    )
    settings.check()
    return settings
