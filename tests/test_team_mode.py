"""Team mode as a team runs it: the authenticated tracking server (team_mode/server.py, MLflow's basic-auth app) on
PostgreSQL, with users and permissions in their own database beside the tracking data, and the accounts made by
`python -m team_mode.users setup`. Anonymous requests and wrong passwords get 401; the training account runs the
main pipeline to four champions from a directory it writes nothing to, and no password reaches a run or the output;
the reader serves the category champion from the registry, cannot read a run, and is refused a promote in one line;
users, permissions and the registry survive restarts of the server and of PostgreSQL.

The first half (the cluster, the server, `setup` and the trainer's `mlflow run`, a minute of training) is this
module run as a program, `python -m tests.test_team_mode`, from the session's start in the background
(tests/early_runs.py); it stops the server and the cluster and keeps the cluster's data. The test starts them again
on that data and checks what the first half did and everything after it."""

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import requests
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pyfunc_models import access, config
from pyfunc_models.model_types import MODEL_NAMES
from tests.conftest import REPO, invoke, postgres_database, tracking_env, write_champion_ledger
from tests.early_runs import EarlyRun, starts_early
from tools.servers import MLFLOW_CLI, Server, free_port, running, served_model

pytestmark = pytest.mark.slow  # a PostgreSQL cluster, two tracking server starts, `mlflow run` and a served model

FUEL = {"date": "2024-01-05", "description": "POS PURCHASE SHELL OIL #4410 SAN JOSE CA", "amount": -52.3,
        "payment_method": "credit_card"}
ADMIN = ("admin", "admin-" + secrets.token_hex(8))
TRAINER = ("trainer", "trainer-" + secrets.token_hex(8))
READER = ("reader", "reader-" + secrets.token_hex(8))
PASSWORDS = (ADMIN[1], TRAINER[1], READER[1])
SECRET_KEY = secrets.token_hex()
SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"
# How the first half gets the session's secrets: the variables the server and `team_mode.users setup` read.
SECRETS = {"MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN, "TITANS_TRAINER_PASSWORD": TRAINER, "TITANS_READER_PASSWORD": READER}


def auth_database(database: str) -> str:
    """The URI of the auth app's own database, in the cluster of `database`."""
    return f"{database.rsplit('/', 1)[0]}/mlflow_auth"


def with_auth_database(database: str) -> str:
    """Make the auth app's own database in the cluster of `database`; returns its URI."""
    import psycopg

    cluster, name = auth_database(database).rsplit("/", 1)
    with psycopg.connect(f"{cluster}/postgres", autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return f"{cluster}/{name}"


@contextlib.contextmanager
def team_server(folder, database: str, auth_database: str):
    """`python -m team_mode.server` on a free 127.0.0.1 port, as the README starts it; yields its URI."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**tracking_env(""), "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1], "MLFLOW_FLASK_SERVER_SECRET_KEY": SECRET_KEY,
           "MLFLOW_BACKEND_STORE_URI": database, "MLFLOW_AUTH_DATABASE_URI": auth_database}
    command = [sys.executable, "-m", "team_mode.server", "--artifacts-destination", folder / "artifacts",
               "--host", "127.0.0.1", "--port", port, "--workers", "1"]
    server = Server(command, port, cwd=REPO, env=env, log_path=folder / f"server-{port}.log", ready_path="/health")
    with running(server):
        yield server.url


def as_user(uri: str, user: tuple, **extra) -> dict:
    return tracking_env(uri, MLFLOW_TRACKING_USERNAME=user[0], MLFLOW_TRACKING_PASSWORD=user[1], **extra)


def run(command: list, env: dict, cwd=REPO) -> subprocess.CompletedProcess:
    result = subprocess.run([str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=900)
    assert not any(password in result.stdout + result.stderr for password in PASSWORDS), "a password was printed"
    return result


def client_as(monkeypatch, uri: str, user: tuple) -> MlflowClient:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", user[1])
    return MlflowClient(uri)


def registry_state(client: MlflowClient) -> dict:
    """Everything the registry promises to keep: each model's tags, and each version's aliases and tags."""
    state = {}
    for model in client.search_registered_models():
        versions = client.search_model_versions(f"name = '{model.name}'")
        state[model.name] = {"tags": dict(model.tags), "aliases": dict(model.aliases),
                             "versions": {v.version: (v.status, dict(v.tags)) for v in versions}}
    return state


def status(uri: str, user: tuple | None = None) -> int:
    return requests.get(uri + SEARCH, auth=user, timeout=30).status_code


def train_as_the_trainer(folder: Path, ledger: Path) -> None:
    """The first half, run as a program in the background: a new cluster (its folder's path in `folder`/cluster), the
    server, `setup` as the admin and the trainer's `mlflow run` of main; what they answered in `folder`/trainer.json,
    or why PostgreSQL cannot run here in `folder`/skipped."""
    cluster = Path(tempfile.mkdtemp(prefix="titans-postgres-"))  # not in pytest's folders: closed to `postgres`
    (folder / "cluster").write_text(str(cluster))
    try:
        with postgres_database(cluster) as database:
            with team_server(folder / "server", database, with_auth_database(database)) as uri:
                made = run([sys.executable, "-m", "team_mode.users", "setup"],
                           as_user(uri, ADMIN, TITANS_TRAINER_PASSWORD=TRAINER[1], TITANS_READER_PASSWORD=READER[1]))
                # The training account: the whole pipeline, from a directory it writes nothing to.
                client_dir = folder / "client"
                client_dir.mkdir()
                # Word knowledge off (-P word_knowledge=0, which main passes on to the category model): this test is
                # about access, not categories; it also checks that main takes the option.
                trained = run([MLFLOW_CLI, "run", REPO, "--env-manager", "local", "--experiment-name",
                               config.EXPERIMENT_NAME, "-P", f"data={ledger}", "-P", "word_knowledge=0"],
                              as_user(uri, TRAINER), cwd=client_dir)
    except BaseException as stopped:  # a skip, a failure or SIGTERM: nobody will start this cluster again
        shutil.rmtree(cluster, ignore_errors=True)
        if not isinstance(stopped, pytest.skip.Exception):
            raise
        (folder / "skipped").write_text(stopped.msg)
        return
    answers = {name: {"returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr}
               for name, done in (("setup", made), ("training", trained))}
    (folder / "trainer.json").write_text(json.dumps(answers))


@starts_early("trainer_half")
def trainer_half_in_the_background(tmp_path_factory) -> dict:
    """`python -m tests.test_team_mode <folder> <ledger>` on the champions' ledger (long enough for the cash-flow
    backtest, small enough for a quick run), with the session's secrets; it starts with the session."""
    folder = tmp_path_factory.mktemp("team-mode")
    ledger = folder / "ledger.csv"
    write_champion_ledger(ledger)
    env = tracking_env("", MLFLOW_FLASK_SERVER_SECRET_KEY=SECRET_KEY,
                       **{variable: user[1] for variable, user in SECRETS.items()})
    command = [sys.executable, "-m", "tests.test_team_mode", folder, ledger]
    return {"trainer": EarlyRun(command, cwd=REPO, env=env, output_dir=folder)}


@pytest.fixture(scope="module")
def trainer_half(early_runs):
    """The first half's folder and answers, waited for; its cluster's folder is deleted after the module."""
    run = early_runs[trainer_half_in_the_background]["trainer"]
    folder = run.output_dir
    try:
        run.result()
        if (folder / "skipped").exists():
            pytest.skip((folder / "skipped").read_text())
        yield {"folder": folder, "cluster": Path((folder / "cluster").read_text()),
               **json.loads((folder / "trainer.json").read_text())}
    finally:
        if (folder / "cluster").exists():
            shutil.rmtree((folder / "cluster").read_text(), ignore_errors=True)


def test_team_mode_is_authenticated_end_to_end_and_survives_a_server_restart(trainer_half, monkeypatch):
    folder = trainer_half["folder"]
    with postgres_database(trainer_half["cluster"]) as database:  # the first half's cluster, started again
        with team_server(folder / "server", database, auth_database(database)) as uri:
            assert status(uri) == 401, "an anonymous request was answered"
            assert status(uri, (TRAINER[0], "not-the-password")) == 401
            assert status(uri, ADMIN) == 200

            made, trained = trainer_half["setup"], trainer_half["training"]
            assert made["returncode"] == 0, made["stderr"]
            assert "user trainer: created" in made["stdout"] and "reader: DENY on every run" in made["stdout"]
            assert trained["returncode"] == 0, trained["stdout"][-3000:] + trained["stderr"][-3000:]
            assert not any((folder / "client").iterdir()), "the client wrote to its own disk"

            admin = client_as(monkeypatch, uri, ADMIN)
            before = registry_state(admin)
            assert set(before) == set(MODEL_NAMES.values())
            assert all(config.CHAMPION in model["aliases"] for model in before.values()), before
            experiment = admin.get_experiment_by_name(config.EXPERIMENT_NAME)
            runs = admin.search_runs([experiment.experiment_id])
            assert len(runs) >= 5  # main and one training run per model
            assert {r.data.params["word_knowledge"] for r in runs if "word_knowledge" in r.data.params} == {"0"}
            recorded = json.dumps([(r.data.params, r.data.tags) for r in runs])
            assert not any(password in recorded for password in PASSWORDS), "a password is in a run's params or tags"

            # The reader serves the champion from the registry, through the server, from an empty directory.
            elsewhere = folder / "reader"
            elsewhere.mkdir()
            champion_uri = f"models:/{MODEL_NAMES['category']}@champion"
            with served_model(champion_uri, cwd=elsewhere, env=as_user(uri, READER)) as server:
                response = invoke(server.url, {"dataframe_records": [FUEL]})
                assert response.status_code == 200, response.text
                assert response.json()["predictions"][0]["category"] == "fuel"

            # ... and nothing more: no run (their artifacts hold the evaluation ledgers), no alias move.
            reader = client_as(monkeypatch, uri, READER)
            assert reader.search_runs([experiment.experiment_id]) == []
            with pytest.raises(MlflowException) as refused:
                reader.get_run(runs[0].info.run_id)
            assert access.http_status(refused.value) == 403
            version = before[MODEL_NAMES["category"]]["aliases"][config.CHAMPION]
            for action in ("promote", "archive"):  # promote first reads the run behind the version; archive writes
                refused = run([sys.executable, "-m", "entrypoints.register", "--action", action, "--model-type",
                               "category", "--version", version, "--force", "true"], as_user(uri, READER))
                assert refused.returncode == 2, refused.stderr
                assert refused.stderr.startswith(f"error: {action} titans-finance-category-prediction needs MANAGE")
                assert "user 'reader' does not have that permission" in refused.stderr
                assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
            assert "(403 Permission denied)" in refused.stderr  # MLflow's own answer to the alias move
            assert registry_state(client_as(monkeypatch, uri, ADMIN)) == before

        with team_server(folder / "server", database, auth_database(database)) as restarted:
            assert status(restarted) == 401 and status(restarted, (READER[0], "wrong-password")) == 401
            assert registry_state(client_as(monkeypatch, restarted, ADMIN)) == before
            script = ("import json, sys, mlflow, pandas as pd\n"
                      "model = mlflow.pyfunc.load_model(sys.argv[1])\n"
                      f"print(json.dumps(model.predict(pd.DataFrame([{FUEL!r}]))['category'].tolist()))\n")
            env = as_user(restarted, READER)
            env.pop("PYTHONPATH", None)
            loaded = run([sys.executable, "-c", script, champion_uri], env, cwd=elsewhere)
            assert loaded.returncode == 0, loaded.stderr
            assert json.loads(loaded.stdout.strip().splitlines()[-1]) == ["fuel"]
            listing = run([sys.executable, "-m", "entrypoints.register", "--action", "list"],
                          as_user(restarted, TRAINER))
            assert listing.returncode == 0, listing.stderr
            assert "champion" in listing.stdout and MODEL_NAMES["cashflow"] in listing.stdout


if __name__ == "__main__":  # the first half, from trainer_half_in_the_background: the secrets are the session's
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped early: stop the server and the cluster too
    ADMIN, TRAINER, READER = ((user[0], os.environ.pop(variable)) for variable, user in SECRETS.items())
    PASSWORDS = (ADMIN[1], TRAINER[1], READER[1])
    SECRET_KEY = os.environ.pop("MLFLOW_FLASK_SERVER_SECRET_KEY")
    train_as_the_trainer(Path(sys.argv[1]), Path(sys.argv[2]))
