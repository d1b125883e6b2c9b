"""A node policy in plain words: what `fedtriage node policy check` prints for a unit to read."""

from fl_protocol.settings.policy import NodePolicy


def policy_in_words(policy: NodePolicy) -> list[str]:
    """One line per thing the node will or will not do."""
    secure, privacy, training, code = policy.secure, policy.privacy, policy.training, policy.code
    modes = ", ".join(policy.protection.modes)
    lines = [
        f"takes part in runs protected by: {modes}"
        + ("" if "plaintext" in policy.protection.modes else " (never sends its own update as it is)"),
        f"secure sums: at least {secure.min_peers} other nodes share its secrets, {secure.min_threshold} shares to "
        f"rebuild one, and its update is summed with at least {secure.min_cohort - 1} others",
        "sends its example counts inside a secure sum" if secure.release_counts
        else "never sends its example counts (secure runs must weight nodes equally)",
        "takes part only in runs with differential privacy" if privacy.required
        else "takes part in runs with or without differential privacy",
    ]
    if privacy.min_noise_multiplier > 0:
        lines.append(f"with differential privacy: a noise multiplier of at least {privacy.min_noise_multiplier:g}")
    if privacy.max_epsilon is not None:
        lines.append(f"with differential privacy: an epsilon budget of at most {privacy.max_epsilon:g}")
    lines += [
        "trains " + (f"only these models: {', '.join(training.models)}" if training.models else "any model")
        + f", at most {training.max_local_epochs} local epochs, batches of {training.min_batch_size} to "
        f"{training.max_batch_size} images",
        f"adds noise of std {policy.ckks.decryption_noise_std:g} to every CKKS sum it decrypts",
        "runs only approved app bundles: "
        + ("the fedtriage release installed on it and " if code.approve_installed_release else "")
        + "those of `fedtriage node approve`",
    ]
    return lines
