"""Which runs a comparison holds: an experiment's training runs, narrowed by sweep and tags.

A sweep's parent run only groups its jobs and an earlier comparison is a report, not a
run to compare: both are left out. Every way the selection can come up empty is an error
that names the option to change, with what the store does hold.
"""

import difflib
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.entities import LifecycleStage, Run
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from fedtriage.errors import ConfigError
from fl_server.tracking.mlflow_writes import SWEEP_TAG
from fl_server.tracking.sweep_parent import SWEEP_PARENT_TAG

# Tags the runs `fedtriage compare` makes, so that no later comparison compares them.
COMPARISON_TAG = "fedtriage.comparison"
_PAGE = 1000
_LISTED = 10


@dataclass(frozen=True)
class RunSelection:
    """What the user asked to compare: an experiment, optionally one sweep and tags that must match."""

    experiment: str
    sweep: str | None = None
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SelectedRuns:
    """The runs to compare, oldest first, and where they live."""

    experiment_id: str
    runs: tuple[Run, ...]
    # The sweep's parent run, when the selection is one sweep: the comparison run joins its group.
    sweep_parent_id: str | None = None


def parse_tag(text: str) -> tuple[str, str]:
    """`KEY=VALUE` of `--tag` (the value may hold `=`)."""
    name, separator, value = text.partition("=")
    if not separator or not name.strip():
        raise ConfigError("--tag", f"expected KEY=VALUE, e.g. fedtriage.update_protection=secagg; got {text!r}")
    if "`" in name:
        raise ConfigError("--tag", f"a tag name cannot hold a backtick: {name!r}")
    return name.strip(), value


def select_runs(client: MlflowClient, selection: RunSelection) -> SelectedRuns:
    """The training runs of `selection` (ConfigError naming the option when there are none)."""
    experiment_id = _experiment_id(client, selection.experiment)
    conditions = [_condition(f"tags.`{name}`", value, "--tag") for name, value in selection.tags]
    parent_id = None
    if selection.sweep is not None:
        parent_id = _sweep_parent(client, experiment_id, selection.sweep)
        if parent_id is not None:
            conditions.append(_condition(f"tags.`{MLFLOW_PARENT_RUN_ID}`", parent_id, "--sweep"))
        else:
            conditions.append(_condition(f"tags.`{SWEEP_TAG}`", selection.sweep, "--sweep"))
    runs = [run for run in _search(client, experiment_id, " and ".join(conditions)) if _is_training_run(run)]
    if not runs:
        raise _nothing_matched(client, experiment_id, selection)
    runs.sort(key=lambda run: (run.info.start_time or 0, run.info.run_id))
    return SelectedRuns(experiment_id, tuple(runs), parent_id)


def _experiment_id(client: MlflowClient, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        names = [found.name for found in client.search_experiments()]
        closest = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean {closest[0]!r}?" if closest else f"; the store holds {_listing(names)}"
        raise ConfigError("--experiment", f"no experiment {name!r} in this MLflow store{hint}")
    if experiment.lifecycle_stage == LifecycleStage.DELETED:
        raise ConfigError("--experiment", f"experiment {name!r} is deleted (restore it in MLflow to compare its runs)")
    return str(experiment.experiment_id)


def _sweep_parent(client: MlflowClient, experiment_id: str, sweep: str) -> str | None:
    """The parent run `sweep` names: by its run id, else by its sweep id (None: no parent, match jobs by tag)."""
    try:
        run = client.get_run(sweep)
    except MlflowException:
        run = None
    if run is not None and run.info.experiment_id == experiment_id and SWEEP_PARENT_TAG in run.data.tags:
        return str(run.info.run_id)
    parents = _search(client, experiment_id, _condition(f"tags.`{SWEEP_PARENT_TAG}`", sweep, "--sweep"))
    return str(parents[0].info.run_id) if len(parents) == 1 else None


def _search(client: MlflowClient, experiment_id: str, filter_string: str) -> list[Run]:
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], filter_string, max_results=_PAGE, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _is_training_run(run: Run) -> bool:
    return SWEEP_PARENT_TAG not in run.data.tags and COMPARISON_TAG not in run.data.tags


def _nothing_matched(client: MlflowClient, experiment_id: str, selection: RunSelection) -> ConfigError:
    where = f"experiment {selection.experiment!r}"
    if selection.tags:
        tags = ", ".join(f"{name}={value}" for name, value in selection.tags)
        narrowed = f" in sweep {selection.sweep!r}" if selection.sweep is not None else ""
        return ConfigError("--tag", f"no run of {where}{narrowed} has the tags {tags}")
    if selection.sweep is not None:
        sweeps = sorted({run.data.tags[SWEEP_PARENT_TAG] for run in _search(client, experiment_id, "")
                         if SWEEP_PARENT_TAG in run.data.tags})
        return ConfigError("--sweep", f"no run of sweep {selection.sweep!r} in {where}; its sweeps: {_listing(sweeps)}")
    return ConfigError("--experiment", f"{where} holds no training runs")


def _listing(names: list[str]) -> str:
    if not names:
        return "none"
    shown = ", ".join(repr(name) for name in names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")


def _condition(field: str, value: str, option: str) -> str:
    """`field = 'value'` in MLflow's search syntax, which has no escape sequences."""
    for quote in ("'", '"'):
        if quote not in value:
            return f"{field} = {quote}{value}{quote}"
    raise ConfigError(option, f"cannot hold both kinds of quotes: {value!r}")
