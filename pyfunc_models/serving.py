"""The one pyfunc class every model is served through: validate the request, predict, shape the output.

The fitted predictor (preprocessing + estimator + what it learned) is the model's
`predictor` artifact; this wrapper stays thin. Anything the request gets wrong
becomes an MlflowException with INVALID_PARAMETER_VALUE, which
`mlflow models serve` answers with a 400 carrying the message.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

from pyfunc_models import mlflow_internals
from pyfunc_models.ledger import LedgerError, as_frame

PREDICTOR_ARTIFACT = "predictor"

# Param sets of the models loaded in this process (e.g. {"horizon", "level"}): requests naming any
# other param are refused (see `refuse_unknown_params`).
_STRICT_PARAM_SETS: set = set()


def refuse_unknown_params(param_names) -> None:
    """Make an unknown param a 400 for a model whose params are `param_names`.

    MLflow drops params its signature does not declare with only a server-side
    warning, so a client's typo (`top_kk`, `horizn`) would be answered 200 with
    the default silently used. pyfunc has no hook for this, so MLflow's params
    check is wrapped once per process (`mlflow_internals.check_params_first`);
    it refuses only for param sets registered here and defers to MLflow for
    everything else.
    """
    _STRICT_PARAM_SETS.add(frozenset(param_names))

    def strict(params, schema):
        if isinstance(params, dict) and params and schema is not None:
            declared = {spec.name for spec in schema.params}
            unknown = sorted(set(map(str, params)) - declared)
            if unknown and frozenset(declared) in _STRICT_PARAM_SETS:
                raise MlflowException(
                    f"unknown param(s) {', '.join(map(repr, unknown))}; "
                    f"this model takes: {', '.join(sorted(declared))}",
                    error_code=INVALID_PARAMETER_VALUE,
                )

    mlflow_internals.check_params_first(strict)


class LedgerModel(PythonModel):
    def load_context(self, context):
        predictor_path = Path(context.artifacts[PREDICTOR_ARTIFACT])
        self.predictor = joblib.load(predictor_path)
        self.predictor.warm()  # the first request then waits for nothing (e.g. the category model's encoder session)
        # The model directory is the artifacts folder's parent; its MLmodel has the params schema.
        signature = Model.load(predictor_path.parent.parent).signature
        if signature is not None and signature.params is not None:
            refuse_unknown_params(spec.name for spec in signature.params.params)

    # The input is typed as what MLflow hands over for the dataframe formats and CSV: a DataFrame. MLflow infers no
    # schema from that hint and adds no check of its own, so our contract stays `ledger.prepare_ledger` (the models
    # log no input schema: see tracking.log_predictor); without a hint, MLflow warns at every log and every load.
    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        try:
            return self.predictor.serve(as_frame(model_input), params)
        except LedgerError as error:
            raise MlflowException(str(error), error_code=INVALID_PARAMETER_VALUE) from None


# MLflow reads `predict`'s signature on every call (whether it takes `context` and `params`); a function's own
# `__signature__` is what `inspect.signature` answers without rebuilding it from the code (PEP 362).
LedgerModel.predict.__signature__ = inspect.signature(LedgerModel.predict)
