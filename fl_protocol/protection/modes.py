"""How an update travels from a node to the server: one spelling from config to code.

`secure.mode` in the YAML, `ProtectionMode` in code, the same words in logs and
MLflow. Members are spelled as in the configuration (lowercase), so Hydra's values
map onto them as they are.
"""

from enum import StrEnum


class ProtectionMode(StrEnum):
    """The update protection a federation runs."""

    # The server sees every node's update: research on proxy data only.
    plaintext = "plaintext"
    # SecAgg+: the server learns only sums over the surviving nodes.
    secagg = "secagg"
    # CKKS for the chosen layers of the update, SecAgg+ for the rest.
    ckks = "ckks"

    @property
    def is_secure(self) -> bool:
        """True when no single node's update, count or metric reaches the server."""
        return self is not ProtectionMode.plaintext


class PrivacyMode(StrEnum):
    """Differential privacy on top of the protection mode."""

    none = "none"
    # Nodes clip their update; the server adds noise to the secure sum.
    central = "central"
    # Every node runs DP-SGD (Opacus) with a budget of its own.
    local_dpsgd = "local_dpsgd"


class Weighting(StrEnum):
    """How a secure round weights each node's update in the mean."""

    # Every node that trained counts once: no example count ever leaves a node.
    equal = "equal"
    # By example count (capped at secure.secagg.max_weight), like FedAvg: the counts travel
    # inside the sum, and a coordinator that varies the cohort can solve for them, so a node
    # sends them only if its own policy allows (policy secure.release_counts).
    examples = "examples"
