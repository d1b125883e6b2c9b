"""Comparing tracked runs: the tables and plots a researcher pastes into a report.

Reads what the tracker logged to MLflow (never the runs' local folders), so a comparison
works on any store a coordinator's runs went to. `fedtriage compare` is its command.
Flow: `store` (open and check the store) -> `selection` (which runs) -> `run_figures`
(one row of figures per run) -> `table`, `charts` (what to show) -> `markdown_report`,
`csv_report`, `render` (files) -> `comparison_run` (the same files in MLflow); `report`
runs that flow.
"""
