"""Entry point `train_cashflow`: backtest daily net cash-flow forecasters and log the best as a pyfunc.

    mlflow run . -e train_cashflow -P data=ledger.csv
    python -m entrypoints.train_cashflow --data ledger.csv --horizon 30
"""

from entrypoints import train_and_report, training_arguments, whole_number
from pyfunc_models.cashflow import DEFAULT_HORIZON, DEFAULT_LEVEL, FOLDS, CashflowTask


def build_parser():
    parser = training_arguments(__doc__)
    parser.add_argument("--horizon", type=whole_number, default=DEFAULT_HORIZON, help="backtest horizon in days")
    parser.add_argument("--folds", type=whole_number, default=FOLDS, help="rolling-origin backtest folds")
    parser.add_argument("--level", type=float, default=DEFAULT_LEVEL, help="nominal interval coverage")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    train_and_report(CashflowTask(horizon=args.horizon, folds=args.folds, level=args.level), args)


if __name__ == "__main__":
    main()
