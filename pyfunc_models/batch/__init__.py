"""Batch scoring on Spark: a ledger file (CSV or Parquet) in; Parquet with its columns plus the model's answers out.

A nightly job over millions of transactions runs on an existing distributed engine (`local[*]`, or
a cluster's master URL) through MLflow's `mlflow.pyfunc.spark_udf`, not a loop of ours. How rows
reach the model depends on what a row's answer depends on, read from the `model_type` tag every
model of ours is logged with:

- `rows`: on that row alone (category, amount, and any model without our tag). `spark_udf` scores
  the input as Spark has partitioned it; the output keeps the input's order.
- `same_day`: the anomaly detector also compares a row with the other rows it is given (the same
  day, text and amount twice is a duplicate). Rows reach it grouped by the text of their date, in
  input order, so every pair of duplicates meets in one predict call, as when the whole file is
  scored in one process; "duplicate of row N" names the input row (counted from 0, in the order
  Spark reads the input: file order for a single file). The same day written in two date formats
  counts as two days.
- `per_ledger`: the cash-flow forecaster answers one row per future day for a whole history, not
  one row per transaction. It forecasts each ledger: the rows sharing a `group_by` value (an
  account or entity column), else the whole input as one ledger. The output is the `group_by`
  column plus date, forecast, lower and upper.

`spark_udf` promises one answer per input row, computed on Arrow batches that split days and
ledgers anywhere, so the last two run as `applyInPandas`, with the model shipped to the executors
(`SparkContext.addFile`) and loaded once per Python worker. `spark_udf`'s `env_manager`
(virtualenv, uv, conda) is for `rows` models; the other two run on the executors' own Python.

This module is the job; beside it: `spark` (the session, reading the ledger), `model` (what the job reads from a
model's signature and tag), `plans` (the three ways above), `shipping` (the model on the executors) and `errors`
(a failure on Spark as one line).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from pathlib import Path

from pyfunc_models.batch.errors import BatchError, spark_failure
from pyfunc_models.batch.model import ScoringModel, describe_model, model_columns, model_rows
from pyfunc_models.batch.plans import score_per_ledger, score_rows, score_same_day
from pyfunc_models.batch.shipping import ship_model
from pyfunc_models.batch.spark import DEFAULT_MASTER, ledger_format, read_frame, spark_session
from pyfunc_models.ledger import LedgerError, canonical_column_names, decide_date_order
from pyfunc_models.task import PER_LEDGER, ROWS, SAME_DAY

__all__ = ["DEFAULT_MASTER", "PER_LEDGER", "ROWS", "SAME_DAY", "BatchError", "ScoringModel", "batch_score",
           "check_paths", "describe_model", "model_columns", "model_rows", "parse_params", "spark_session"]


def _is_local(path: str) -> bool:
    return "://" not in path  # hdfs://, s3a://, ... are the cluster's to check


def check_paths(data: str, output: str) -> None:
    """Fail before Spark starts on what can be seen from here: no input, an empty one, an output that is not ours."""
    ledger_format(data)
    if _is_local(data):
        source = Path(data)
        if not source.exists():
            raise LedgerError(f"ledger file {data!r} does not exist")
        if source.is_file() and source.stat().st_size == 0:
            raise LedgerError(f"{source.name} is empty; expected a header line and at least one transaction")
    if _is_local(output):
        target = Path(output).resolve()
        if _is_local(data) and target == Path(data).resolve():
            raise BatchError(f"output {output!r} is the input ledger; choose another path")
        # Spark replaces the whole output directory: only ever one written by a Spark job before.
        if target.exists() and not (target / "_SUCCESS").is_file():
            raise BatchError(f"output {output!r} exists and is not an earlier batch_score output; choose a new path")


def whole_file_date_order(frame, model: ScoringModel, params: dict) -> dict:
    """Spark hands the model the file in batches, and a batch of early-month days cannot tell 03/04 from 04/03:
    the order is decided once from every distinct date of the file and passed to each batch (a `date_order` the
    caller gave wins). Models logged before the param existed get nothing."""
    if "date_order" not in model.params or params.get("date_order", "auto") != "auto":
        return {}
    column = next((name for name, canonical in canonical_column_names(frame.columns).items() if canonical == "date"),
                  None)
    if column is None:
        return {}
    distinct = frame.select(column).distinct().dropna().toPandas()[column].reset_index(drop=True)
    order = decide_date_order(distinct, params.get("date_order", "auto"))
    return {"date_order": order} if order else {}


def batch_score(model_uri: str, data: str, output: str, master: str = DEFAULT_MASTER, params: dict | None = None,
                group_by: str = "", env_manager: str = "local", spark=None, log=print) -> dict:
    """Score `data` with the model at `model_uri` on Spark and write `output` (Parquet); returns what was done.

    Runs in a session of its own on `master`, started and stopped here, unless given one (`spark`).
    Everything that can be checked without Spark is checked before it starts.
    """
    started = time.perf_counter()
    params = params or {}
    check_paths(data, output)
    model = describe_model(model_uri)
    unknown = sorted(set(params) - set(model.params))
    if unknown:
        raise BatchError(f"param(s) {', '.join(map(repr, unknown))} not taken by this model; it takes: "
                         f"{', '.join(model.params) or 'none'}")
    if group_by and model.plan != PER_LEDGER:
        raise BatchError(f"group_by is for a model that forecasts a whole ledger; this {model.model_type or ''} "
                         f"model scores each transaction")
    if env_manager != "local" and model.plan != ROWS:
        raise BatchError(f"env_manager={env_manager!r} works through spark_udf, for row-by-row models; the "
                         f"{model.model_type} model runs on the executors' own Python: use env_manager=local")
    how = {ROWS: "each row on its own (spark_udf)",
           SAME_DAY: "each day's rows together, so duplicates are found (applyInPandas)",
           PER_LEDGER: f"one forecast per {'value of ' + repr(group_by) if group_by else 'input (one ledger)'} "
                       f"(applyInPandas)"}[model.plan]
    log(f"model {model_uri} ({model.model_type or 'model_type unknown'}): {how}")
    try:
        with contextlib.ExitStack() as stack:
            if spark is None:
                spark = stack.enter_context(spark_session(master))
                log(f"spark {spark.version} on {spark.sparkContext.master} ({spark.sparkContext.defaultParallelism} "
                    f"cores) started in {time.perf_counter() - started:.1f}s")
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            frame = read_frame(spark, data)
            if not frame.columns or not frame.head(1):
                raise LedgerError(f"{Path(data).name} has no transactions; expected at least one row")
            params = {**params, **whole_file_date_order(frame, model, params)}
            log(f"scoring {data} -> {output}")
            scoring = time.perf_counter()
            if model.plan == ROWS:
                scored = score_rows(spark, model, frame, params, env_manager)
            elif model.plan == SAME_DAY:
                scored = score_same_day(spark, model, frame, params, ship_model(spark, model_uri, folder))
            else:
                scored = score_per_ledger(spark, model, frame, params, ship_model(spark, model_uri, folder), group_by)
            scored.write.mode("overwrite").parquet(output)
            seconds = time.perf_counter() - scoring
            written = spark.read.parquet(output).count()
    except (BatchError, LedgerError):
        raise
    except Exception as error:  # Spark's own: an executor's Python error, a malformed file, a lost worker
        if type(error).__module__.startswith(("pyspark", "py4j")):
            raise spark_failure(error) from None
        raise
    total = time.perf_counter() - started
    speed = f" ({written / max(seconds, 1e-9):,.0f} rows/s)" if model.plan != PER_LEDGER else ""
    log(f"wrote {written} rows to {output}: {seconds:.1f}s scoring{speed}, {total:.1f}s in all")
    return {"model_uri": model_uri, "model_type": model.model_type, "plan": model.plan, "rows_written": written,
            "scoring_seconds": seconds, "total_seconds": total, "output": output}


def parse_params(text: str) -> dict:
    """The `params` parameter: a JSON object such as {"threshold": 0.95}, or empty."""
    if not text.strip():
        return {}
    try:
        params = json.loads(text)
    except json.JSONDecodeError as error:
        raise BatchError(f"params {text!r} is not JSON ({error.msg}); expected an object like "
                         f"'{{\"threshold\": 0.95}}'") from None
    if not isinstance(params, dict):
        raise BatchError(f"params {text!r} is not a JSON object; expected e.g. '{{\"horizon\": 60}}'")
    return params
