"""The private MLflow functions this project relies on, reached only through here.

MLflow has no public way to do two things we need: know the Spark type `spark_udf` gives a model's answer (batch
scoring builds its own plans around it), and refuse a request param a model does not declare (MLflow drops it with a
server-side warning). Each function below names the private function it uses, the MLflow version it was checked
against and what breaks if MLflow changes it. tests/test_mlflow_internals.py exercises each against the installed
MLflow, so an upgrade that moves one fails a fast test named after it, not a Spark job or a served model.
"""

from __future__ import annotations

from typing import Callable

import mlflow
import mlflow.pyfunc

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
