"""The category model end to end: trained by the real `mlflow run . -e main` (the session's champions),
loaded from elsewhere, served from the registry by a real `mlflow models serve`."""

import json
import subprocess
import sys

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pyfunc_models import config
from pyfunc_models.model_types import MODEL_NAMES
from tests.conftest import REPO, invoke, tracking_env
from tests.early_runs import EarlyRun, starts_early
from tools.servers import MLFLOW_CLI

pytestmark = pytest.mark.slow  # through the mlflow CLI, a served model or a tracking server

CLEAR_CASES = [  # (description, amount, payment_method, expected category): merchants the ledger knows well
    ("POS PURCHASE SHELL OIL #4410 SAN JOSE CA", -52.30, "credit_card", "fuel"),
    ("STAPLES 88812 SANTA CLARA CA", -38.10, "credit_card", "office_supplies"),
    ("VISA UNITED AIRLINES*QX7RT CA", -412.00, "credit_card", "travel"),
    ("ACH DEBIT STATE FARM INSURANCE 3321", -305.00, "bank_transfer", "insurance"),
]


def transaction(description, amount, payment_method="credit_card", date="2023-05-02"):
    return {"date": date, "type": "Expense", "description": description, "amount": amount,
            "payment_method": payment_method, "status": "completed", "reference": "TXN123"}


@pytest.fixture(scope="module")
def trained(champions):
    return champions["trained"]["category"]


@pytest.fixture(scope="module")
def server(champion_servers):
    return champion_servers["category"]


def test_training_run_logs_metrics_candidates_artifacts_and_data(trained):
    run, client = trained["run"], trained["client"]
    assert run.info.status == "FINISHED"
    metrics = run.data.metrics
    for name in ("test_accuracy", "test_macro_f1", "test_weighted_f1", "test_merchant_holdout_accuracy",
                 "baseline_majority_test_accuracy", "baseline_merchant_lookup_test_macro_f1"):
        assert name in metrics
    # Measured on the future, never on training rows: far above the majority class, and on merchants it
    # never saw, above the lookup that only knows merchant names (on known merchants they are close).
    assert metrics["test_accuracy"] > metrics["baseline_majority_test_accuracy"] + 0.5
    assert metrics["test_macro_f1"] > metrics["baseline_majority_test_macro_f1"] + 0.5
    assert metrics["test_merchant_holdout_accuracy"] > metrics["baseline_merchant_lookup_test_merchant_holdout_accuracy"]
    children = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert {c.data.tags["candidate"] for c in children} == {"text_logistic_regression", "logistic_regression",
                                                            "random_forest", "xgboost", "merchant_lookup", "majority"}
    assert all("validation_macro_f1" in c.data.metrics for c in children)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation/confusion_matrix.png", "evaluation/classification_report.json",
            "evaluation/test_ledger.csv"} <= artifacts
    inputs = [{tag.key: tag.value for tag in i.tags} for i in run.inputs.dataset_inputs]
    assert {tags["mlflow.data.context"] for tags in inputs} == {"training", "evaluation"}
    assert all(int(tags["rows"]) > 0 and tags["first_day"] <= tags["last_day"] for tags in inputs)


def test_logged_model_has_signature_example_and_params(trained, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained["uri"])
    info = mlflow.models.get_model_info(trained["model_uri"])
    # No input schema: MLflow would match column names exactly; the contract maps any header. The columns are in
    # the MLmodel's metadata (the registry's description lists them) and the input example.
    assert info.signature.inputs is None
    assert "description" in info.metadata["required_columns"] and "reference" not in info.metadata["required_columns"]
    assert "reference" in info.metadata["input_columns"]
    params = {p.name: p.default for p in info.signature.params}
    assert set(params) == {"top_k", "date_order"} and params["date_order"] in ("auto", "dmy", "mdy")
    assert info.saved_input_example_info is not None


def test_model_loads_and_predicts_in_a_fresh_process_outside_the_repo(trained, tmp_path):
    script = (
        "import json, sys, mlflow, pandas as pd\n"
        "model = mlflow.pyfunc.load_model(sys.argv[1])\n"
        "rows = pd.DataFrame(json.loads(sys.argv[2]))\n"
        "print(json.dumps(model.predict(rows)['category'].tolist()))\n"
    )
    rows = [transaction(d, a, m) for d, a, m, _ in CLEAR_CASES]
    env = tracking_env(trained["uri"])
    env.pop("PYTHONPATH", None)
    result = subprocess.run([sys.executable, "-c", script, trained["model_uri"], json.dumps(rows)], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [c for *_, c in CLEAR_CASES]


def test_served_model_answers_every_payload_format(server):
    rows = [transaction(d, a, m) for d, a, m, _ in CLEAR_CASES]
    expected = [c for *_, c in CLEAR_CASES]
    frame = pd.DataFrame(rows)
    payloads = [
        {"dataframe_records": rows},
        {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))},
        {"inputs": {column: frame[column].tolist() for column in frame.columns}},
    ]
    for payload in payloads:
        response = invoke(server, payload)
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        assert [p["category"] for p in predictions] == expected
        assert all(0 < p["confidence"] <= 1 and len(p["alternatives"]) == 3 for p in predictions)


def test_params_top_k(server):
    body = {"dataframe_records": [transaction(*CLEAR_CASES[0][:3])], "params": {"top_k": 5}}
    prediction = invoke(server, body).json()["predictions"][0]
    alternatives = prediction["alternatives"]
    assert len(alternatives) == 5 and alternatives[0]["category"] == "fuel"
    assert [a["probability"] for a in alternatives] == sorted((a["probability"] for a in alternatives), reverse=True)


def test_unseen_merchants_extra_columns_and_minimal_rows_are_scored(server):
    rows = [
        {**transaction("ZORBLAX QUANTUM WIDGETS 991 NOWHERE ZZ", -77.0), "loyalty_points": 12},
        {"date": "2023-05-02", "description": "CHEVRON 0099 AUSTIN TX", "amount": "-61.20"},
    ]
    response = invoke(server, {"dataframe_records": rows})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == 2 and predictions[1]["category"] == "fuel"
    # A merchant the ledger never had is read from its words (issue 17); Chevron is in it (another branch).
    assert [p["answered_from"] for p in predictions] == ["description_words", "merchant_history"]


def test_a_merchant_never_seen_is_read_from_its_words_and_a_known_one_from_its_history(server):
    rows = [transaction("VOXTREJIN YACHT CHARTER MONACO", -2400.0), transaction(*CLEAR_CASES[0][:3])]
    predictions = invoke(server, {"dataframe_records": rows}).json()["predictions"]
    assert [(p["category"], p["answered_from"]) for p in predictions] == [
        ("travel", "description_words"), ("fuel", "merchant_history")]


@starts_early("bad_ledger_runs")
def train_then_register_a_bad_ledger(tmp_path_factory) -> dict:
    """`mlflow run . -e train_category` on a ledger with an unparsable amount, then `mlflow run . -e register`,
    in a store of their own; they start with the session, in that order (tests/early_runs.py)."""
    folder = tmp_path_factory.mktemp("bad-ledger")
    bad = folder / "bad.csv"
    pd.DataFrame({"Date": ["2024-01-01", "2024-01-02"], "Description": ["a", "b"], "Amount": ["-1.00", "12,50"],
                  "Category": ["fuel", "rent"]}).to_csv(bad, index=False)
    env = tracking_env(f"sqlite:///{folder}/mlflow.db")
    train = [MLFLOW_CLI, "run", ".", "-e", "train_category", "--env-manager", "local", "-P", f"data={bad}"]
    register = [MLFLOW_CLI, "run", ".", "-e", "register", "--env-manager", "local", "-P", "model_type=category"]
    runs = {}
    for name, command in (("train", train), ("register", register)):  # each its own output folder
        (folder / name).mkdir()
        runs[name] = EarlyRun(command, cwd=REPO, env=env, output_dir=folder / name)
    return runs


@pytest.fixture(scope="module")
def bad_ledger_runs(early_runs):
    return early_runs[train_then_register_a_bad_ledger]


def test_a_bad_training_ledger_fails_the_run_and_registers_nothing(bad_ledger_runs):
    uri = bad_ledger_runs["train"].env["MLFLOW_TRACKING_URI"]
    result = bad_ledger_runs["train"].result(check=False)
    assert result.returncode != 0
    assert "row 1 (line 3 of bad.csv), column 'amount': '12,50' is written with a decimal comma" in result.stderr
    assert "Traceback" not in result.stderr.split("error: ")[-1]
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(config.EXPERIMENT_NAME)
    runs = client.search_runs([experiment.experiment_id], "tags.model_type = 'category'")
    assert [r.info.status for r in runs] == ["FAILED"]
    assert list(client.search_logged_models(experiment_ids=[experiment.experiment_id])) == []
    # ...and the registry finds nothing to register.
    result = bad_ledger_runs["register"].result(check=False)
    assert result.returncode != 0 and "no FINISHED training run" in result.stderr
    assert client.search_model_versions(f"name = '{MODEL_NAMES['category']}'") == []
