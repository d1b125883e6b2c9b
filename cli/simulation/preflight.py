"""Checks a simulated federation passes before any node trains.

Every bad setting or holdings path fails here with one clear error, using the very
functions the nodes and the server will use (so the checks cannot drift from them).
Also prepares what simulation needs on disk: synthetic holdings are generated, and a
folder's classes are discovered once so that every node agrees on them.
"""

import dataclasses
from pathlib import Path

from cli.flower_app import central_test_set
from cli.simulation.kits import provision_simulated_kits
from configs.compose import require
from fedtriage.errors import ConfigError
from fl_client.holdings import (
    class_histograms,
    discover_classes,
    ensure_synthetic_holdings,
    format_histograms,
    load_holdings,
    partition_indices,
    split_holdout,
)
from fl_protocol.protection.modes import PrivacyMode
from fl_protocol.settings import RunSettings
from fl_server.checkpoint import load_checkpoint, resumed_privacy_ledger
from fl_server.strategy_factory import build_strategy
from models import build_model


def check_simulation(settings: RunSettings) -> None:
    """Checks that hold only when the harness itself creates all nodes."""
    fed = settings.federation
    for key in ("min_train_nodes", "min_evaluate_nodes", "min_available_nodes"):
        value = getattr(fed, key)
        require(
            value <= fed.num_nodes,
            f"federation.{key}",
            f"{value} exceeds federation.num_nodes={fed.num_nodes}: the simulation would wait for "
            "nodes that never come",
        )


def preflight(settings: RunSettings) -> RunSettings:
    """Validate `settings` for a simulation and return them completed (classes filled)."""
    check_simulation(settings)
    hold = settings.holdings
    if hold.source in ("folder", "synthetic", "vics"):
        require(bool(hold.path), "holdings.path", f"required for source {hold.source!r}: the simulated nodes share it")
    if hold.source == "synthetic" and ensure_synthetic_holdings(hold, settings.seed):
        print(f"generated synthetic holdings in {hold.path}", flush=True)
    if hold.classes is None and hold.path:
        hold = dataclasses.replace(hold, classes=discover_classes(Path(hold.path)))
        settings = dataclasses.replace(settings, holdings=hold)

    holdings = load_holdings(hold)
    print(holdings.report.summary(), flush=True)
    pool, test = split_holdout(holdings, hold.test_fraction, settings.seed)
    if (central := central_test_set(settings)) is not None and settings.evaluation.test_set:
        print(f"central evaluation on {len(central.labels)} images of {settings.evaluation.test_set}", flush=True)
    labels = pool.labels.numpy()
    parts = partition_indices(labels, settings.federation.num_nodes, settings.partition, settings.seed)
    print(
        f"{settings.partition.scheme} partition of {len(pool)} examples over "
        f"{settings.federation.num_nodes} nodes ({len(test)} held out for central evaluation):",
        flush=True,
    )
    print(format_histograms(class_histograms(labels, parts, len(holdings.classes)), holdings.classes), flush=True)

    model = build_model(
        settings.model,
        num_classes=len(holdings.classes),
        in_channels=hold.channels,
        image_size=hold.image_size,
    )
    parameters = sum(p.numel() for p in model.parameters())
    print(f"model {settings.model.name}: {parameters:,} parameters", flush=True)
    if settings.privacy.mode is PrivacyMode.local_dpsgd:
        from opacus.validators import ModuleValidator  # slow to import; only DP-SGD runs need it

        if problems := ModuleValidator.validate(model, strict=False):
            raise ConfigError(
                "privacy.mode",
                f"local DP-SGD cannot train model {settings.model.name!r}: {problems[0]} (model=cnn can)",
            )
    build_strategy(settings)
    if settings.checkpoint.resume_from:
        resumed_privacy_ledger(settings, load_checkpoint(Path(settings.checkpoint.resume_from)))
    return provision_simulated_kits(settings)
