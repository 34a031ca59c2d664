"""Shared fixtures: a temporary tracking store for every test, small generated ledgers, the real `mlflow` CLI,
the session's four champions served by a real `mlflow models serve` on free loopback ports (tools/servers.py
starts and stops every server the tests use), a tracking server and a PostgreSQL database."""

from __future__ import annotations

import os

# One OpenBLAS thread, here and in every child (they inherit os.environ): on these small ledgers its threads spin
# instead of working, and with training, servers and Spark side by side on a 2-core CI machine the logistic
# regressions ran 4-10 times slower. Set before the imports below import numpy; an explicit setting is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import contextlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import requests

from pyfunc_models.amount import AmountTask
from pyfunc_models.generator import generate_ledger, write_ledger
from pyfunc_models.model_types import MODEL_NAMES
from tests import early_runs as early
from tools.servers import MLFLOW_CLI, free_port, model_server, running, stop_group

REPO = Path(__file__).resolve().parents[1]
SMALL_LEDGER_ROWS = 3000
# Where a sqlite store puts the artifacts of the experiments it makes: MLflow reads this variable (its server sets
# it) and otherwise takes ./mlruns of the working directory, which for the tests' commands is the repository.
ARTIFACT_ROOT_VARIABLE = "_MLFLOW_SERVER_ARTIFACT_ROOT"
HELD_BACK_DAYS = 30


@pytest.fixture(scope="session", autouse=True)
def _artifacts_outside_the_repository(tmp_path_factory):
    """A store a module or session fixture makes (before any test's own) puts its artifacts here, not in ./mlruns."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ARTIFACT_ROOT_VARIABLE, str(tmp_path_factory.mktemp("artifacts") / "mlruns"))
        yield


@pytest.fixture(scope="session")
def _empty_store(tmp_path_factory) -> Path:
    """A sqlite tracking store with MLflow's tables made and nothing in them, made once: each test gets a copy
    (a few milliseconds) instead of running MLflow's migrations on a new file (most of a second)."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("empty-store") / "mlflow.db"
    with pytest.MonkeyPatch.context() as patch:  # its Default experiment's artifacts go beside it, in every copy
        patch.setenv(ARTIFACT_ROOT_VARIABLE, str(path.parent / "mlruns"))
        MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture(autouse=True)
def _temporary_tracking(tmp_path, monkeypatch, _empty_store):
    """No test ever touches a real mlflow.db, nor the ./mlruns beside it: in-process MLflow calls go to a store of
    the test's own, and the artifacts of the experiments made in it into the test's folder."""
    shutil.copyfile(_empty_store, tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv(ARTIFACT_ROOT_VARIABLE, str(tmp_path / "mlruns"))
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    # mlflow.set_experiment remembers the experiment's id, in MLFLOW_EXPERIMENT_ID (for subprocesses) and in its
    # fluent module, and another test's store has no such id: both are unset now and again after the test (set,
    # then deleted, so that monkeypatch deletes it at teardown whatever the test set).
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID")
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)


def pytest_collection_modifyitems(items):
    """Modules with a test that waits for an early run go last, in their order: the others run while it trains."""
    waiting = {item.module for item in items if early.plans_of(item)}
    items.sort(key=lambda item: getattr(item, "module", None) in waiting)


@pytest.fixture(scope="session", autouse=True)
def early_runs(request, tmp_path_factory) -> dict:
    """The slow commands the collected tests will wait for, started now, one after the other in the background
    (tests/early_runs.py): the function that prepared them -> {key: EarlyRun}."""
    wanted = {prepare for item in request.session.items for prepare in early.plans_of(item)}
    prepared = {prepare: prepare(tmp_path_factory) for prepare in early.PLANS.values() if prepare in wanted}
    background = early.Background([run for runs in prepared.values() for run in runs.values()])
    try:
        yield prepared
    finally:
        background.stop()


@pytest.fixture(scope="session")
def seven_expenses() -> pd.DataFrame:
    """The category model's training rows of a 3,000-row generated ledger (seed 7), and below the models fitted on
    them, made once for the modules that read them (tests/test_category_reads.py, tests/test_word_knowledge.py)."""
    from pyfunc_models.category import CategoryTask
    from pyfunc_models.ledger import prepare_ledger

    return CategoryTask().training_rows(prepare_ledger(generate_ledger(3000, seed=7))[0])


@pytest.fixture(scope="session")
def seven_classifier(seven_expenses):
    """The description's text model in a merchant memory, fitted on `seven_expenses` (a few seconds)."""
    from pyfunc_models.category import MerchantMemory, text_logistic_regression

    return MerchantMemory(text_logistic_regression()).fit(seven_expenses,
                                                          seven_expenses["category"].to_numpy(dtype=object))


@pytest.fixture(scope="session")
def seven_word_knowledge(seven_classifier, seven_expenses):
    """Word knowledge learnt beside `seven_classifier` (the sentence encoder built once per machine; seconds)."""
    from pyfunc_models.category import CategoryTask

    return CategoryTask().learn_words(seven_classifier, seven_expenses)


@pytest.fixture(scope="session")
def small_ledger(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ledgers") / "ledger.csv"
    write_ledger(path, rows=SMALL_LEDGER_ROWS, seed=7)
    return path


class RidgeAndBaselines(AmountTask):
    """The amount task with its cheapest candidates, for tests about anything but the choice of model."""

    def candidates(self, seed):
        return [c for c in super().candidates(seed) if c.name == "ridge" or c.baseline]


def tracking_env(uri: str, **extra) -> dict:
    # `mlflow run --env-manager local` runs `python` from PATH: make it this interpreter's.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PATH": path, **extra}
    if uri.startswith("sqlite:///"):  # artifacts beside the store, not in the ./mlruns of the repository it runs in
        env[ARTIFACT_ROOT_VARIABLE] = str(Path(uri.removeprefix("sqlite:///")).parent / "mlruns")
    env.pop("MLFLOW_RUN_ID", None)
    env.pop("MLFLOW_EXPERIMENT_ID", None)  # mlflow.set_experiment in this process exports it; another store lacks it
    return env


def mlflow_cli(*args, uri: str, cwd=REPO, timeout=900, check=True) -> subprocess.CompletedProcess:
    """The real `mlflow` command of this interpreter's environment."""
    command = [MLFLOW_CLI, *args]
    result = subprocess.run(command, cwd=cwd, env=tracking_env(uri), capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def python_module(module: str, *args, uri: str, cwd=REPO, timeout=900, check=True) -> subprocess.CompletedProcess:
    """`python -m <module>` in a fresh process, as an entry point runs without `mlflow run`."""
    result = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=tracking_env(uri),
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"python -m {module} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def invoke(base: str, body, timeout: int = 60):
    """POST a payload (a dict, or raw text for malformed JSON) to a served model's /invocations."""
    import json

    data = body if isinstance(body, str) else json.dumps(body)
    return requests.post(f"{base}/invocations", data=data, headers={"Content-Type": "application/json"},
                         timeout=timeout)


def _postgres_programs() -> Path | None:
    """The bin folder of the newest PostgreSQL installed from Debian packages (or on PATH)."""
    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                       key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if installed:
        return installed[-1].parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


@contextlib.contextmanager
def postgres_database(folder: Path | None = None):
    """A private PostgreSQL cluster on a free 127.0.0.1 port with a database `mlflow`, stopped (by PID) afterwards;
    yields the database's URI. Without `folder` the cluster is made in a new temporary folder, deleted afterwards.
    With one (outside pytest's temporary folders when run as root: they are closed to the `postgres` user) the
    cluster is made there if the folder is empty, else started again on the data it holds (on a new port), and
    kept. Skips the test, saying why, where PostgreSQL cannot be started."""
    programs = _postgres_programs()
    if programs is None:
        pytest.skip("PostgreSQL is not installed (no initdb); `.ci/run` installs it: apt-get install postgresql")
    try:
        import psycopg
    except ImportError:
        pytest.skip("psycopg is not installed; `pip install -r requirements.txt` installs it")
    as_owner = []
    temporary = folder is None
    folder = Path(tempfile.mkdtemp(prefix="titans-postgres-")) if temporary else Path(folder)
    data = folder / "data"
    new = not data.exists()
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the Debian package's user.
        if shutil.which("runuser") is None or subprocess.run(["id", "postgres"], capture_output=True).returncode:
            pytest.skip("running as root without a 'postgres' user to run PostgreSQL as")
        as_owner = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres")
    port = free_port()
    process = log = None
    try:
        if new:
            initdb = subprocess.run([*as_owner, str(programs / "initdb"), "-D", str(data), "-U", "titans", "-A",
                                     "trust", "-E", "UTF8", "--no-sync"], capture_output=True, text=True, timeout=120)
            if initdb.returncode != 0:
                pytest.skip(f"PostgreSQL could not be initialised here: {initdb.stderr.strip()[-300:]}")
        log = open(folder / "postgres.log", "a")
        process = subprocess.Popen([*as_owner, str(programs / "postgres"), "-D", str(data), "-h", "127.0.0.1",
                                    "-p", str(port), "-k", str(folder), "-F"],
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        admin = f"postgresql://titans@127.0.0.1:{port}/postgres"
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.skip(f"PostgreSQL did not start: {(folder / 'postgres.log').read_text()[-300:]}")
            try:
                with psycopg.connect(admin, autocommit=True, connect_timeout=2) as connection:
                    connection.execute("CREATE DATABASE mlflow" if new else "SELECT 1")
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"PostgreSQL did not accept connections:\n{(folder / 'postgres.log').read_text()}")
                time.sleep(0.2)
        yield f"postgresql://titans@127.0.0.1:{port}/mlflow"
    finally:
        if process is not None:
            stop_group(process, signal.SIGINT, timeout=30)  # SIGINT: PostgreSQL's "fast shutdown"
        if log is not None:
            log.close()
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)


def champion_ledger() -> tuple:
    """A small ledger on which all four models pass their gates: almost a year (the cash-flow backtest
    needs 300 days), 5% anomalies (enough labelled ones in the test split for the gate's recall to mean
    something). Returns (past, future) raw rows: all but the last HELD_BACK_DAYS, and those days."""
    raw = generate_ledger(rows=3300, seed=7, days=360, anomaly_rate=0.05)
    cutoff = (pd.to_datetime(raw["Date"]).max() - pd.Timedelta(days=HELD_BACK_DAYS - 1)).strftime("%Y-%m-%d")
    return raw[raw["Date"] < cutoff], raw[raw["Date"] >= cutoff]


def write_champion_ledger(path: Path) -> tuple:
    """The champion ledger's past written to `path`; returns (past, future) raw rows."""
    past, future = champion_ledger()
    past.to_csv(path, index=False, float_format="%.2f")
    return past, future


@early.starts_early("champions")
def champion_training(tmp_path_factory) -> dict:
    """`mlflow run . -e main` on the champion ledger's past, in a store of the session's own; it starts with the
    session (tests/early_runs.py)."""
    folder = tmp_path_factory.mktemp("champions")
    ledger = folder / "ledger.csv"
    write_champion_ledger(ledger)
    command = [MLFLOW_CLI, "run", ".", "--env-manager", "local", "-P", f"data={ledger}"]
    return {"main": early.EarlyRun(command, cwd=REPO, env=tracking_env(f"sqlite:///{folder}/mlflow.db"),
                                   output_dir=folder)}


@pytest.fixture(scope="session")
def champions(early_runs) -> dict:
    """`mlflow run . -e main` once, on a small ledger long enough for the cash-flow backtest: four
    registered models with a champion each, in a store of the session's own. The ledger's last
    HELD_BACK_DAYS are held back from training (the cash-flow test judges the forecast on them)."""
    from mlflow.tracking import MlflowClient

    from pyfunc_models import config

    run = early_runs[champion_training]["main"]
    run.result()
    uri, ledger = run.env["MLFLOW_TRACKING_URI"], run.output_dir / "ledger.csv"
    past, future = champion_ledger()
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(config.EXPERIMENT_NAME)
    trained = {}
    for model_type, name in MODEL_NAMES.items():
        runs = client.search_runs([experiment.experiment_id], f"tags.model_type = '{model_type}'")
        assert len(runs) == 1, f"{model_type}: {len(runs)} training runs"
        trained[model_type] = {"uri": uri, "client": client, "run": runs[0],
                               "model_uri": f"models:/{name}@{config.CHAMPION}"}
    return {"uri": uri, "ledger": ledger, "past": past, "future": future, "trained": trained}


@pytest.fixture(scope="session")
def champion_servers(champions, tmp_path_factory) -> dict:
    """Each champion served from the registry (`models:/<name>@champion`), the four started side by side:
    model type -> base URL."""
    servers = {model_type: model_server(trained["model_uri"], cwd=tmp_path_factory.mktemp(f"serve-{model_type}"),
                                        env=tracking_env(champions["uri"]))
               for model_type, trained in champions["trained"].items()}
    with running(*servers.values()):
        yield {model_type: server.url for model_type, server in servers.items()}
