"""What a batch job knows about a model before Spark starts, read from its signature and its `model_type` tag:
how it is fed, which ledger column feeds each of its inputs, and the names and Spark types of its answers."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.types import ColSpec, DataType, Schema
from mlflow.types.schema import AnyType

from pyfunc_models import config, mlflow_internals
from pyfunc_models.batch.errors import BatchError, first_line
from pyfunc_models.ledger import LedgerError, canonical_column_names
from pyfunc_models.model_types import BY_TYPE, MODEL_NAMES
from pyfunc_models.task import ROWS


@dataclass
class ScoringModel:
    """What the job needs to know about a model before Spark starts: its signature and how to feed it."""

    uri: str
    model_type: str | None
    inputs: object  # mlflow Schema with named columns (declared_inputs for our models)
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
        raise BatchError(f"model {model_uri!r} cannot be found: {first_line(str(error))}; expected e.g. "
                         f"models:/{MODEL_NAMES['anomaly']}@{config.CHAMPION} or models:/m-<id>") from None
    signature = info.signature
    named = signature is not None and signature.inputs is not None and signature.inputs.has_input_names()
    inputs = signature.inputs if named else declared_inputs(info.metadata)
    if inputs is None:
        raise BatchError(f"model {model_uri!r} names no input columns (in its signature or its metadata); "
                         f"batch_score feeds a ledger's columns to a model by name")
    model_type = None
    if info.model_id:
        with contextlib.suppress(MlflowException):  # a model saved outside a tracking store has no tags
            model_type = mlflow.get_logged_model(info.model_id).tags.get(config.MODEL_TYPE_TAG)
    params = {spec.name: spec.default for spec in signature.params.params} if signature and signature.params else {}
    return ScoringModel(model_uri, model_type, inputs, signature.outputs if signature else None, params)


def declared_inputs(metadata) -> Schema | None:
    """The columns our models list in their MLmodel metadata (they log no input schema: tracking.log_predictor),
    as the named schema the plans feed them by; every column typed Any, as the contract reads any of them."""
    columns = (metadata or {}).get("input_columns")
    if not columns:
        return None
    required = set(metadata.get("required_columns", ()))
    return Schema([ColSpec(AnyType(), column, required=column in required) for column in columns])


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


def model_input_columns(frame, fed: dict, inputs) -> list:
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
