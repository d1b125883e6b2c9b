# fedtriage coordinator image: `fedtriage coordinator start` (Flower's SuperLink on loopback, a
# SuperExec for the ServerApps, nginx exposing the Fleet routes only), `fedtriage run ...`, and
# `fedtriage provision` (the compose file's one-shot `provision` service).
# docker/compose.yaml builds it for the demo federation's coordinator; tests/deployment/test_docker.py
# checks this file and runs the compose file's command lines through this ENTRYPOINT as local
# processes (no Docker engine runs in CI).
#
#   docker build -f docker/coordinator.Dockerfile -t fedtriage-coordinator .
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /opt/fedtriage
# The packages pyproject.toml installs, by name, and nothing else (the same lines, in the same
# order, as node.Dockerfile: the two images share these layers).
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

# The proxy in front of the SuperLink: nginx from the distribution (proxy.program of
# configs/deployment/coordinator.yaml). After the project, so the layers above are the node's.
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx-light \
    && rm -rf /var/lib/apt/lists/*

# An unprivileged user; the folders a fresh named volume copies its owner from.
RUN useradd --uid 10001 --user-group --create-home fedtriage \
    && mkdir -p /kits && chown fedtriage:fedtriage /kits
USER fedtriage

# The phone-home switches from the one list (fedtriage/environment.py), for whatever the
# container runs: the compose file's command is the program and its arguments.
ENTRYPOINT ["/bin/sh", "-c", "eval \"$(python -m fedtriage.environment)\" && exec \"$@\"", "fedtriage"]
CMD ["fedtriage", "coordinator", "--help"]
