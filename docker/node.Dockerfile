# fedtriage node image: a unit's `fedtriage node start` (its SuperNode and ClientApp executor),
# and `fedtriage demo DIR --holdings UNIT` for a demo unit's generated holdings.
# docker/compose.yaml builds it for the demo federation's units; tests/deployment/test_docker.py
# checks this file and runs the compose file's command lines through this ENTRYPOINT as local
# processes (no Docker engine runs in CI).
#
#   docker build -f docker/node.Dockerfile -t fedtriage-node .
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /opt/fedtriage
# The packages pyproject.toml installs, by name, and nothing else (the same lines, in the same
# order, as coordinator.Dockerfile: the two images share these layers).
COPY pyproject.toml README.md ./
COPY fedtriage ./fedtriage
COPY cli ./cli
COPY configs ./configs
COPY media ./media
COPY models ./models
COPY fl_protocol ./fl_protocol
COPY fl_client ./fl_client
COPY fl_server ./fl_server
COPY triage ./triage
COPY comparison ./comparison
COPY privacy_audit ./privacy_audit
COPY experiments ./experiments
# pdqhash (PDQ perceptual hashes) is published as source: a compiler for the install only.
RUN apt-get update && apt-get install -y --no-install-recommends g++ \
    && pip install -e . \
    && apt-get purge -y --auto-remove g++ && rm -rf /var/lib/apt/lists/*

# An unprivileged user; the folders a fresh named volume copies its owner from.
RUN useradd --uid 10001 --user-group --create-home fedtriage \
    && mkdir -p /kits /holdings && chown fedtriage:fedtriage /kits /holdings
USER fedtriage

# The phone-home switches from the one list (fedtriage/environment.py), for whatever the
# container runs: the compose file's command is the program and its arguments.
ENTRYPOINT ["/bin/sh", "-c", "eval \"$(python -m fedtriage.environment)\" && exec \"$@\"", "fedtriage"]
CMD ["fedtriage", "node", "--help"]
