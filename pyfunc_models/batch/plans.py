"""The three ways rows reach a model on Spark (`task.ModelTask.batch_plan`), each a lazy DataFrame of answers.

- `rows`: `spark_udf` over the input as Spark has partitioned it.
- `same_day`: rows grouped by the text of their date into buckets of days, each bucket in input order in one
  predict call, so that every pair of duplicates meets; "row N" in an answer is renamed to the input row.
- `per_ledger`: one forecast per ledger (the rows of one `group_by` value, or the whole input).

The last two run as `applyInPandas` with the functions at the bottom, which run on the executors with the model
shipped there (batch.shipping); each is written beside the plan whose schema it must answer in.
"""

from __future__ import annotations

import warnings

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException

from pyfunc_models.batch.errors import BatchError, in_input_rows
from pyfunc_models.batch.model import ScoringModel, answer_type, model_columns, model_input_columns, output_names
from pyfunc_models.batch.shipping import loaded
from pyfunc_models.ledger import LedgerError

DAY_COLUMN = "date"
ROW = "__titans_row"  # the input row's position, carried through Spark
ANSWER = "__titans_answer"
BUCKET = "__titans_days"
BUCKET_ROWS = 200_000  # rows of one predict call, about, when days are bucketed
PARTITION_BITS = 33  # monotonically_increasing_id(): partition index above these bits, position below
# spark_udf and applyInPandas on pandas 3: PySpark warns that it is not tested with it; the tests compare
# every answer with in-process predict instead.
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)


def score_rows(spark, model: ScoringModel, frame, params: dict, env_manager: str):
    """`spark_udf` over the input as it is partitioned: for models whose answer for a row is that row's alone."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType, DoubleType, FloatType, StringType, StructField, StructType

    answer = answer_type(model)
    fed = model_columns(frame.columns, model.inputs)
    model_input = F.struct(*model_input_columns(frame, fed, model.inputs))
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
    task = same_day_task(model_file, fed, params, list(frame.columns), names, model.row_reference_columns)
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
    task = per_ledger_task(model_file, fed, params, keys, names)
    columns = list(dict.fromkeys([*keys, *fed.values()]))
    forecasts = frame.select(*columns).groupBy(*keys).applyInPandas(task, schema)
    order = [*keys, names["date"]] if "date" in names else keys
    return _sorted_once(forecasts, *order) if order else forecasts


def _sorted_once(answers, *columns):
    """Sorted without running the model twice: a sort first samples its input, so the answers are
    materialised once (a local checkpoint on the executors) and sorted from there."""
    return answers.localCheckpoint(eager=True).orderBy(*columns)


# --- what runs on the executors -------------------------------------------------------------------

def same_day_task(model_file, fed, params, columns, names, names_rows):
    """applyInPandas function: one group of days, in input order, scored in one call."""

    def score(group: pd.DataFrame) -> pd.DataFrame:
        group = group.sort_values(ROW, kind="stable").reset_index(drop=True)
        rows = group[ROW].to_numpy()
        model_input = group[list(fed.values())].set_axis(list(fed), axis=1)
        try:
            answer = loaded(model_file).predict(model_input, params=params or None)
        except MlflowException as error:
            raise BatchError(in_input_rows(error.message, rows)) from None
        for column in names_rows:  # "duplicate of row 3"
            answer[column] = [in_input_rows(text, rows) for text in answer[column]]
        answer = answer.rename(columns=names).reset_index(drop=True)
        return pd.concat([group[[*columns, ROW]], answer], axis=1)

    return score


def per_ledger_task(model_file, fed, params, keys, names):
    """applyInPandas function: one ledger's history in, its forecast out, prefixed with the ledger's key."""

    def forecast(ledger: pd.DataFrame) -> pd.DataFrame:
        model_input = ledger[list(fed.values())].set_axis(list(fed), axis=1)
        try:
            answer = loaded(model_file).predict(model_input, params=params or None)
        except MlflowException as error:
            where = ", ".join(f"{key}={ledger[key].iloc[0]!r}" for key in keys)
            raise BatchError(f"ledger {where}: {error.message}" if where else error.message) from None
        answer = answer.rename(columns=names).reset_index(drop=True)
        for position, key in enumerate(keys):
            answer.insert(position, key, ledger[key].iloc[0])
        return answer

    return forecast
