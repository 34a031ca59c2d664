"""Team mode: the main pipeline against an `mlflow server` with proxied artifacts, from a directory that
is not the repo, and the champion loaded from a third directory. Nothing is written on the client side."""

import json
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from pyfunc_models import config
from pyfunc_models.generator import write_ledger
from tests.conftest import REPO, mlflow_cli, python_module, tracking_env, tracking_server


@pytest.fixture(scope="module")
def year_ledger(tmp_path_factory):
    """Long enough for the cash-flow backtest, small enough for a quick run."""
    path = tmp_path_factory.mktemp("ledger") / "ledger.csv"
    write_ledger(path, rows=4000, seed=3, days=365)
    return path


def test_main_pipeline_through_a_tracking_server(tmp_path, year_ledger):
    with tracking_server(tmp_path / "server") as uri:
        client_dir = tmp_path / "client"
        client_dir.mkdir()
        result = mlflow_cli("run", str(REPO), "--env-manager", "local", "-P", f"data={year_ledger}",
                            uri=uri, cwd=client_dir)
        for model_type, name in config.MODEL_NAMES.items():
            assert name in result.stdout  # every model has a line in the summary
        assert f"models:/{config.MODEL_NAMES['category']}@champion" in result.stdout
        assert not any(client_dir.iterdir()), "the client wrote to its own disk"
        assert (tmp_path / "server" / "artifacts").is_dir()

        client = MlflowClient(uri)
        champion = client.get_model_version_by_alias(config.MODEL_NAMES["category"], config.CHAMPION)
        assert champion.tags["validation_status"] == "passed"

        elsewhere = tmp_path / "third"
        elsewhere.mkdir()
        script = (
            "import json, sys, mlflow, pandas as pd\n"
            "model = mlflow.pyfunc.load_model(sys.argv[1])\n"
            "rows = pd.DataFrame([{'date': '2024-01-05', 'description': 'POS PURCHASE SHELL OIL #4410 SAN JOSE CA',"
            " 'amount': -52.3, 'payment_method': 'credit_card'}])\n"
            "print(json.dumps(model.predict(rows)['category'].tolist()))\n"
        )
        env = tracking_env(uri)
        env.pop("PYTHONPATH", None)
        loaded = subprocess.run([sys.executable, "-c", script, f"models:/{config.MODEL_NAMES['category']}@champion"],
                                cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
        assert loaded.returncode == 0, loaded.stderr
        assert json.loads(loaded.stdout.strip().splitlines()[-1]) == ["fuel"]

        listing = python_module("entrypoints.register", "--action", "list", uri=uri).stdout
        assert "champion" in listing and config.MODEL_NAMES["cashflow"] in listing
