"""Reports from results, with no MLflow: number wording, run report, plots, sweep report."""
