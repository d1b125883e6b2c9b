"""The unit's node policy, applied to every instruction before any work: a run can be refused, never widened.

The run config comes from the coordinator and sets the protection mode, the privacy, the
model and the training. The node holds each instruction's settings against its own policy
(`fl_protocol.settings.policy`, from its kit, never from a message) and refuses what the
policy does not allow. The refusal names the rule and nothing else ("refused: policy
protection-mode"); why, in the node's own words, goes only to the node's log.
"""

import datetime
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from fedtriage.errors import ConfigError, Refused
from fl_client.kit import KIT_KEY, node_kit
from fl_client.node_holdings import PARTITION_ID_KEY
from fl_protocol.protection.modes import PrivacyMode
from fl_protocol.settings import NodeSettings
from fl_protocol.settings.policy import EVALUATION_METRICS, NodePolicy, accepted_hours

logger = logging.getLogger(__name__)

# What every refusal's public reason starts with; the rule follows.
REFUSED_BY_POLICY = "refused: policy "


class PolicyRefused(Refused):
    """An instruction outside the node's policy; `str()` is the public reason."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(REFUSED_BY_POLICY + rule)
        self.rule = rule
        self.detail = detail
        self.code = "policy " + rule


def node_policy_of(node_config: Mapping[str, bool | int | float | str]) -> NodePolicy | None:
    """The node's policy from its kit; None for a simulated node without a kit (a plaintext simulation).
    A node that is neither has no policy to hold a run against: it refuses every run."""
    if KIT_KEY in node_config or PARTITION_ID_KEY in node_config:
        try:
            return node_kit(node_config).policy
        except ConfigError:  # a simulated node without a kit (no secure mode, no local DP)
            if KIT_KEY in node_config:
                raise
            return None
    raise PolicyRefused("no-kit", "this node was started without its kit (--node-config kit=...)")


class Work(StrEnum):
    """What an instruction makes the node do with its holdings."""

    train = "train"
    evaluate = "evaluate"
    # A step of a secure round (keys, shares, unmasking): no holdings touched.
    protocol = "protocol"


@dataclass(frozen=True)
class Instruction:
    """One message as the policy sees it: the run's settings and the work it asks for."""

    settings: NodeSettings
    work: Work
    # Values in the model arrays it carries (0: none).
    parameters: int = 0


def check_instruction(instruction: Instruction, policy: NodePolicy, now: datetime.datetime | None = None) -> None:
    """Raise `PolicyRefused` naming the first rule of `policy` that `instruction` breaks at local time `now`."""
    settings = instruction.settings
    mode = settings.secure.mode
    if mode.value not in policy.protection.modes:
        raise PolicyRefused("protection-mode", f"secure.mode={mode} is not in protection.modes "
                                               f"{policy.protection.modes}")
    privacy = settings.privacy
    if privacy.mode is PrivacyMode.none and policy.privacy.required:
        raise PolicyRefused("privacy-required", "privacy=none, and privacy.required is true")
    if privacy.mode is not PrivacyMode.none:
        if privacy.noise_multiplier < policy.privacy.min_noise_multiplier:
            raise PolicyRefused("privacy-noise", f"privacy.noise_multiplier={privacy.noise_multiplier} is below "
                                                 f"privacy.min_noise_multiplier={policy.privacy.min_noise_multiplier}")
        if policy.privacy.max_epsilon is not None and privacy.epsilon_budget > policy.privacy.max_epsilon:
            raise PolicyRefused("privacy-budget", f"privacy.epsilon_budget={privacy.epsilon_budget} exceeds "
                                                  f"privacy.max_epsilon={policy.privacy.max_epsilon}")
    _check_training(instruction, policy)
    categories = policy.holdings.categories
    unmapped = [name for name in settings.holdings.classes or [] if categories and name not in categories]
    if unmapped:
        raise PolicyRefused("class-not-mapped", f"holdings.classes names {unmapped}, which holdings.categories "
                                                "of this node's policy does not map")
    if instruction.work is Work.evaluate and not policy.evaluation.federated:
        raise PolicyRefused("evaluation", "evaluation.federated is false")
    hours = policy.schedule.hours
    if hours is not None and instruction.work is not Work.protocol:
        local = (now or datetime.datetime.now()).time()
        if not within(hours, local):
            raise PolicyRefused("hours", f"it is {local:%H:%M} here, outside schedule.hours {hours}")


def _check_training(instruction: Instruction, policy: NodePolicy) -> None:
    settings, training = instruction.settings, policy.training
    if training.models and settings.model.name not in training.models:
        raise PolicyRefused("training-model", f"model {settings.model.name!r} is not in training.models "
                                              f"{training.models}")
    if training.max_parameters is not None and instruction.parameters > training.max_parameters:
        raise PolicyRefused("training-parameters", f"the model sent has {instruction.parameters} values, more than "
                                                   f"training.max_parameters={training.max_parameters}")
    if settings.train.local_epochs > training.max_local_epochs:
        raise PolicyRefused("training-epochs", f"train.local_epochs={settings.train.local_epochs} exceeds "
                                               f"training.max_local_epochs={training.max_local_epochs}")
    if not training.min_batch_size <= settings.train.batch_size <= training.max_batch_size:
        raise PolicyRefused("training-batch-size", f"train.batch_size={settings.train.batch_size} is outside "
                                                   f"[{training.min_batch_size}, {training.max_batch_size}]")


def within(hours: str, local: datetime.time) -> bool:
    """Whether `local` lies in `hours` ("HH:MM-HH:MM", start included, end not; may wrap past midnight)."""
    start, end = accepted_hours(hours)
    if start < end:
        return start <= local < end
    return local >= start or local < end


def releases_evaluation(policy: NodePolicy | None) -> bool:
    """Whether the node's evaluation may enter a secure sum: taking part, every metric released
    (the metrics of a sum share one weight, so the node gives all of them or none)."""
    if policy is None:
        return True
    return policy.evaluation.federated and set(EVALUATION_METRICS) <= set(policy.evaluation.metrics)
