"""Entry point `train_amount`: learn what amount is normal for a transaction, with an interval.

    mlflow run . -e train_amount -P data=ledger.csv
    python -m entrypoints.train_amount --data ledger.csv --level 0.9
"""

from entrypoints import train_and_report, training_arguments, whole_number
from pyfunc_models.amount import DEFAULT_LEVEL, DEFAULT_MAX_TREE_ROWS, AmountTask


def build_parser():
    parser = training_arguments(__doc__)
    parser.add_argument("--max-tree-rows", type=whole_number, default=DEFAULT_MAX_TREE_ROWS,
                        help="train tree candidates on at most this many recent rows (0 = no cap)")
    parser.add_argument("--level", type=float, default=DEFAULT_LEVEL, help="nominal interval coverage")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    train_and_report(AmountTask(max_tree_rows=args.max_tree_rows or None, level=args.level), args)


if __name__ == "__main__":
    main()
