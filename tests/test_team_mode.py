"""Team mode on a real database: `mlflow server` on PostgreSQL with proxied artifacts. The main pipeline
runs from a directory that is not the repo and writes nothing there; the champion is loaded and served
from the registry through the server; and the registry (versions, aliases, tags) survives a restart of
the tracking server."""

import json
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from pyfunc_models import config
from pyfunc_models.model_types import MODEL_NAMES
from tests.conftest import (REPO, invoke, mlflow_cli, postgres_database, python_module, tracking_env, tracking_server,
                            write_champion_ledger)
from tools.servers import served_model

pytestmark = pytest.mark.slow  # through the mlflow CLI, a served model or a tracking server

FUEL = {"date": "2024-01-05", "description": "POS PURCHASE SHELL OIL #4410 SAN JOSE CA", "amount": -52.3,
        "payment_method": "credit_card"}


@pytest.fixture(scope="module")
def year_ledger(tmp_path_factory):
    """The champions' ledger: long enough for the cash-flow backtest, small enough for a quick run."""
    path = tmp_path_factory.mktemp("ledger") / "ledger.csv"
    write_champion_ledger(path)
    return path


def registry_state(client: MlflowClient) -> dict:
    """Everything the registry promises to keep: each model's tags, and each version's aliases and tags."""
    state = {}
    for model in client.search_registered_models():
        versions = client.search_model_versions(f"name = '{model.name}'")
        state[model.name] = {
            "tags": dict(model.tags),
            "aliases": dict(model.aliases),
            "versions": {v.version: (v.status, dict(v.tags)) for v in versions},
        }
    return state


def test_main_pipeline_on_postgresql_serves_a_champion_and_survives_a_server_restart(tmp_path, year_ledger):
    with postgres_database() as database:
        with tracking_server(tmp_path / "server", database) as uri:
            client_dir = tmp_path / "client"
            client_dir.mkdir()
            result = mlflow_cli("run", str(REPO), "--env-manager", "local", "-P", f"data={year_ledger}",
                                uri=uri, cwd=client_dir)
            for name in MODEL_NAMES.values():
                assert name in result.stdout  # every model has a line in the summary
            assert not any(client_dir.iterdir()), "the client wrote to its own disk"
            assert (tmp_path / "server" / "artifacts").is_dir()

            client = MlflowClient(uri)
            champion = client.get_model_version_by_alias(MODEL_NAMES["category"], config.CHAMPION)
            assert champion.tags["validation_status"] == "passed"
            before = registry_state(client)
            assert set(before) == set(MODEL_NAMES.values())
            assert all(config.CHAMPION in model["aliases"] for model in before.values())

            # Served from the registry through the server, from a directory with nothing in it.
            elsewhere = tmp_path / "third"
            elsewhere.mkdir()
            champion_uri = f"models:/{MODEL_NAMES['category']}@champion"
            with served_model(champion_uri, cwd=elsewhere, env=tracking_env(uri)) as server:
                response = invoke(server.url, {"dataframe_records": [FUEL]})
                assert response.status_code == 200, response.text
                assert response.json()["predictions"][0]["category"] == "fuel"

        with tracking_server(tmp_path / "server", database) as restarted:
            after = registry_state(MlflowClient(restarted))
            assert after == before
            script = (
                "import json, sys, mlflow, pandas as pd\n"
                "model = mlflow.pyfunc.load_model(sys.argv[1])\n"
                f"print(json.dumps(model.predict(pd.DataFrame([{FUEL!r}]))['category'].tolist()))\n"
            )
            env = tracking_env(restarted)
            env.pop("PYTHONPATH", None)
            loaded = subprocess.run([sys.executable, "-c", script, champion_uri], cwd=elsewhere, env=env,
                                    capture_output=True, text=True, timeout=300)
            assert loaded.returncode == 0, loaded.stderr
            assert json.loads(loaded.stdout.strip().splitlines()[-1]) == ["fuel"]
            listing = python_module("entrypoints.register", "--action", "list", uri=restarted).stdout
            assert "champion" in listing and MODEL_NAMES["cashflow"] in listing
