"""Models-from-code entry: MLflow runs this file to build the served model (see serving.LedgerModel)."""

from mlflow.models import set_model

from pyfunc_models.serving import LedgerModel

set_model(LedgerModel())
