"""The one pyfunc class every model is served through: validate the request, predict, shape the output.

The fitted predictor (preprocessing + estimator + what it learned) is the model's
`predictor` artifact; this wrapper stays thin. Anything the request gets wrong
becomes an MlflowException with INVALID_PARAMETER_VALUE, which
`mlflow models serve` answers with a 400 carrying the message.
"""

from __future__ import annotations

import warnings

import joblib
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

from pyfunc_models.ledger import LedgerError

PREDICTOR_ARTIFACT = "predictor"
# Our input contract is the logged signature plus `ledger.prepare_ledger`, not type hints.
warnings.filterwarnings("ignore", message=".*Add type hints to the `predict` method")


class LedgerModel(PythonModel):
    def load_context(self, context):
        self.predictor = joblib.load(context.artifacts[PREDICTOR_ARTIFACT])

    def predict(self, context, model_input, params=None):
        try:
            transactions = self.predictor.prepare(model_input)
            return self.predictor.predict(transactions, **(params or {}))
        except LedgerError as error:
            raise MlflowException(str(error), error_code=INVALID_PARAMETER_VALUE) from None
