"""The coordinator's side of fedtriage: the ServerApp, strategies, rounds, tracking."""
