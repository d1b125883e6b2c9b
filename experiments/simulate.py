"""Simulate a federation of national units on proxy data (the main researcher job).

    python -m experiments.simulate                                  # 4 nodes, digits, FedAvg
    python -m experiments.simulate federation.num_nodes=10 strategy=fedprox \\
        partition=dirichlet partition.alpha=0.3 model=resnet18
    python -m experiments.simulate -m strategy=fedavg,fedprox        # a sweep: one MLflow run per job

Settings come from configs/ through Hydra. The federation runs in Flower's own
simulation engine with the same ServerApp and ClientApp a deployment runs; MLflow
records it (a local SQLite store by default, or $MLFLOW_TRACKING_URI).
"""

from fl_protocol.telemetry import disable_phone_home

disable_phone_home()  # before Flower, Ray or MLflow start

import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402
from omegaconf.errors import OmegaConfBaseException  # noqa: E402

from experiments.flower_engine import run_in_simulation_engine  # noqa: E402
from experiments.preflight import preflight  # noqa: E402
from fl_client.holdings import HoldingsError  # noqa: E402
from fl_protocol.console_logging import configure_console_logging  # noqa: E402
from fl_protocol.errors import ConfigError  # noqa: E402
from fl_protocol.settings import RunSettings, settings_from_mapping, with_absolute_paths  # noqa: E402
from fl_server.federation_rounds import FederationError  # noqa: E402
from fl_server.run_summary import read_summary  # noqa: E402

EXIT_BAD_INPUT = 2
EXIT_FEDERATION_FAILED = 1


@hydra.main(config_path="../configs", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """Run one simulated federation; returns the final central accuracy (for sweepers)."""
    configure_console_logging()
    try:
        settings = preflight(settings_for_simulation(cfg))
        run_in_simulation_engine(settings)
    except (ConfigError, HoldingsError) as err:
        print(f"fedtriage: error: {err}", file=sys.stderr, flush=True)
        sys.exit(EXIT_BAD_INPUT)
    except FederationError as err:
        print(f"fedtriage: federation failed: {err}", file=sys.stderr, flush=True)
        sys.exit(EXIT_FEDERATION_FAILED)
    summary = read_summary(Path(str(settings.output_dir)))
    return summary.final_metrics.get("central/eval-accuracy")


def settings_for_simulation(cfg: DictConfig) -> RunSettings:
    """Resolve Hydra's config, point outputs at Hydra's job directory, group sweeps."""
    try:
        config: Any = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as err:
        raise ConfigError(str(getattr(err, "full_key", "config")), str(err).split("\n", 1)[0]) from err
    hydra_config = HydraConfig.get()
    if not config.get("output_dir"):
        config["output_dir"] = hydra_config.runtime.output_dir
    if hydra_config.mode == RunMode.MULTIRUN and not config["tracking"].get("sweep_id"):
        config["tracking"]["sweep_id"] = Path(hydra_config.sweep.dir).name
    return settings_from_mapping(with_absolute_paths(config, Path.cwd()))


if __name__ == "__main__":
    main()
