"""The coordinator's side of fedtriage: the ServerApp, rounds, strategies, update
protection's server side (`protection`), checkpoints and tracking."""
