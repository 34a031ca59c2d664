"""Entry points `train_category`, `train_amount`, `train_anomaly`, `train_cashflow`: train one model type on a
ledger and log it as a pyfunc model in its own run. Each model type's own options come from its definition
(`options` of its task.ModelTask subclass), as MLproject's parameters do.

    mlflow run . -e train_category -P data=ledger.csv
    python -m entrypoints.train category --data ledger.csv
    python -m entrypoints.train amount --data ledger.csv --level 0.9
    python -m entrypoints.train cashflow --data ledger.csv --horizon 30
"""

import argparse

from entrypoints import add_date_order, add_option, whole_number
from pyfunc_models import config, jobs
from pyfunc_models.model_types import TASKS, task_class


def add_training_arguments(parser: argparse.ArgumentParser, task) -> None:
    """The parameters every train entry point takes, then the model type's own options."""
    parser.add_argument("--data", default="", help="ledger CSV; empty = generate a sample ledger")
    parser.add_argument("--experiment-name", default=config.EXPERIMENT_NAME)
    parser.add_argument("--seed", type=whole_number, default=42)
    parser.add_argument("--sample-rows", type=whole_number, default=jobs.DEFAULT_SAMPLE_ROWS,
                        help="rows of the generated ledger when no data is given")
    add_date_order(parser)
    for option in task.options:
        add_option(parser, option)


def build_parser(model_type: str | None = None) -> argparse.ArgumentParser:
    """One sub-command per model type; `model_type` gives that sub-command's own parser."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="model_type", required=True, metavar="model_type")
    for task in TASKS:
        command = commands.add_parser(task.model_type, help=task.purpose.question,
                                      description=f"train_{task.model_type}: {task.purpose.question}")
        add_training_arguments(command, task)
        if task.model_type == model_type:
            return command
    if model_type is not None:
        task_class(model_type)  # names the model types there are
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    task = task_class(args.model_type)
    try:
        configured = task.from_options(**vars(args))
    except ValueError as error:  # an option out of range, e.g. --horizon 0
        parser.error(f"train_{task.model_type}: {error}")
    trained = jobs.run_entry_point(jobs.train_model, configured, args.data or None, args.experiment_name, args.seed,
                                   args.sample_rows, date_order=args.date_order)
    print(f"\nmodel: {trained.model_uri}  (run {trained.run_id})")
    print(jobs.metrics_table(trained, configured.report_metrics))  # the task trained: it may name others


if __name__ == "__main__":
    main()
