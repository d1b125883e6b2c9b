"""Help for a command's settings, read from the YAML itself: every key, its default, one line.

The one line is the comment above the key in its YAML file (its first sentence), so the
help cannot drift from the defaults it describes.
"""

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from configs import CONFIG_DIR, CONFIG_NAME
from configs.compose import default_tree

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w]*):")


def settings_help(
    config_name: str = CONFIG_NAME, config_dir: Path = CONFIG_DIR, hidden_groups: tuple[str, ...] = ()
) -> str:
    """The groups with their options, then every setting: `key = default   what it is`."""
    tree = default_tree(config_name, config_dir)
    descriptions: dict[str, str] = {}
    groups: list[tuple[str, list[str], str]] = []
    for group, option, package in _defaults(config_dir / f"{config_name}.yaml"):
        if group in hidden_groups:
            continue
        folder = config_dir / group
        options = sorted(path.stem for path in folder.glob("*.yaml"))
        groups.append((package, options, option))
        descriptions.update(_comments(folder / f"{option}.yaml", prefix=package))
    descriptions.update(_comments(config_dir / f"{config_name}.yaml", prefix=""))
    lines = []
    if groups:
        lines.append("groups (group=option; * marks the default):")
        width = max(len(package) for package, _, _ in groups)
        for package, options, default in groups:
            listed = ", ".join(f"{option}*" if option == default else option for option in options)
            lines.append(f"  {package:<{width}}  {listed}")
        lines.append("")
    settings = list(leaves(tree))
    width = min(max(len(f"{key} = {_show(value)}") for key, value in settings), 48)
    lines.append("settings (key=value; the default, then what it is):")
    for key, value in settings:
        setting = f"{key} = {_show(value)}"
        lines.append(f"  {setting:<{width}}  {descriptions.get(key, '')}".rstrip())
    return "\n".join(lines)


def _defaults(config_file: Path) -> Iterator[tuple[str, str, str]]:
    """(group folder, default option, where its keys go) of each group in the defaults list."""
    for entry in yaml.safe_load(config_file.read_text(encoding="utf-8")).get("defaults", []):
        if not isinstance(entry, dict):
            continue
        ((target, option),) = entry.items()
        if target.startswith("override "):
            continue
        group, _, package = target.partition("@")
        yield group, str(option), package or group


def _comments(path: Path, prefix: str) -> dict[str, str]:
    """Dotted key -> the first sentence of the comment right above it in the YAML file."""
    found: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        match = _KEY.match(line)
        if not match:
            pending = []
            continue
        indent, key = len(match["indent"]), match["key"]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        dotted = ".".join([*(part for _, part in stack), key])
        if pending:
            found[f"{prefix}.{dotted}" if prefix else dotted] = _first_sentence(" ".join(pending))
        pending = []
        stack.append((indent, key))
    return found


def _first_sentence(text: str) -> str:
    sentence = re.split(r"(?<!e\.g\.)(?<!i\.e\.)(?<=\.)\s", text, maxsplit=1)[0]
    return sentence if len(sentence) <= 130 else sentence[:127] + "..."


def leaves(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every setting of a composed tree as (dotted key, value); a `params` dict is one setting."""
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value and key != "params":
            yield from leaves(value, f"{dotted}.")
        else:
            yield dotted, value


def _show(value: Any) -> str:
    if value == "???":
        return "(required)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, dict)):
        return yaml.safe_dump(value, default_flow_style=True).strip()
    return str(value)
