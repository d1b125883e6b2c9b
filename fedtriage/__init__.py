"""fedtriage's base: what every other package shares and may import.

The error family with its exit codes (`errors`), the process environment that keeps
Flower, Ray and MLflow from phoning home (`environment`), and the console of
fedtriage's own loggers (`console`). It imports no other package of the project, so
it sits below all of them; the `fedtriage` command itself is the `cli` package.
"""

__version__ = "0.1.0"
