"""Entry point `main` (what `mlflow run .` runs): train every model on one ledger and summarise.

    mlflow run . --env-manager local                    # generated sample ledger
    mlflow run . --env-manager local -P data=ledger.csv
"""

import argparse
import tempfile
from pathlib import Path

import pandas as pd

from entrypoints import whole_number
from pyfunc_models import config, jobs, tracking
from pyfunc_models.amount import AmountTask
from pyfunc_models.anomaly import AnomalyTask
from pyfunc_models.cashflow import CashflowTask
from pyfunc_models.category import CategoryTask


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="", help="ledger CSV; empty = generate a sample ledger")
    parser.add_argument("--experiment-name", default=config.EXPERIMENT_NAME)
    parser.add_argument("--sample-rows", type=whole_number, default=jobs.DEFAULT_SAMPLE_ROWS)
    parser.add_argument("--seed", type=whole_number, default=42)
    args = parser.parse_args(argv)

    results = []
    with tempfile.TemporaryDirectory() as folder, tracking.training_run(args.experiment_name, "main", {}):
        # One ledger for every model, so their figures describe the same data; each trains in a nested run.
        data = str(jobs.obtain_ledger(args.data or None, args.sample_rows, args.seed, Path(folder)))
        for task in (CategoryTask(), AmountTask(), AnomalyTask(), CashflowTask()):
            trained = jobs.run_entry_point(jobs.train_model, task, data, args.experiment_name, args.seed)
            results.append((task, trained))

    for task, trained in results:
        print(f"\n== {config.MODEL_NAMES[task.model_type]}: {trained.model_uri} (run {trained.run_id})")
        print(jobs.metrics_table(trained, task.report_metrics))
        with pd.option_context("display.width", 200, "display.max_colwidth", 60):
            print("\nsample prediction (the logged model loaded back):")
            print(jobs.sample_prediction(trained).drop(columns=["alternatives"], errors="ignore").to_string(index=False))


if __name__ == "__main__":
    main()
