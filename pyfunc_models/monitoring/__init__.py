"""Monitoring and retraining (issue 15): each champion watched on a new period of the ledger, where the truth
arrives (bookkeepers' categories, posted amounts, realised cash flow).

- `profile`: the reference profile a training run logs (distributions, never raw rows) and a period's checks
  against it, with the decision OK / WARN / RETRAIN (pure);
- `statistics`: PSI, scipy's two-sample tests, bootstrap replicates, confidence calibration (pure);
- `job`: the MLflow edge: `log_reference_profile` (training), `monitor` (the `monitor` entry point), retraining
  through the registry's gate;
- `figure`: the report as a PNG.
"""
