"""Entry point `train_anomaly`: learn what is usual in a ledger and flag what is not.

    mlflow run . -e train_anomaly -P data=ledger.csv
    python -m entrypoints.train_anomaly --data ledger.csv
"""

from entrypoints import train_and_report, training_arguments
from pyfunc_models.anomaly import MAX_FLAG_RATE, AnomalyTask


def build_parser():
    parser = training_arguments(__doc__)
    parser.add_argument("--max-flag-rate", type=float, default=MAX_FLAG_RATE,
                        help="without anomaly labels: the most of the ordinary (untouched) validation rows the "
                             "threshold may flag while it catches planted anomalies")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    train_and_report(AnomalyTask(max_flag_rate=args.max_flag_rate), args)


if __name__ == "__main__":
    main()
