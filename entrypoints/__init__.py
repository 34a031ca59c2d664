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


def add_date_order(parser) -> None:
    """--date-order, for every entry point that reads a ledger."""
    from pyfunc_models.ledger import DATE_ORDERS

    parser.add_argument("--date-order", default="auto", choices=DATE_ORDERS,
                        help="how to read dates like 03/04/2024 when no date in the column says: dmy (day first), "
                             "mdy (month first), auto (decide from the dates; month first if none says, with a warning)")


def add_option(parser, option) -> None:
    """`--<name>` for a model type's training option (task.Option): its default and help from the definition."""
    parser.add_argument(f"--{option.name.replace('_', '-')}", type=whole_number if option.whole else float,
                        default=option.default, help=option.help)
