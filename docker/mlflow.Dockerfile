# MLflow tracking server image for the demo federation (docker/compose.yaml): the MLflow release
# the project pins (pyproject.toml), with PostgreSQL's driver; PostgreSQL itself is the official
# `postgres` image. Only the coordinator reaches it (the ServerApp records every round); units
# never do. tests/deployment/test_docker.py checks this file against pyproject.toml and runs the
# compose file's `mlflow server` command line as a local process (on SQLite: no PostgreSQL there).
#
#   docker build -f docker/mlflow.Dockerfile -t fedtriage-mlflow .
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1

RUN pip install mlflow==3.17.2 "psycopg[binary]==3.3.9"

# The phone-home switches from the one list: the module prints them and imports nothing else.
WORKDIR /opt/fedtriage
COPY fedtriage/environment.py ./fedtriage/environment.py

RUN useradd --uid 10001 --user-group --create-home mlflow \
    && mkdir -p /mlartifacts && chown mlflow:mlflow /mlartifacts
USER mlflow
WORKDIR /home/mlflow

ENTRYPOINT ["/bin/sh", "-c", "eval \"$(python /opt/fedtriage/fedtriage/environment.py)\" && exec \"$@\"", "mlflow"]
CMD ["mlflow", "server", "--help"]
