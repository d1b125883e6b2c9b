"""The import rules of the layout hold in the code itself, read from every module's imports.

Data flows one way (config -> federation -> nodes -> protected updates -> aggregation ->
tracking -> model -> triage), and each package imports only what lies below it.
"""

import ast
from pathlib import Path

import pytest

from tests.support.project import PROJECT_DIR

# The command family and the benchmarks sit above everything; nothing imports them.
TOP = {"cli", "experiments"}
# Package -> top-level packages its modules may not import.
FORBIDDEN = {
    "fedtriage": TOP | {"configs", "media", "models", "fl_protocol", "fl_client", "fl_server", "triage"},
    "configs": TOP | {"media", "models", "fl_protocol", "fl_client", "fl_server", "triage", "flwr", "torch"},
    "media": TOP | {"models", "fl_protocol", "fl_client", "fl_server", "triage", "torch", "flwr", "mlflow"},
    "models": TOP | {"fl_client", "fl_server", "triage", "flwr", "mlflow"},
    "fl_protocol": TOP | {"models", "media", "fl_client", "fl_server", "triage"},
    "fl_client": TOP | {"fl_server", "triage"},
    "fl_server": TOP | {"fl_client", "triage"},
    "triage": TOP | {"fl_protocol", "fl_client", "fl_server", "flwr"},
    # Reads what tracking logged in MLflow; knows nothing of nodes, models or Flower.
    "comparison": TOP | {"media", "models", "fl_client", "triage", "flwr", "torch"},
    # Attacks what the server receives, made with the nodes' and server's own code; no command, no triage.
    "privacy_audit": TOP | {"triage", "comparison"},
}



def imported_packages(source: Path) -> set[str]:
    """Top-level names of everything `source` imports, at module level or inside functions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_nothing_from_above_it(package: str) -> None:
    offending = {
        str(module.relative_to(PROJECT_DIR)): sorted(imported_packages(module) & FORBIDDEN[package])
        for module in sorted((PROJECT_DIR / package).rglob("*.py"))
    }
    assert {module: names for module, names in offending.items() if names} == {}

