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
        + ("" if training.max_parameters is None else f" of at most {training.max_parameters} values")
        + f", at most {training.max_local_epochs} local epochs, batches of {training.min_batch_size} to "
        f"{training.max_batch_size} images",
        *_limits_in_words(policy),
        f"adds noise of std {policy.ckks.decryption_noise_std:g} to every CKKS sum it decrypts",
        "runs only approved app bundles: "
        + ("the fedtriage release installed on it and " if code.approve_installed_release else "")
        + "those of `fedtriage node approve`",
    ]
    return lines


def _limits_in_words(policy: NodePolicy) -> list[str]:
    """Categories, schedule and evaluation."""
    categories = policy.holdings.categories
    lines = [
        "trains the federation's classes " + ("; ".join(f"{name} from {', '.join(local)}"
                                                      for name, local in categories.items())
                                              + ", and refuses any other class" if categories
                                              else "from the category folders of the same names (map them in "
                                              "holdings.categories so a coordinator cannot probe folder names)")
    ]
    schedule = policy.schedule
    rounds = [f"{limit} per {what}" for limit, what in ((schedule.max_rounds_per_run, "run"),
                                                          (schedule.max_rounds_per_day, "day")) if limit is not None]
    lines.append("takes " + (f"at most {' and '.join(rounds)} training rounds" if rounds else "any number of rounds")
                 + (f", starting work only between {schedule.hours} local time" if schedule.hours else ", at any hour"))
    evaluation = policy.evaluation
    lines.append(f"evaluates the global model for the federation, releasing {', '.join(evaluation.metrics)}"
                 if evaluation.federated else "takes no part in federated evaluation")
    return lines
