"""Entry point `monitor`: watch each champion on a new period of the ledger; one line per model, OK / WARN /
RETRAIN with its reasons in numbers; a monitoring run per model (experiment titans-finance-ml-monitoring) and
tags on the champion version; retraining through the gate when asked (true) or needed (auto).

    mlflow run . -e monitor -P data=november.csv
    mlflow run . -e monitor -P data=november.csv -P model_type=category -P retrain=true
    python -m entrypoints.monitor --data november.csv --retrain auto
"""

import argparse
import sys

from entrypoints import add_date_order
from pyfunc_models import config, jobs
from pyfunc_models.model_types import MODEL_TYPES
from pyfunc_models.monitoring import job


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True,
                        help="the new period's ledger CSV (or a ledger with history: see --since)")
    parser.add_argument("--model-type", default="all", choices=(*MODEL_TYPES, "all"))
    parser.add_argument("--retrain", default="false", choices=job.RETRAIN_CHOICES,
                        help="true: retrain each model monitored; auto: those whose decision is RETRAIN")
    parser.add_argument("--since", default="", help="first day of the period; earlier rows are history only "
                                                    "(cash flow forecasts from them); empty: the whole file")
    parser.add_argument("--reference", default="", help="the ledger the champion learnt from, for retraining; "
                                                        "empty: its training run's data")
    parser.add_argument("--experiment-name", default=config.EXPERIMENT_NAME, help="where retraining's runs go")
    add_date_order(parser)
    return parser


# What monitoring takes on a team server with authentication (team mode): the trainer's permissions fit.
MONITORING_NEEDS = ("monitoring needs READ on the registered models and their runs, EDIT on the experiments it logs "
                    "to and, to retrain, MANAGE on the registered models")


def main(argv=None):
    args = build_parser().parse_args(argv)
    types = MODEL_TYPES if args.model_type == "all" else (args.model_type,)
    try:
        jobs.run_entry_point(job.monitor, args.data, types, args.retrain, args.since or None, args.reference or None,
                             args.experiment_name, args.date_order, needs=MONITORING_NEEDS)
    except job.MonitoringError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
