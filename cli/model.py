"""`fedtriage model`: register a run's model deliberately, and approve a version for casework.

    fedtriage model register latest              # the newest finished run of experiment fedtriage
    fedtriage model register 3f92c5...           # a run by its MLflow id
    fedtriage model approve fedtriage-model 3    # move the `approved` alias to version 3

A registered version is tagged with its protection mode, privacy and epsilon, classes,
central and federated accuracy, data and code fingerprints and its run, described in
words, and marked `candidate`; triage can load `models:/<name>@approved`. The store is
--tracking-uri, else $MLFLOW_TRACKING_URI, else mlflow.db in this folder.
"""

import argparse

from fedtriage.errors import ConfigError


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="fedtriage model", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    actions = parser.add_subparsers(dest="action", required=True)
    register = actions.add_parser("register", help="register a finished run's model as the next version, a candidate")
    register.add_argument("run", metavar="RUN", help="an MLflow run id, or `latest`")
    register.add_argument("--name", default="fedtriage-model", help="registered model name (default: %(default)s)")
    register.add_argument("--experiment", default="fedtriage", help="where `latest` looks (default: %(default)s)")
    approve = actions.add_parser("approve", help="mark a version as the one approved for casework")
    approve.add_argument("name", metavar="NAME")
    approve.add_argument("version", metavar="VERSION")
    for action in (register, approve):
        action.add_argument("--tracking-uri", default=None, help="the MLflow store (default: see above)")
    args = parser.parse_args(argv)

    from mlflow import MlflowClient

    from fl_server.tracking import resolve_tracking_uri
    from fl_server.tracking.model_registry import APPROVED_ALIAS, register_run_model
    from fl_server.tracking.model_registry import approve as approve_version

    tracking_uri = resolve_tracking_uri(args.tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    if args.action == "approve":
        approve_version(client, args.name, args.version)
        print(f"{args.name} version {args.version} is now {APPROVED_ALIAS!r}: models:/{args.name}@{APPROVED_ALIAS}")
        return 0
    run_id = _latest_finished_run(client, args.experiment) if args.run == "latest" else args.run
    registered = register_run_model(tracking_uri, run_id, args.name)
    print(f"registered run {run_id}'s model as {registered.name} version {registered.version} (candidate)")
    for key, value in sorted(registered.tags.items()):
        print(f"  {key}: {value}")
    return 0


def _latest_finished_run(client, experiment: str) -> str:  # type: ignore[no-untyped-def]
    """The newest finished training run: a sweep's parent run groups its jobs and a comparison is a report."""
    from comparison.selection import COMPARISON_TAG
    from fl_server.tracking.sweep_parent import SWEEP_PARENT_TAG

    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs(
        [found.experiment_id], filter_string="attributes.status = 'FINISHED'", order_by=["attributes.end_time DESC"],
        max_results=100,
    ) if found is not None else []
    trained = [run for run in runs if SWEEP_PARENT_TAG not in run.data.tags and COMPARISON_TAG not in run.data.tags]
    if not trained:
        raise ConfigError("RUN", f"no finished training run in experiment {experiment!r} of this store")
    return str(trained[0].info.run_id)
