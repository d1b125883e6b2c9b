"""The `fedtriage` command family, and what its commands start.

One module per command, like Flower's `flwr` CLI: `app` is the entry point and the
only place that knows every command; `exit` maps the error family
(`fedtriage.errors`) to one line and an exit code. A command module holds
`main(argv)` and imports what it needs when it runs, so `fedtriage --help` starts in
a moment and the phone-home switches are set before Flower, Ray or MLflow load.
`flower_app` is the Flower app that `fedtriage simulate` and `flwr run` start, and
`simulation` runs it on one machine. This package sits above all others.
"""
