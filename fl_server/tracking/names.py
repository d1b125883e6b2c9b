"""Turn free text (node labels, config keys, metric names) into valid MLflow key segments.

MLflow keys allow only alphanumerics, `_ - . /`, spaces and colons, and must not look like
relative paths. A unit may call its node "Paris/Unit 2"; rejecting that key would lose the
whole batch it travels in, so text is made safe instead of refused.
"""

import re

from mlflow.utils.validation import MAX_ENTITY_KEY_LENGTH

_UNSAFE = re.compile(r"[^\w.\- ]")
# A segment sits between slashes; several of them must still fit MLflow's key length limit.
_MAX_SEGMENT_LENGTH = MAX_ENTITY_KEY_LENGTH // 4


def key_segment(text: str, max_length: int = _MAX_SEGMENT_LENGTH) -> str:
    """One path segment of a key: no slash, no colon, never empty, `.` or `..`."""
    segment = _UNSAFE.sub("_", str(text)).strip()[:max_length]
    return "_" if segment in ("", ".", "..") else segment


def key(*segments: str) -> str:
    """Join safe segments with `/`, MLflow's grouping separator in the UI."""
    return "/".join(key_segment(segment) for segment in segments)
