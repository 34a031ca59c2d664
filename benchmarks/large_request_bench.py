"""The largest request a served model answers within MLflow's scoring timeout, on this machine.

    python -m benchmarks.large_request_bench --tracking-uri sqlite:////tmp/<workspace>/mlflow.db

`mlflow models serve` answers 504 ("Request processing time exceeded limit") to a request that takes longer
than MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT seconds (60 by default; `mlflow models serve -t`). This serves one
champion (the category model by default) the README's way, with the default timeout, on a free 127.0.0.1
port, and:

1. times requests of growing size (categorised expenses of a generated ledger the model never saw, seed 7,
   as `dataframe_split`), each once, with the server's peak memory after each, until one gets the 504;
2. fits seconds = a + b * rows to the answered ones and solves it for the timeout (the extrapolation);
3. bisects between the largest size answered and the smallest refused (if every size was answered, first
   asks 10% above the extrapolation), at most `--probes` requests, so the figure is measured, not only
   extrapolated;
4. after each 504, times a one-row request sent at once, and how long the server stays busy (its processes'
   CPU time still growing): MLflow stops waiting for the prediction, not the prediction. The next request
   is sent only when the server is idle again.

Bounded: every request is one POST with a client timeout; the server is stopped by its process group.
Timings are wall clock: on a shared machine they move with the load, which is recorded beside each.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import time
from pathlib import Path

import numpy as np
import requests

from benchmarks.common import Workspace, load_average, machine, say

DEFAULT_MODEL = "models:/titans-finance-category-prediction@champion"
DEFAULT_SIZES = (25_000, 50_000, 100_000, 200_000, 300_000, 400_000, 500_000, 600_000)  # until the first 504
TIMEOUT = 60  # MLflow's default MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT
REQUEST_COLUMNS = ("date", "type", "description", "amount", "payment_method", "reference")
SEED = 7  # not the training ledger's 42
RESOLUTION = 10_000  # rows: the bisection stops when the bracket is this narrow
TICKS = os.sysconf("SC_CLK_TCK")


def request_rows(count: int):
    """`count` categorised expenses as a client sends them: snake_case columns, ISO dates, signed amounts."""
    from pyfunc_models.generator import generate_ledger

    ledger = generate_ledger(rows=int(count * 1.1) + 1_000, seed=SEED)
    ledger.columns = [c.strip().lower().replace(" ", "_") for c in ledger.columns]
    expenses = ledger[ledger["type"].str.lower().isin(["expense", "debit"])]
    if len(expenses) < count:
        raise RuntimeError(f"the generated ledger has {len(expenses)} expenses; {count} needed")
    return expenses.loc[:, list(REQUEST_COLUMNS)].head(count)


def body(rows, form: str = "split") -> bytes:
    """A request in MLflow's `dataframe_split` (compact) or `dataframe_records` (one object per row) format."""
    if form == "records":
        return json.dumps({"dataframe_records": rows.to_dict(orient="records")}).encode()
    return json.dumps({"dataframe_split": rows.to_dict(orient="split", index=False)}).encode()


def server_processes(group: int) -> list:
    """/proc folders of the server's processes (the `mlflow models serve` process and its uvicorn)."""
    found = []
    for folder in Path("/proc").glob("[0-9]*"):
        try:
            if os.getpgid(int(folder.name)) == group:
                found.append(folder)
        except (OSError, ValueError):
            continue
    return found


def peak_memory(group: int) -> int:
    """Sum of the server's processes' peak RSS (VmHWM), in bytes."""
    total = 0
    for folder in server_processes(group):
        try:
            fields = dict(line.split(":", 1) for line in (folder / "status").read_text().splitlines() if ":" in line)
        except OSError:
            continue
        total += int(fields.get("VmHWM", "0 kB").split()[0]) * 1024
    return total


def cpu_seconds(group: int) -> float:
    """CPU time (user + system) the server's processes have used so far."""
    total = 0
    for folder in server_processes(group):
        try:
            fields = (folder / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def busy_seconds(group: int, limit: float = 300) -> float:
    """How long the server keeps computing from now: until a second passes with under 0.2 s of its CPU time."""
    started = time.perf_counter()
    last = cpu_seconds(group)
    while time.perf_counter() - started < limit:
        time.sleep(1)
        now = cpu_seconds(group)
        if now - last < 0.2:
            return time.perf_counter() - started - 1
        last = now
    return limit


def post(base: str, payload: bytes, client_timeout: float, rows: int) -> tuple:
    """(status, seconds); an answer of 200 must hold one prediction per row sent."""
    started = time.perf_counter()
    response = requests.post(f"{base}/invocations", data=payload, headers={"Content-Type": "application/json"},
                             timeout=client_timeout)
    seconds = time.perf_counter() - started
    if response.status_code == 200 and len(response.json()["predictions"]) != rows:
        raise RuntimeError(f"{rows} rows sent, {len(response.json()['predictions'])} predictions answered")
    if response.status_code not in (200, 504):
        raise RuntimeError(f"{rows} rows: {response.status_code} {response.text[:500]}")
    return response.status_code, seconds


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracking-uri", required=True, help="the store holding the champion (e.g. the one "
                                                              "python -m tools.readme_figures --keep leaves)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model URI to serve (default: %(default)s)")
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                        help="request sizes to time, in rows (default: %(default)s)")
    parser.add_argument("--probes", type=int, default=3, help="most bisection requests (default: %(default)s)")
    parser.add_argument("--timeout", type=int, default=TIMEOUT,
                        help="the server's MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT (default: MLflow's, %(default)s)")
    parser.add_argument("--format", choices=("split", "records"), default="split",
                        help="dataframe_split (default) or dataframe_records")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))

    workspace = Workspace()
    # The served model brings its own copy of the package: nothing from this checkout on its path.
    env = workspace.env(MLFLOW_TRACKING_URI=args.tracking_uri)
    env.pop("PYTHONPATH", None)
    env["MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT"] = str(args.timeout)
    results = {"model": args.model, "format": f"dataframe_{args.format}", "timeout_seconds": args.timeout,
               "machine": machine(), "requests": []}
    try:
        say(f"generating {max(sizes):,} request rows (seed {SEED})")
        pool = request_rows(max(sizes))
        with workspace.serve(args.model, "large_requests", env=env) as served:
            base, group = served.url, served.process.pid

            def send(size: int, why: str) -> int:
                payload = body(pool.head(size), args.format)
                load = load_average()
                status, seconds = post(base, payload, args.timeout + 60, size)
                done = {"rows": size, "why": why, "status": status, "seconds": round(seconds, 2),
                        "request_mb": round(len(payload) / 1e6, 1),
                        "server_peak_rss_mb": round(peak_memory(group) / 1e6), "load_before": load}
                line = f"{size:>9,} rows ({done['request_mb']} MB, {why}): {status} in {seconds:.1f} s"
                if status == 504:  # while the server may still compute, a one-row request is sent at once
                    with concurrent.futures.ThreadPoolExecutor(1) as pool_of_one:
                        one_row = pool_of_one.submit(post, base, body(pool.head(1), args.format), 600, 1)
                        done["server_busy_after_504_seconds"] = round(busy_seconds(group), 1)
                        done["one_row_after_504_seconds"] = round(one_row.result()[1], 2)
                    line += (f"; one row sent right after: {done['one_row_after_504_seconds']} s; the server went "
                             f"on computing for {done['server_busy_after_504_seconds']} s")
                say(f"{line}; server peak {done['server_peak_rss_mb']:,} MB; load {load[0]}")
                results["requests"].append(done)
                return status

            send(100, "warm-up")  # first-call imports and caches
            for size in sizes:
                if send(size, "timed") != 200:
                    break
            answered = [r for r in results["requests"] if r["why"] == "timed" and r["status"] == 200]
            if len(answered) >= 2:
                slope, intercept = np.polyfit([r["rows"] for r in answered], [r["seconds"] for r in answered], 1)
                results.update(seconds_per_100k_rows=round(slope * 1e5, 2), fixed_seconds=round(intercept, 2),
                               extrapolated_largest_rows=int((args.timeout - intercept) / slope))
                say(f"fit: {intercept:.2f} s + {slope * 1e5:.2f} s per 100,000 rows -> "
                    f"{results['extrapolated_largest_rows']:,} rows in {args.timeout} s")
            refused = [r["rows"] for r in results["requests"] if r["status"] == 504]
            low, high = max((r["rows"] for r in answered), default=0), min(refused, default=None)
            for _ in range(args.probes):
                if high is None:  # every size answered: look above the extrapolation for the limit
                    above = int(round(results.get("extrapolated_largest_rows", 2 * low) * 1.1, -4))
                    if above > len(pool):
                        pool = request_rows(above)
                    if send(above, "above the extrapolation") == 200:
                        low = above
                        break
                    high = above
                    continue
                if high - low <= RESOLUTION:
                    break
                middle = int(round((low + high) / 2, -4))
                if send(middle, "bisection") == 200:
                    low = middle
                else:
                    high = middle
            results.update(largest_answered_rows=low, smallest_refused_rows=high)
            say(f"largest answered: {low:,} rows; smallest refused: {high:,} rows" if high else
                f"every size answered within {args.timeout} s; largest {low:,} rows")
    finally:
        workspace.close()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
