"""Which runs a comparison holds: an experiment's training runs, by sweep and tag, never a parent or a comparison."""

import pytest
from mlflow import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from comparison.selection import COMPARISON_TAG, RunSelection, parse_tag, select_runs
from fedtriage.errors import ConfigError
from fl_server.tracking.mlflow_tracker import UPDATE_PROTECTION_TAG
from tests.support.logged_runs import PlannedRun, log_run


@pytest.fixture
def experiment(store: str, request: pytest.FixtureRequest) -> tuple[str, dict[str, str]]:
    """Two sweeps, a lone run and an earlier comparison, in an experiment named after the test; ids by name."""
    name = request.node.name
    planned = [
        PlannedRun("sweep-a-0", sweep_id="10-00-00", tags={UPDATE_PROTECTION_TAG: "plaintext"}),
        PlannedRun("sweep-a-1", sweep_id="10-00-00", tags={UPDATE_PROTECTION_TAG: "secagg"}),
        PlannedRun("sweep-b-0", sweep_id="11-30-00", tags={UPDATE_PROTECTION_TAG: "secagg"}),
        PlannedRun("lone", tags={UPDATE_PROTECTION_TAG: "secagg", "team": "x"}),
        PlannedRun("old-comparison", tags={COMPARISON_TAG: "true"}),
    ]
    return name, {run.name: log_run(store, name, run) for run in planned}


def names(store: str, selection: RunSelection) -> list[str]:
    return [run.info.run_name for run in select_runs(MlflowClient(store), selection).runs]


def test_an_experiment_gives_its_training_runs_oldest_first_without_sweep_parents_or_comparisons(
    store: str, experiment: tuple[str, dict[str, str]]
) -> None:
    name, _ = experiment
    assert sorted(names(store, RunSelection(name))) == ["lone", "sweep-a-0", "sweep-a-1", "sweep-b-0"]


def test_a_sweep_is_selected_by_its_sweep_id_or_its_parent_runs_id(
    store: str, experiment: tuple[str, dict[str, str]]
) -> None:
    name, ids = experiment
    client = MlflowClient(store)
    parent = client.get_run(ids["sweep-a-0"]).data.tags[MLFLOW_PARENT_RUN_ID]

    by_sweep_id = select_runs(client, RunSelection(name, sweep="10-00-00"))
    by_parent = select_runs(client, RunSelection(name, sweep=parent))

    assert sorted(run.info.run_name for run in by_sweep_id.runs) == ["sweep-a-0", "sweep-a-1"]
    assert [run.info.run_id for run in by_parent.runs] == [run.info.run_id for run in by_sweep_id.runs]
    assert by_sweep_id.sweep_parent_id == by_parent.sweep_parent_id == parent


def test_every_tag_given_must_match(store: str, experiment: tuple[str, dict[str, str]]) -> None:
    name, _ = experiment
    secagg = (UPDATE_PROTECTION_TAG, "secagg")
    assert sorted(names(store, RunSelection(name, tags=(secagg,)))) == ["lone", "sweep-a-1", "sweep-b-0"]
    assert names(store, RunSelection(name, tags=(secagg, ("team", "x")))) == ["lone"]
    assert names(store, RunSelection(name, sweep="11-30-00", tags=(secagg,))) == ["sweep-b-0"]


def test_an_unknown_experiment_names_the_closest_one(store: str, experiment: tuple[str, dict[str, str]]) -> None:
    name, _ = experiment
    with pytest.raises(ConfigError) as raised:
        select_runs(MlflowClient(store), RunSelection(name[:-1]))
    assert raised.value.key == "--experiment"
    assert f"did you mean {name!r}?" in raised.value.problem


def test_an_unknown_sweep_names_the_sweeps_the_experiment_has(
    store: str, experiment: tuple[str, dict[str, str]]
) -> None:
    name, _ = experiment
    with pytest.raises(ConfigError) as raised:
        select_runs(MlflowClient(store), RunSelection(name, sweep="09-00-00"))
    assert raised.value.key == "--sweep"
    assert raised.value.problem.endswith("its sweeps: '10-00-00', '11-30-00'")


def test_tags_that_match_nothing_are_named(store: str, experiment: tuple[str, dict[str, str]]) -> None:
    name, _ = experiment
    with pytest.raises(ConfigError) as raised:
        select_runs(MlflowClient(store), RunSelection(name, tags=(("team", "y"),)))
    assert raised.value.key == "--tag"
    assert "team=y" in raised.value.problem


@pytest.mark.parametrize(("text", "expected"), [("a=b", ("a", "b")), ("k=x=y", ("k", "x=y")), ("k=", ("k", ""))])
def test_a_tag_is_key_equals_value_and_the_value_may_hold_equals_signs(text: str, expected: tuple[str, str]) -> None:
    assert parse_tag(text) == expected


@pytest.mark.parametrize("text", ["secagg", "=secagg", "a`b=c"])
def test_a_tag_without_a_usable_key_is_refused_naming_the_option(text: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_tag(text)
    assert raised.value.key == "--tag"
