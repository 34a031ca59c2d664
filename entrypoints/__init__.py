"""One thin script per MLproject entry point: parse parameters, call `pyfunc_models`, print."""

import sys

# Progress lines appear as they happen, interleaved correctly with MLflow's log lines.
sys.stdout.reconfigure(line_buffering=True)


def whole_number(text: str) -> int:
    """An MLproject number parameter ('20000', '20000.0', '1e6') as an int (MLproject has no int type)."""
    value = float(text)
    if not value.is_integer():
        raise ValueError(f"expected a whole number, got {text}")
    return int(value)


def training_arguments(doc: str):
    """The parameters every train_* entry point takes."""
    import argparse

    from pyfunc_models import config, jobs

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="", help="ledger CSV; empty = generate a sample ledger")
    parser.add_argument("--experiment-name", default=config.EXPERIMENT_NAME)
    parser.add_argument("--seed", type=whole_number, default=42)
    parser.add_argument("--sample-rows", type=whole_number, default=jobs.DEFAULT_SAMPLE_ROWS,
                        help="rows of the generated ledger when no data is given")
    add_date_order(parser)
    return parser


def add_date_order(parser) -> None:
    """--date-order, for every entry point that reads a ledger."""
    from pyfunc_models.ledger import DATE_ORDERS

    parser.add_argument("--date-order", default="auto", choices=DATE_ORDERS,
                        help="how to read dates like 03/04/2024 when no date in the column says: dmy (day first), "
                             "mdy (month first), auto (decide from the dates; month first if none says, with a warning)")


def train_and_report(task, args) -> None:
    """Train one model task as its own run and print its model URI and metrics against the baselines."""
    from pyfunc_models import jobs

    trained = jobs.run_entry_point(jobs.train_model, task, args.data or None, args.experiment_name, args.seed,
                                   args.sample_rows, date_order=args.date_order)
    print(f"\nmodel: {trained.model_uri}  (run {trained.run_id})")
    print(jobs.metrics_table(trained, task.report_metrics))
