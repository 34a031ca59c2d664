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
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
import time
import uuid
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.types import DataType

from pyfunc_models import config, mlflow_internals
from pyfunc_models.ledger import LedgerError, canonical_column_names, decide_date_order
from pyfunc_models.model_types import BY_TYPE, MODEL_NAMES
from pyfunc_models.task import PER_LEDGER, ROWS, SAME_DAY

DEFAULT_MASTER = "local[*]"
MASTER_URL = re.compile(r"^(local(\[(\*|\d+)(,\d+)?\])?|local-cluster\[\d+,\d+,\d+\]|spark://\S+|yarn|k8s://\S+)$")
FORMATS = {".csv": "csv", ".parquet": "parquet"}
DAY_COLUMN = "date"
ROW = "__titans_row"  # the input row's position, carried through Spark
ANSWER = "__titans_answer"
BUCKET = "__titans_days"
BUCKET_ROWS = 200_000  # rows of one predict call, about, when days are bucketed
PARTITION_BITS = 33  # monotonically_increasing_id(): partition index above these bits, position below
SPARK_CONF = {
    "spark.ui.enabled": "false",  # no web UI: nothing listens but what the job needs
    "spark.sql.session.timeZone": "UTC",  # a Parquet timestamp becomes the same text on every machine
}
SPARK_LOG_LEVEL = "OFF"  # failures reach the user as one line (BatchError), not as executor logs
ROW_REFERENCE = re.compile(r"\brow (\d+)\b")
# spark_udf and applyInPandas on pandas 3: PySpark warns that it is not tested with it; the tests compare
# every answer with in-process predict instead.
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)


class BatchError(ValueError):
    """A batch job that cannot run (model, output, Spark), with a message a user can act on."""


@dataclass
class ScoringModel:
    """What the job needs to know about a model before Spark starts: its signature and how to feed it."""

    uri: str
    model_type: str | None
    inputs: object  # mlflow Schema with named columns
    outputs: object | None
    params: dict = field(default_factory=dict)  # param name -> default

    @property
    def plan(self) -> str:
        """How its model type is fed (task.ModelTask.batch_plan); a model without our tag: row by row."""
        return BY_TYPE[self.model_type].batch_plan if self.model_type in BY_TYPE else ROWS

    @property
    def row_reference_columns(self) -> tuple:
        """Its output columns that name input rows ("duplicate of row 3")."""
        return BY_TYPE[self.model_type].row_reference_columns if self.model_type in BY_TYPE else ()


def describe_model(model_uri: str) -> ScoringModel:
    """The model's signature and type, read without loading it; a URI that names nothing is a BatchError."""
    try:
        info = mlflow.models.get_model_info(model_uri)
    except (MlflowException, OSError) as error:
        raise BatchError(f"model {model_uri!r} cannot be found: {_first_line(str(error))}; expected e.g. "
                         f"models:/{MODEL_NAMES['anomaly']}@{config.CHAMPION} or models:/m-<id>") from None
    signature = info.signature
    if signature is None or signature.inputs is None or not signature.inputs.has_input_names():
        raise BatchError(f"model {model_uri!r} has no signature with named input columns; batch_score feeds a "
                         f"ledger's columns to a model by name")
    model_type = None
    if info.model_id:
        with contextlib.suppress(MlflowException):  # a model saved outside a tracking store has no tags
            model_type = mlflow.get_logged_model(info.model_id).tags.get(config.MODEL_TYPE_TAG)
    params = {spec.name: spec.default for spec in signature.params.params} if signature.params else {}
    return ScoringModel(model_uri, model_type, signature.inputs, signature.outputs, params)


def ledger_format(path: str) -> str:
    """'csv' or 'parquet', from the file's extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise LedgerError(f"{Path(path).name}: unsupported file type {suffix or '(none)'!r}; "
                          f"expected a ledger ending in {' or '.join(FORMATS)}")
    return FORMATS[suffix]


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


@contextlib.contextmanager
def spark_session(master: str = DEFAULT_MASTER, app_name: str = "titans-batch-score"):
    """A Spark session for one job, stopped afterwards. On `local[...]` nothing listens beyond loopback
    and the executors run this interpreter (so they import what the driver imports)."""
    from pyspark.sql import SparkSession

    if not MASTER_URL.match(master):  # else spark-submit fails with a Java stack trace
        raise BatchError(f"master {master!r} is not a Spark master URL; expected local[*], local[2], "
                         f"spark://host:7077, yarn or k8s://https://host:port")
    builder = SparkSession.builder.master(master).appName(app_name)
    launch = {}  # read once, when the JVM and the context start
    if master.startswith("local"):
        launch = {"SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
        builder = builder.config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1")
    for key, value in SPARK_CONF.items():
        builder = builder.config(key, value)
    # Spark's stage progress bar for someone watching a terminal; a log file gets only our lines.
    builder = builder.config("spark.ui.showConsoleProgress", str(sys.stderr.isatty()).lower())
    with _environment({name: os.environ.get(name, value) for name, value in launch.items()}):
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(SPARK_LOG_LEVEL)
    try:
        yield spark
    finally:
        spark.stop()


@contextlib.contextmanager
def _environment(values: dict):
    """Environment variables set for a moment, then as they were."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def read_frame(spark, data: str):
    """The ledger as a Spark DataFrame: a CSV's columns all as text (the contract parses dates and
    amounts, as it does for a request), doubled quotes as pandas and spreadsheets write them."""
    if ledger_format(data) == "csv":
        return spark.read.options(header=True, inferSchema=False, escape='"', mode="FAILFAST").csv(data)
    return spark.read.parquet(data)


def model_columns(columns, inputs) -> dict:
    """Which input column feeds each of the model's inputs: the same name, else the same canonical
    name (`Payment Method` feeds `payment_method`)."""
    canonical = canonical_column_names(columns)
    fed = {}
    for name in inputs.input_names():
        same = [c for c in columns if c == name] or [c for c in columns if canonical[c] == name]
        if len(same) > 1:
            raise LedgerError(f"columns {same[0]!r} and {same[1]!r} both mean '{name}'; keep only one")
        if same:
            fed[name] = same[0]
    required = inputs.required_input_names()
    missing = [name for name in required if name not in fed]
    if missing:
        raise LedgerError(f"missing required column(s) {', '.join(repr(c) for c in missing)}; "
                          f"found: {', '.join(columns) or 'none'}; expected at least: {', '.join(required)}")
    return fed


def model_rows(raw: pd.DataFrame, inputs) -> pd.DataFrame:
    """The same columns, renamed the same way, for in-process predict on a pandas ledger."""
    fed = model_columns(list(raw.columns), inputs)
    return raw[list(fed.values())].set_axis(list(fed), axis=1)


def _model_input(frame, fed: dict, inputs):
    """The columns the model reads, under its names; text where its signature says string (Parquet dates)."""
    kinds = {spec.name: spec.type for spec in inputs.inputs}
    return [(frame[column].cast("string") if kinds[name] == DataType.string else frame[column]).alias(name)
            for name, column in fed.items()]


def answer_type(model: ScoringModel):
    """The Spark type of the model's answer for one row, by MLflow's own mapping (the one `spark_udf` uses by
    default): a struct of its output columns, one plain type for one unnamed output, double without a schema."""
    from pyspark.sql.types import DoubleType

    return mlflow_internals.spark_udf_result_type(model.outputs) if model.outputs else DoubleType()


def output_names(input_columns, outputs) -> dict:
    """Each output column's name in the result: its own, or `predicted_<name>` where an input column has it
    (the category model's `category` beside the ledger's own)."""
    taken = {column.lower() for column in input_columns}
    names = {}
    for output in outputs:
        name = f"predicted_{output}" if output.lower() in taken else output
        if name.lower() in taken:
            raise BatchError(f"the model's output '{output}' and the ledger's column '{name}' would collide; "
                             f"rename that column")
        names[output] = name
    return names


# --- the three plans ------------------------------------------------------------------------------

def score_rows(spark, model: ScoringModel, frame, params: dict, env_manager: str):
    """`spark_udf` over the input as it is partitioned: for models whose answer for a row is that row's alone."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType, DoubleType, FloatType, StringType, StructField, StructType

    answer = answer_type(model)
    fed = model_columns(frame.columns, model.inputs)
    model_input = F.struct(*_model_input(frame, fed, model.inputs))
    ledger = [frame[c] for c in frame.columns]
    if not isinstance(answer, StructType):  # one unnamed answer per row
        predict = mlflow.pyfunc.spark_udf(spark, model.uri, result_type=answer, env_manager=env_manager,
                                          params=params or None)
        name = output_names(frame.columns, ["prediction"])["prediction"]
        return frame.select(*ledger, predict(model_input).alias(name))

    # spark_udf casts each answer column with numpy: a missing boolean becomes False (pandas' NA fails the
    # task) and a missing number NaN, e.g. the amount model's answers for a row without an amount.
    # Booleans travel as text; both come out as null, as the model answered.
    booleans = {f.name for f in answer.fields if isinstance(f.dataType, BooleanType)}
    numbers = {f.name for f in answer.fields if isinstance(f.dataType, (DoubleType, FloatType))}
    # A missing text answer (the category of an income row) arrives as numpy's "None" (or pandas' "<NA>").
    texts = {f.name for f in answer.fields if isinstance(f.dataType, StringType)}
    carried = StructType([StructField(f.name, StringType()) if f.name in booleans else f for f in answer.fields])
    predict = mlflow.pyfunc.spark_udf(spark, model.uri, result_type=carried, env_manager=env_manager,
                                      params=params or None)
    names = output_names(frame.columns, answer.fieldNames())

    def unpacked(name):
        value = F.col(ANSWER)[name]
        if name in booleans:
            value = F.when(value == "True", True).when(value == "False", False)  # "None", "<NA>": null
        elif name in numbers:
            value = F.when(~F.isnan(value), value)
        elif name in texts:
            value = F.when(~value.isin("None", "<NA>"), value)
        return value.alias(names[name])

    scored = frame.withColumn(ANSWER, predict(model_input))
    return scored.select(*ledger, *[unpacked(name) for name in answer.fieldNames()])


def with_row_numbers(frame):
    """Each row's position in the input, from 0, as a model counts rows, and the number of rows; computed by
    Spark itself (partition sizes, then offsets), without a pass through Python."""
    from pyspark.sql import functions as F

    numbered = frame.withColumn(ROW, F.monotonically_increasing_id())
    partition = F.shiftright(F.col(ROW), PARTITION_BITS)
    sizes = dict(numbered.groupBy(partition.alias("p")).count().collect())
    offsets, total = [], 0
    for index in range(max(sizes, default=-1) + 1):
        offsets.append(total)
        total += sizes.get(index, 0)
    within = F.col(ROW).bitwiseAND(F.lit((1 << PARTITION_BITS) - 1))
    offset = F.element_at(F.array(*[F.lit(o) for o in offsets] or [F.lit(0)]), (partition + 1).cast("int"))
    return numbered.withColumn(ROW, offset + within), total


def score_same_day(spark, model: ScoringModel, frame, params: dict, model_file: str):
    """Rows grouped by the text of their date into buckets of days, each bucket in input order and scored
    in one predict call."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import LongType, StructField, StructType

    fed = model_columns(frame.columns, model.inputs)
    if DAY_COLUMN not in fed:
        raise LedgerError(f"missing column '{DAY_COLUMN}': {model.model_type} rows are scored together by day")
    numbered, rows = with_row_numbers(frame)
    answer = answer_type(model)
    names = output_names(frame.columns, answer.fieldNames())
    # A few buckets per core for even work, more for a big input so that no predict call holds too many rows.
    buckets = max(spark.sparkContext.defaultParallelism * 4, -(-rows // BUCKET_ROWS))
    keyed = numbered.withColumn(BUCKET, F.pmod(F.xxhash64(numbered[fed[DAY_COLUMN]]), F.lit(buckets)))
    schema = StructType([*frame.schema.fields, StructField(ROW, LongType(), False),
                         *[StructField(names[f.name], f.dataType, True) for f in answer.fields]])
    task = _same_day_task(model_file, fed, params, list(frame.columns), names, model.row_reference_columns)
    scored = keyed.groupBy(BUCKET).applyInPandas(task, schema)
    return _sorted_once(scored, ROW).drop(ROW)


def score_per_ledger(spark, model: ScoringModel, frame, params: dict, model_file: str, group_by: str):
    """One forecast per ledger: the rows of each `group_by` value, or the whole input."""
    from pyspark.sql.types import StructField, StructType

    if group_by and group_by not in frame.columns:
        raise LedgerError(f"group_by column {group_by!r} is not in the ledger; found: {', '.join(frame.columns)}")
    keys = [group_by] if group_by else []
    fed = model_columns(frame.columns, model.inputs)
    answer = answer_type(model)
    names = output_names(keys, answer.fieldNames())
    schema = StructType([*[frame.schema[k] for k in keys],
                         *[StructField(names[f.name], f.dataType, True) for f in answer.fields]])
    task = _per_ledger_task(model_file, fed, params, keys, names)
    columns = list(dict.fromkeys([*keys, *fed.values()]))
    forecasts = frame.select(*columns).groupBy(*keys).applyInPandas(task, schema)
    order = [*keys, names["date"]] if "date" in names else keys
    return _sorted_once(forecasts, *order) if order else forecasts


def _sorted_once(answers, *columns):
    """Sorted without running the model twice: a sort first samples its input, so the answers are
    materialised once (a local checkpoint on the executors) and sorted from there."""
    return answers.localCheckpoint(eager=True).orderBy(*columns)


# --- what runs on the executors -------------------------------------------------------------------

_LOADED = {}  # per Python worker: model file name -> loaded pyfunc


def _loaded(model_file: str):
    from pyspark import SparkFiles

    if model_file not in _LOADED:
        _LOADED[model_file] = mlflow.pyfunc.load_model(SparkFiles.get(model_file))
    return _LOADED[model_file]


def _in_input_rows(text: str, rows) -> str:
    """'row 3' of one predict call as the input row it is (`rows`: input row of each position in the call)."""
    return ROW_REFERENCE.sub(lambda match: f"row {rows[int(match.group(1))]}", text)


def _same_day_task(model_file, fed, params, columns, names, names_rows):
    """applyInPandas function: one group of days, in input order, scored in one call."""

    def score(group: pd.DataFrame) -> pd.DataFrame:
        group = group.sort_values(ROW, kind="stable").reset_index(drop=True)
        rows = group[ROW].to_numpy()
        model_input = group[list(fed.values())].set_axis(list(fed), axis=1)
        try:
            answer = _loaded(model_file).predict(model_input, params=params or None)
        except MlflowException as error:
            raise BatchError(_in_input_rows(error.message, rows)) from None
        for column in names_rows:  # "duplicate of row 3"
            answer[column] = [_in_input_rows(text, rows) for text in answer[column]]
        answer = answer.rename(columns=names).reset_index(drop=True)
        return pd.concat([group[[*columns, ROW]], answer], axis=1)

    return score


def _per_ledger_task(model_file, fed, params, keys, names):
    """applyInPandas function: one ledger's history in, its forecast out, prefixed with the ledger's key."""

    def forecast(ledger: pd.DataFrame) -> pd.DataFrame:
        model_input = ledger[list(fed.values())].set_axis(list(fed), axis=1)
        try:
            answer = _loaded(model_file).predict(model_input, params=params or None)
        except MlflowException as error:
            where = ", ".join(f"{key}={ledger[key].iloc[0]!r}" for key in keys)
            raise BatchError(f"ledger {where}: {error.message}" if where else error.message) from None
        answer = answer.rename(columns=names).reset_index(drop=True)
        for position, key in enumerate(keys):
            answer.insert(position, key, ledger[key].iloc[0])
        return answer

    return forecast


def _ship_model(spark, model_uri: str, folder: Path) -> str:
    """Download the model once and hand it, and this package, to the executors; returns its SparkFiles name
    (unique: a session may score several models, and Spark keeps every file it was given)."""
    name = f"titans-model-{uuid.uuid4().hex}"
    downloaded = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(folder / "download"))
    local = Path(downloaded).rename(folder / name)
    spark.sparkContext.addFile(str(local), recursive=True)
    package = Path(__file__).resolve().parent
    archive = folder / f"{name}-{package.name}.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for source in package.glob("*.py"):
            bundle.write(source, f"{package.name}/{source.name}")
    spark.sparkContext.addPyFile(str(archive))
    return name


# --- the job -------------------------------------------------------------------------------------

def _first_line(text: str) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), str(text))


def _spark_failure(error: Exception) -> BatchError:
    """A failure on Spark in one line: what the model refused on an executor, else Spark's innermost cause."""
    text = str(error)
    refused = re.findall(r"^(?:[\w.]+\.)?(BatchError|MlflowException|LedgerError): (.+)$", text, re.MULTILINE)
    if refused:
        kind, message = refused[-1]
        if kind != "BatchError" and ROW_REFERENCE.search(message):  # from spark_udf, which sees batches
            message += " (rows counted within one Spark batch of the input, not from the top of the file)"
        return BatchError(message.strip())
    causes = re.findall(r"^(?:Caused by: |: )?[\w.$]+(?:Exception|Error): (.+)$", text, re.MULTILINE)
    return BatchError(re.sub(r"\s*SQLSTATE: \w+\s*$", "", causes[-1] if causes else _first_line(text)).strip())


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
                scored = score_same_day(spark, model, frame, params, _ship_model(spark, model_uri, folder))
            else:
                scored = score_per_ledger(spark, model, frame, params, _ship_model(spark, model_uri, folder), group_by)
            scored.write.mode("overwrite").parquet(output)
            seconds = time.perf_counter() - scoring
            written = spark.read.parquet(output).count()
    except (BatchError, LedgerError):
        raise
    except Exception as error:  # Spark's own: an executor's Python error, a malformed file, a lost worker
        if type(error).__module__.startswith(("pyspark", "py4j")):
            raise _spark_failure(error) from None
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
