"""Entry point `train_category`: learn the category of expense rows and log it as a pyfunc model.

    mlflow run . -e train_category -P data=ledger.csv
    python -m entrypoints.train_category --data ledger.csv
"""

import argparse

from entrypoints import whole_number
from pyfunc_models import config, jobs
from pyfunc_models.category import CategoryTask, DEFAULT_MAX_TREE_ROWS


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="", help="ledger CSV; empty = generate a sample ledger")
    parser.add_argument("--experiment-name", default=config.EXPERIMENT_NAME)
    parser.add_argument("--seed", type=whole_number, default=42)
    parser.add_argument("--sample-rows", type=whole_number, default=jobs.DEFAULT_SAMPLE_ROWS,
                        help="rows of the generated ledger when no data is given")
    parser.add_argument("--max-tree-rows", type=whole_number, default=DEFAULT_MAX_TREE_ROWS,
                        help="train tree candidates on at most this many recent rows (0 = no cap)")
    args = parser.parse_args(argv)

    task = CategoryTask(max_tree_rows=args.max_tree_rows or None)
    trained = jobs.run_entry_point(jobs.train_row_model, task, args.data or None, args.experiment_name,
                                   args.seed, args.sample_rows)
    print(f"\nmodel: {trained.model_uri}  (run {trained.run_id})")
    print(jobs.metrics_table(trained, task.report_metrics))


if __name__ == "__main__":
    main()
