"""The private MLflow functions we rely on (pyfunc_models/mlflow_internals.py), against the installed MLflow.

An MLflow upgrade that moves or changes one of them fails here, by name, in the fast tier: not in a Spark job
(batch scoring types its answers with spark_udf's own mapping) nor only in a served model (an unknown request param
is a 400). The params checks predict through a real saved and loaded pyfunc, as serving does.
"""

from __future__ import annotations

import mlflow
import mlflow.pyfunc
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, ErrorCode
from mlflow.types import ParamSchema, ParamSpec, Schema
from mlflow.types.schema import ColSpec
from pyspark.sql.types import DoubleType

from pyfunc_models import mlflow_internals, serving

# The category model's output schema as its MLmodel stores it: text, a number, and top-k alternatives.
CATEGORY_OUTPUTS = (
    '[{"type": "string", "name": "category", "required": false}, {"type": "double", "name": "confidence", '
    '"required": false}, {"type": "array", "items": {"type": "object", "properties": {"category": {"type": '
    '"string", "required": true}, "probability": {"type": "double", "required": true}}}, "name": "alternatives", '
    '"required": true}]'
)


class ParamsEcho(mlflow.pyfunc.PythonModel):
    """Answers with the params MLflow handed it, one row."""

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return pd.DataFrame([params or {}])


@pytest.fixture(scope="module")
def echo(tmp_path_factory):
    """A saved and loaded pyfunc taking `top_k` (default 3) and `label` (default "x")."""
    path = tmp_path_factory.mktemp("echo") / "model"
    signature = ModelSignature(inputs=Schema([ColSpec("string", "description")]),
                               params=ParamSchema([ParamSpec("top_k", "long", 3), ParamSpec("label", "string", "x")]))
    mlflow.pyfunc.save_model(path, python_model=ParamsEcho(), signature=signature, pip_requirements=[],
                             input_example=pd.DataFrame({"description": ["SHELL OIL"]}))
    return mlflow.pyfunc.load_model(str(path))


@pytest.fixture
def params_check(monkeypatch):
    """MLflow's params check as it was, and no strict param sets, restored after the test."""
    monkeypatch.setattr(mlflow.pyfunc, "_enforce_params_schema", mlflow.pyfunc._enforce_params_schema)
    monkeypatch.setattr(serving, "_STRICT_PARAM_SETS", set())


def received(model, params) -> dict:
    return model.predict(pd.DataFrame({"description": ["SHELL OIL"]}), params=params).iloc[0].to_dict()


def test_spark_udf_result_type_of_the_category_outputs_is_a_struct_of_them():
    result = mlflow_internals.spark_udf_result_type(Schema.from_json(CATEGORY_OUTPUTS))
    assert result.simpleString() == ("struct<category:string,confidence:double,"
                                     "alternatives:array<struct<category:string,probability:double>>>")


def test_spark_udf_result_type_of_one_unnamed_output_is_its_plain_type():
    assert mlflow_internals.spark_udf_result_type(Schema([ColSpec("double")])) == DoubleType()


def test_check_params_first_runs_once_before_mlflow_which_still_fills_defaults(echo, params_check):
    calls = []

    def record(params, schema):
        calls.append((dict(params or {}), sorted(spec.name for spec in schema.params)))

    mlflow_internals.check_params_first(record)
    mlflow_internals.check_params_first(record)  # a second model loaded: still one check per predict
    assert received(echo, {"top_k": 5}) == {"top_k": 5, "label": "x"}
    assert calls == [({"top_k": 5}, ["label", "top_k"])]


def test_refuse_unknown_params_refuses_an_unknown_param_with_invalid_parameter_value(echo, params_check):
    serving.refuse_unknown_params(["top_k", "label"])
    refusal = r"unknown param\(s\) 'top_kk'; this model takes: label, top_k"
    with pytest.raises(MlflowException, match=refusal) as refused:
        received(echo, {"top_kk": 5})
    assert refused.value.error_code == ErrorCode.Name(INVALID_PARAMETER_VALUE)


def test_refuse_unknown_params_defers_to_mlflow_for_known_params(echo, params_check):
    serving.refuse_unknown_params(["top_k", "label"])
    assert received(echo, {"top_k": 5}) == {"top_k": 5, "label": "x"}
    assert received(echo, None) == {"top_k": 3, "label": "x"}
    with pytest.raises(MlflowException, match="Invalid parameters found") as refused:  # MLflow's own type check
        received(echo, {"top_k": "five"})
    assert refused.value.error_code == ErrorCode.Name(INVALID_PARAMETER_VALUE)


def test_a_model_whose_params_are_not_registered_gets_mlflow_behaviour(echo, params_check):
    serving.refuse_unknown_params(["horizon", "level"])  # another model's params
    assert received(echo, {"top_kk": 5}) == {"top_k": 3, "label": "x"}  # dropped, as MLflow does


def test_a_private_function_gone_is_named_with_the_version_checked(monkeypatch):
    monkeypatch.delattr(mlflow.pyfunc, "_infer_spark_udf_return_type")
    with pytest.raises(mlflow_internals.MlflowInternalsChanged,
                       match=rf"mlflow\.pyfunc\._infer_spark_udf_return_type is not in MLflow .* checked against "
                             rf"{mlflow_internals.CHECKED_AGAINST}"):
        mlflow_internals.spark_udf_result_type(Schema([ColSpec("double")]))
