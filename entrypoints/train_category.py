"""Entry point `train_category`: learn the category of expense rows and log it as a pyfunc model.

    mlflow run . -e train_category -P data=ledger.csv
    python -m entrypoints.train_category --data ledger.csv
"""

from entrypoints import train_and_report, training_arguments, whole_number
from pyfunc_models.category import DEFAULT_MAX_TREE_ROWS, CategoryTask


def build_parser():
    parser = training_arguments(__doc__)
    parser.add_argument("--max-tree-rows", type=whole_number, default=DEFAULT_MAX_TREE_ROWS,
                        help="train tree candidates on at most this many recent rows (0 = no cap)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    train_and_report(CategoryTask(max_tree_rows=args.max_tree_rows or None), args)


if __name__ == "__main__":
    main()
