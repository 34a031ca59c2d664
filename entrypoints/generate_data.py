"""Entry point `generate_data`: write a deterministic sample ledger in the Titans CSV format.

    mlflow run . -e generate_data -P rows=20000 -P output=ledger.csv
    python -m entrypoints.generate_data --rows 20000 --output ledger.csv
"""

import argparse
import time
from pathlib import Path

from entrypoints import whole_number
from pyfunc_models.generator import write_ledger


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=whole_number, default=20_000)
    parser.add_argument("--seed", type=whole_number, default=42)
    parser.add_argument("--output", default="ledger.csv")
    parser.add_argument("--start", default="", help="first date of the ledger (default 2023-01-01, earlier for a "
                                                    "ledger that would otherwise end after 2026-06-30)")
    parser.add_argument("--days", type=whole_number, default=0, help="days of history (0 = about 25 transactions a day)")
    parser.add_argument("--anomaly-rate", type=float, default=0.01)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)

    started = time.perf_counter()
    try:
        ledger = write_ledger(args.output, rows=args.rows, seed=args.seed, start=args.start or None,
                              days=args.days or None, anomaly_rate=args.anomaly_rate)
    except ValueError as error:
        parser.error(str(error))
    labels = ledger["Anomaly Label"].value_counts().drop("", errors="ignore")
    print(f"wrote {len(ledger)} transactions ({ledger['Date'].iloc[0]} .. {ledger['Date'].iloc[-1]}) to "
          f"{Path(args.output).resolve()} in {time.perf_counter() - started:.1f}s; "
          f"injected anomalies: {labels.to_dict()}")


if __name__ == "__main__":
    main()
