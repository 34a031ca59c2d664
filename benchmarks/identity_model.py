"""Models-from-code entry of the trivial identity pyfunc: the served floor the REST benchmark compares
every champion with (same server, same request parsing and JSON answer, no model work)."""

import warnings

from mlflow.models import set_model
from mlflow.pyfunc import PythonModel

warnings.filterwarnings("ignore", message=".*Add type hints to the `predict` method")


class Identity(PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input


set_model(Identity())
