"""`fedtriage privacy-audit`: the attacks an honest-but-curious coordinator can run on what it receives.

An experiment, not a federation: it trains proxy nodes with the project's own code, builds
what the server receives in each protection and privacy mode, and attacks it
(`experiments.privacy_audit` says what it runs and writes).
"""

from experiments.privacy_audit import main

__all__ = ["main"]
