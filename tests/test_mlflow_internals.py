"""The private MLflow functions we rely on (pyfunc_models/mlflow_internals.py), against the installed MLflow.

An MLflow upgrade that moves or changes one of them fails here, by name, in the fast tier: not in a Spark job
(batch scoring types its answers with spark_udf's own mapping) nor only in a served model (an unknown request param
is a 400). The params checks predict through a real saved and loaded pyfunc, as serving does.
"""

from __future__ import annotations

import mlflow
import mlflow.models.utils
import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, ErrorCode
from mlflow.types import ParamSchema, ParamSpec, Schema
from mlflow.types.schema import AnyType, ColSpec
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


# --- an input schema of columns typed Any, taken whole -------------------------------------------------------------
class InputEcho(mlflow.pyfunc.PythonModel):
    """Answers with the frame MLflow handed it, after its schema check."""

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return model_input


ANY_SCHEMA = Schema([ColSpec(AnyType(), name, required=name in ("date", "description", "amount"))
                     for name in ("date", "description", "amount", "category", "reference")])


@pytest.fixture(scope="module")
def input_echo(tmp_path_factory):
    path = tmp_path_factory.mktemp("input_echo") / "model"
    mlflow.pyfunc.save_model(path, python_model=InputEcho(), signature=ModelSignature(inputs=ANY_SCHEMA),
                             pip_requirements=[])
    return mlflow.pyfunc.load_model(str(path))


@pytest.fixture
def any_columns_check(monkeypatch):
    """MLflow's named-column check as it was, and no schemas taken whole, restored after the test."""
    monkeypatch.setattr(mlflow.models.utils, "_enforce_named_col_schema", mlflow.models.utils._enforce_named_col_schema)
    monkeypatch.setattr(serving, "_ANY_SCHEMAS", [])
    cells = []
    enforce_type = mlflow.models.utils._enforce_type
    monkeypatch.setattr(mlflow.models.utils, "_enforce_type", lambda *args, **kw: cells.append(1) or enforce_type(*args, **kw))
    return cells


def requests() -> dict:
    """Request frames as pandas makes them of JSON, CSV exports and DataFrames built in code."""
    base = pd.DataFrame({"date": ["2025-03-11", "2025-03-12", "2025-03-12"], "description": ["SHELL", "RENT", "TAX"],
                         "amount": [-4.5, -900.0, 12.0], "category": ["", "Rent", ""], "reference": [None, "17", ""],
                         "extra": [1, 2, 3]})
    return {
        "json": base,
        "numbers as int64, an empty column as NaN": base.assign(reference=[11, 12, 13], category=np.nan),
        "datetime64 dates": base.assign(date=pd.to_datetime(base["date"])),
        "nullable and Arrow strings": base.assign(reference=pd.array([1, None, 3], dtype="Int64"),
                                                  description=base["description"].astype("string[pyarrow]")),
        "optional columns left out": base.drop(columns=["category", "reference"]),
    }


def test_pass_any_columns_whole_hands_over_what_mlflow_would(input_echo, any_columns_check):
    mlflow_answers = {name: input_echo.predict(frame) for name, frame in requests().items()}
    assert len(any_columns_check) > 0  # MLflow checked every cell
    serving.check_any_columns_whole(input_echo.metadata.get_input_schema())
    serving.check_any_columns_whole(input_echo.metadata.get_input_schema())  # a second load: installed once
    any_columns_check.clear()
    for name, frame in requests().items():
        whole = input_echo.predict(frame)
        assert list(whole.columns) == list(mlflow_answers[name].columns), name  # schema order, extra column dropped
        mlflow_answer = mlflow_answers[name]
        if name == "nullable and Arrow strings":  # MLflow rebuilds such a column from its values, as objects
            whole, mlflow_answer = whole.astype(object), mlflow_answer.astype(object)
        pd.testing.assert_frame_equal(whole, mlflow_answer, obj=name)
    assert any_columns_check == []  # not one per-cell call


def test_pass_any_columns_whole_leaves_a_missing_required_column_to_mlflow(input_echo, any_columns_check):
    serving.check_any_columns_whole(input_echo.metadata.get_input_schema())
    with pytest.raises(MlflowException, match=r"Model is missing inputs \['amount'\]") as refused:
        input_echo.predict(requests()["json"].drop(columns=["amount"]))
    assert refused.value.error_code == ErrorCode.Name(INVALID_PARAMETER_VALUE)  # the server's 400


def test_a_schema_not_registered_gets_mlflows_per_cell_check(input_echo, any_columns_check):
    serving.check_any_columns_whole(Schema([ColSpec(AnyType(), "description")]))  # another model's schema
    input_echo.predict(requests()["json"])
    assert len(any_columns_check) == 3 * len(ANY_SCHEMA.inputs)


def test_pass_any_columns_whole_is_named_when_mlflow_moves_it(monkeypatch):
    monkeypatch.delattr(mlflow.models.utils, "_enforce_named_col_schema")
    with pytest.raises(mlflow_internals.MlflowInternalsChanged, match=r"mlflow\.models\.utils\._enforce_named_col_schema"):
        mlflow_internals.pass_any_columns_whole(lambda schema: True)
