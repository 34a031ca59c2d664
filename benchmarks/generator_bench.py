"""Generator: rows per second of `python -m entrypoints.generate_data --rows N` (a fresh process; wall time
includes interpreter start and imports, the entry point's own figure excludes them), and its peak RSS."""

from __future__ import annotations

import re

from benchmarks.common import PYTHON, Workspace, run_measured, say

_REPORTED = re.compile(r"wrote (\d+) transactions .* in ([\d.]+)s")


def run(workspace: Workspace, rows: int, seed: int = 42) -> dict:
    path = workspace.ledgers / f"ledger_{rows}_{seed}.csv"
    say(f"generator: generate_data --rows {rows:,}")
    measured = run_measured([PYTHON, "-m", "entrypoints.generate_data", "--rows", str(rows), "--seed", str(seed),
                             "--output", str(path)], workspace, f"generator_{rows}")
    if measured.returncode != 0:
        return {"rows": rows, "error": measured.tail}
    workspace.adopt_ledger(rows, path, seed)  # the training benchmark reuses it
    match = _REPORTED.search(open(measured.log).read())
    generating = float(match.group(2)) if match else None
    result = {"rows": rows, "wall_seconds": measured.wall_seconds, "peak_rss_bytes": measured.peak_rss_bytes,
              "rows_per_second_wall": rows / measured.wall_seconds,
              "generate_seconds_reported": generating,
              "rows_per_second_reported": rows / generating if generating else None,
              "file_bytes": path.stat().st_size}
    say(f"generator: {rows:,} rows in {measured.wall_seconds:.1f}s wall "
        f"({result['rows_per_second_wall']:,.0f} rows/s), peak RSS {measured.peak_rss_bytes / 1e9:.2f} GB")
    return result


def markdown(result: dict) -> str:
    from benchmarks.report import table

    if "error" in result:
        return f"`generate_data --rows {result['rows']:,}` failed: ```{result['error'][-600:]}```"
    reported = (f"{result['rows_per_second_reported']:,.0f} ({result['generate_seconds_reported']:.1f} s)"
                if result["rows_per_second_reported"] else "-")
    return table(
        ["rows", "wall s (process)", "rows/s (wall)", "rows/s (generate + write, as the entry point reports)",
         "peak RSS GB", "CSV MB"],
        [[f"{result['rows']:,}", f"{result['wall_seconds']:.1f}", f"{result['rows_per_second_wall']:,.0f}", reported,
          f"{result['peak_rss_bytes'] / 1e9:.2f}", f"{result['file_bytes'] / 1e6:.0f}"]])
