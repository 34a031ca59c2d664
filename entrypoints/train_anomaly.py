"""Entry point `train_anomaly`: learn what is usual in a ledger and flag what is not.

    mlflow run . -e train_anomaly -P data=ledger.csv
    python -m entrypoints.train_anomaly --data ledger.csv
"""

from entrypoints import train_and_report, training_arguments
from pyfunc_models.anomaly import DEFAULT_EXPECTED_RATE, AnomalyTask


def build_parser():
    parser = training_arguments(__doc__)
    parser.add_argument("--expected-rate", type=float, default=DEFAULT_EXPECTED_RATE,
                        help="share of rows to flag when the ledger has no anomaly labels to choose a threshold")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    train_and_report(AnomalyTask(expected_rate=args.expected_rate), args)


if __name__ == "__main__":
    main()
