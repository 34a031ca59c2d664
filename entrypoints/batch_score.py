"""Entry point `batch_score`: score a CSV or Parquet ledger with any logged or registered model on Spark and
write Parquet with the ledger's columns plus the model's answers.

    mlflow run . -e batch_score -P model_uri=models:/titans-finance-anomaly-detection@champion \\
        -P data=$PWD/ledger.csv -P output=$PWD/scores.parquet
    python -m entrypoints.batch_score --model-uri models:/titans-finance-category-prediction@champion \\
        --data ledger.csv --output scores.parquet --master local[2]
    python -m entrypoints.batch_score --model-uri models:/titans-finance-cashflow-forecasting@champion \\
        --data ledgers.parquet --output forecasts.parquet --group-by account --params '{"horizon": 60}'

Category and amount score each row through mlflow.pyfunc.spark_udf; the anomaly detector sees each day's
rows together (duplicates); the cash-flow model forecasts each ledger (--group-by, else the whole input).
See pyfunc_models/batch/.
"""

import argparse
import sys

from pyfunc_models import batch
from pyfunc_models.ledger import DATE_ORDERS, LedgerError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-uri", required=True, help="e.g. models:/titans-finance-anomaly-detection@champion")
    parser.add_argument("--data", required=True, help="ledger to score: .csv or .parquet (file or directory)")
    parser.add_argument("--output", default="scores.parquet", help="Parquet directory to write (Spark's layout)")
    parser.add_argument("--master", default=batch.DEFAULT_MASTER, help="Spark master: local[*], local[2], spark://...")
    parser.add_argument("--params", default="", help='model params as JSON, e.g. \'{"threshold": 0.95}\'')
    parser.add_argument("--group-by", default="", help="cash flow: forecast each value of this column as one ledger")
    parser.add_argument("--date-order", default="auto", choices=DATE_ORDERS,
                        help="how to read dates like 03/04/2024: auto = decided from the whole file where a date says "
                             "so, else the model's own order; dmy or mdy to say it")
    parser.add_argument("--env-manager", default="local", choices=("local", "virtualenv", "uv", "conda"),
                        help="how spark_udf gets the model's Python environment (row-by-row models)")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)

    try:
        params = batch.parse_params(args.params)
        if args.date_order != "auto":
            params["date_order"] = args.date_order
        batch.batch_score(args.model_uri, args.data, args.output, master=args.master,
                          params=params, group_by=args.group_by,
                          env_manager=args.env_manager)
    except (batch.BatchError, LedgerError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
