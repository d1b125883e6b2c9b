"""`fedtriage simulate`: a federation of national units on proxy data (the main researcher job).

    fedtriage simulate                                  # 4 nodes, digits, FedAvg, secure aggregation
    fedtriage simulate federation.num_nodes=10 strategy=fedprox partition=dirichlet partition.alpha=0.3
    fedtriage simulate -m strategy=fedavg,fedprox        # a sweep: one MLflow run per job
    fedtriage simulate +experiment=noniid -m             # a preset sweep of configs/experiment/
    fedtriage simulate +experiment=privacy-audit -m      # the privacy audit, as a preset
    fedtriage simulate --help                            # every setting group, and Hydra's own flags

Settings come from configs/ through Hydra (overrides, `-m` sweeps and Hydra's flags as
with any Hydra app). The federation runs in Flower's own simulation engine with the
same ServerApp and ClientApp a deployment runs; MLflow records it (a local SQLite
store by default, or $MLFLOW_TRACKING_URI). A configuration that holds the `audit` group
(the `privacy-audit` preset) runs the privacy audit instead (`fedtriage privacy-audit`).
"""

import logging
import shlex
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from cli.exit import exit_on_error
from configs import CONFIG_DIR, CONFIG_NAME
from configs.errors import from_omegaconf
from fedtriage.console import configure_console_logging
from fedtriage.errors import ConfigError, Interrupted
from fl_protocol.settings import RunSettings, settings_from_mapping
from privacy_audit.settings import AUDIT_KEY, audit_configuration_from_mapping

# The classify command's configuration folder sits beside the federation's groups; not one of them.
TRIAGE_GROUP = "triage"
# Hydra's own flags that run no job, or take a value: their arguments are Hydra's to check.
_HYDRA_ONLY_FLAGS = ("-h", "--help", "--hydra-help", "--info", "-i", "-c", "--cfg", "-p", "--package", "--version",
                     "-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir", "--shell-completion",
                     "-sc", "--run", "-r", "--resolve")

# Hydra's flag for a sweep: one job per combination of the sweeps' values.
_MULTIRUN_FLAGS = ("-m", "--multirun")


def main(argv: list[str]) -> int:
    """Check the settings of every job, then let Hydra run the job(s); it reads `sys.argv`."""
    if any(arg in ("-h", "--help") for arg in argv):
        print(usage())
        return 0
    if not any(arg.split("=", 1)[0] in _HYDRA_ONLY_FLAGS for arg in argv):
        check_overrides([arg for arg in argv if arg not in _MULTIRUN_FLAGS])
    # Hydra's parser takes overrides only on one side of -m: `+experiment=NAME -m more=overrides` would
    # leave the last ones unrecognized. The flag takes no value, so it can go first.
    multirun = [arg for arg in argv if arg in _MULTIRUN_FLAGS]
    sys.argv = ["fedtriage simulate", *multirun, *(arg for arg in argv if arg not in _MULTIRUN_FLAGS)]
    # Hydra logs the job's INFO lines; alembic's, as MLflow loads it, are nothing a user can act on.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    _job()
    return 0


def usage() -> str:
    """This module's description and every setting with its default and one line."""
    from configs.help import settings_help

    return "\n".join(
        [
            "usage: fedtriage simulate [key=value ...] [group=option ...] [-m]",
            __doc__ or "",
            settings_help(hidden_groups=(TRIAGE_GROUP,)),
            "",
            "Hydra's own flags (--cfg job, --info, ...): fedtriage simulate --hydra-help",
        ]
    )


def check_overrides(overrides: list[str]) -> None:
    """Every job's settings, composed and checked as the job will: a bad one is one `ConfigError`
    before Hydra starts (whose own errors are many lines and exit 1)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    from configs.compose import compose_config

    ours = [o for o in overrides if not o.lstrip("+~").startswith("hydra")]
    try:
        parsed = OverridesParser.create().parse_overrides(ours)
    except HydraException as err:
        raise ConfigError("overrides", str(err).strip().split("\n", 1)[0]) from err
    # A sweep's every value is checked, with the other sweeps at their first value.
    first = [o.input_line if not o.is_sweep_override() else _with_value(o, next(o.sweep_string_iterator()))
             for o in parsed]
    jobs = [first]
    for index, override in enumerate(parsed):
        if override.is_sweep_override():
            jobs += [first[:index] + [_with_value(override, value)] + first[index + 1:]
                     for value in override.sweep_string_iterator()]
    for job in jobs:
        check_job(compose_config(job))


def check_job(config: dict[str, Any]) -> None:
    """One job's resolved configuration, checked as that job will read it (a federation, or the audit)."""
    if AUDIT_KEY in config:
        audit_configuration_from_mapping(config)
    else:
        settings_from_mapping(config, base=Path.cwd())


def _with_value(override: Any, value: str) -> str:
    return f"{override.get_key_element()}={value}"


@hydra.main(config_path=str(CONFIG_DIR), config_name=CONFIG_NAME, version_base="1.3")
def _job(cfg: DictConfig) -> float | None:
    """One simulated federation; returns the final central accuracy (for sweepers)."""
    from cli.simulation.engine import run_in_simulation_engine
    from cli.simulation.preflight import preflight
    from fl_server.run_summary import read_summary

    configure_console_logging()
    if AUDIT_KEY in cfg:
        _audit_job(cfg)
        return None
    with exit_on_error():
        settings = preflight(settings_for_simulation(cfg))
        try:
            run_in_simulation_engine(settings)
        except Interrupted as err:
            raise Interrupted(how_to_resume(Path(str(settings.output_dir)), err)) from None
    summary = read_summary(Path(str(settings.output_dir)))
    return summary.final_metrics.get("central/eval-accuracy")


def how_to_resume(output_dir: Path, err: Interrupted) -> str:
    """What a stopped run kept, and the exact command that continues it (also put in its summary.json)."""
    from fl_server.run_summary import SUMMARY_FILE, read_summary, write_summary

    if not (output_dir / SUMMARY_FILE).is_file():
        return f"{err}; nothing was trained yet: run the same command again"
    summary = read_summary(output_dir)
    if not summary.latest_checkpoint:
        return f"{err}; no round was completed: run the same command again"
    overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("checkpoint.resume_from=")]
    summary.resume_command = shlex.join(
        ["fedtriage", "simulate", *overrides, f"checkpoint.resume_from={summary.latest_checkpoint}"]
    )
    write_summary(summary)
    return (
        f"stopped after round {summary.rounds_completed}, its checkpoint kept; "
        f"resume with: {summary.resume_command}"
    )


def _audit_job(cfg: DictConfig) -> None:
    """The privacy audit as one job: its files in the job's folder, its MLflow runs one sweep."""
    from experiments.privacy_audit import run_privacy_audit

    with exit_on_error():
        configuration = audit_configuration_from_mapping(job_config(cfg))
        run_privacy_audit(configuration, Path(str(configuration.run.output_dir)))


def settings_for_simulation(cfg: DictConfig) -> RunSettings:
    """Resolve Hydra's config, point outputs at Hydra's job directory, group sweeps."""
    return settings_from_mapping(job_config(cfg), base=Path.cwd())


def job_config(cfg: DictConfig) -> dict[str, Any]:
    """Hydra's config resolved, its outputs in Hydra's job directory, a sweep's jobs one MLflow sweep."""
    try:
        config: Any = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as err:
        raise from_omegaconf(err) from err
    hydra_config = HydraConfig.get()
    if not config.get("output_dir"):
        config["output_dir"] = hydra_config.runtime.output_dir
    if hydra_config.mode == RunMode.MULTIRUN and not config["tracking"].get("sweep_id"):
        config["tracking"]["sweep_id"] = Path(hydra_config.sweep.dir).name
    return config
