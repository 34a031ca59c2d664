"""The private MLflow functions this project relies on, reached only through here.

MLflow has no public way to do three things we need: know the Spark type `spark_udf` gives a model's answer (batch
scoring builds its own plans around it), refuse a request param a model does not declare (MLflow drops it with a
server-side warning), and check a column typed Any without a Python call per cell (90-200 ms at 10,000 rows). Each function below names the private function it uses, the MLflow version it was checked
against and what breaks if MLflow changes it. tests/test_mlflow_internals.py exercises each against the installed
MLflow, so an upgrade that moves one fails a fast test named after it, not a Spark job or a served model.
"""

from __future__ import annotations

from typing import Callable

import mlflow
import mlflow.models.utils
import mlflow.pyfunc
import pandas as pd
from mlflow.types.schema import AnyType

CHECKED_AGAINST = "3.17.2"  # the MLflow version every function below was read against


class MlflowInternalsChanged(ImportError):
    """A private MLflow function this project uses is gone from where it was."""


def _private(module, name: str):
    try:
        return getattr(module, name)
    except AttributeError:
        raise MlflowInternalsChanged(
            f"{module.__name__}.{name} is not in MLflow {mlflow.__version__} (pyfunc_models/mlflow_internals.py was "
            f"checked against {CHECKED_AGAINST}); find where it went and update that module") from None


def spark_udf_result_type(output_schema):
    """The Spark type `mlflow.pyfunc.spark_udf` gives a model's answer when asked for none, from its output schema:
    a struct of the output columns (nested arrays and objects mapped too), or one plain type for one unnamed output.

    Private: `mlflow.pyfunc._infer_spark_udf_return_type(schema)`, checked against MLflow 3.17.2, where `spark_udf`
    calls it for its default `result_type`. Batch scoring types every answer column with it (spark_udf's result
    type, and the schemas of the applyInPandas plans), so that Spark and in-process predict answer alike. If MLflow
    renames it, batch scoring fails before Spark starts (MlflowInternalsChanged); if it changes the mapping, the
    types batch scoring writes change with it.
    """
    return _private(mlflow.pyfunc, "_infer_spark_udf_return_type")(output_schema)


def check_params_first(check: Callable) -> None:
    """Have every pyfunc `predict` in this process call `check(params, schema)` (the request's params, the model's
    ParamSchema or None) before MLflow's own params check, which then runs as before: `check` refuses by raising,
    MLflow fills in defaults, validates types and drops undeclared params. Installed once per process for a given
    `check` (by its module and qualified name), however often it is asked for.

    Private: `mlflow.pyfunc._enforce_params_schema(params, schema)` (defined in mlflow.models.utils), checked
    against MLflow 3.17.2, where `PyFuncModel.predict` looks it up in mlflow.pyfunc's namespace on every call
    (through `_validate_prediction_input`), so replacing it there reaches every loaded model, served or not. If
    MLflow renames it, loading our models fails (MlflowInternalsChanged); if MLflow calls it from elsewhere, `check`
    silently stops being called and a served model answers an unknown param 200 again.
    """
    enforce = _private(mlflow.pyfunc, "_enforce_params_schema")
    key = f"{check.__module__}.{check.__qualname__}"
    installed = getattr(enforce, "checks_first", ())
    if key in installed:
        return

    def checked(params, schema):
        check(params, schema)
        return enforce(params, schema)

    checked.checks_first = (*installed, key)
    mlflow.pyfunc._enforce_params_schema = checked


def pass_any_columns_whole(applies: Callable) -> None:
    """Have MLflow's check of a named-column input schema hand each column over as it came, one step per column,
    when `applies(schema)` and every column of the schema is typed Any; any other schema is checked by MLflow as
    before. For an Any column MLflow calls its per-value check on every cell, which returns the value unchanged, and
    rebuilds the column from those values: some 90,000 Python calls for 10,000 rows of nine columns. Missing
    required columns are still MLflow's error (checked before this step; a frame this step cannot take whole, with
    a required column missing or a column name twice, goes to MLflow's own). Installed once per process for a given
    `applies` (by its module and qualified name).

    Private: `mlflow.models.utils._enforce_named_col_schema(pf_input, input_schema)`, checked against MLflow 3.17.2,
    where `_enforce_schema` looks it up in its module's namespace for every DataFrame input of a schema with column
    names, after refusing missing required columns. If MLflow renames it, loading our models fails
    (MlflowInternalsChanged); if MLflow stops calling it, the per-cell check quietly comes back (slower, same answers).
    """
    enforce = _private(mlflow.models.utils, "_enforce_named_col_schema")
    key = f"{applies.__module__}.{applies.__qualname__}"
    installed = getattr(enforce, "any_columns_whole", ())
    if key in installed:
        return

    def whole(pf_input, input_schema):
        specs = input_schema.inputs
        if (not applies(input_schema) or not pf_input.columns.is_unique
                or not all(isinstance(spec.type, AnyType) for spec in specs)
                or any(spec.required and spec.name not in pf_input for spec in specs)):
            return enforce(pf_input, input_schema)
        return pd.DataFrame({spec.name: pf_input[spec.name] for spec in specs if spec.name in pf_input})

    whole.any_columns_whole = (*installed, key)
    mlflow.models.utils._enforce_named_col_schema = whole
