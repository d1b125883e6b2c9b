"""What `fedtriage coordinator`, `node` and `run` start and talk to on a real deployment.

The command lines of every process live here only (`coordinator_processes`,
`node_processes`); the Docker images run `fedtriage coordinator start` and `fedtriage node
start` themselves, so a container and a test run the very same command lines.
"""
