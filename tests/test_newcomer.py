"""What a newcomer met in the first hour (issue 13), held by tests: the MLflow UI shows the work (the `main` run's
summary, a launcher run in Default that points to it, registered models that say what they answer and how they are
gated), a ledger too small for its metrics says so, an income row sent to the category model is answered for what it
is, and neither our pyfunc nor our features fill the terminal with warnings."""

import json
import re
import warnings

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import KBinsDiscretizer

from pyfunc_models import config, jobs, registry, tracking, training
from pyfunc_models.anomaly import AnomalyTask
from pyfunc_models.cashflow import CashflowTask
from pyfunc_models.category import CategoryPredictor, CategoryTask, MerchantLookup
from pyfunc_models.features import AmountBand, LogAmount
from pyfunc_models.generator import generate_ledger
from pyfunc_models.ledger import prepare_ledger
from pyfunc_models.model_types import MODEL_NAMES, task_class
from tests.conftest import REPO, invoke, python_module, tracking_env
from tests.early_runs import EarlyRun, starts_early
from tools.servers import MLFLOW_CLI, served_model

WARNING_LINE = re.compile(r"\w*Warning\b")


def write_head(path, rows: int, generated: int = 400, days: int = 200, seed: int = 3):
    """The first `rows` rows of a generated ledger: a ledger as small as a newcomer's first try."""
    generate_ledger(rows=generated, seed=seed, days=days).head(rows).to_csv(path, index=False)
    return path


# --- item 4: the MLflow UI shows the work ------------------------------------------------------------------------

def test_a_launcher_run_in_default_names_where_the_work_is(monkeypatch):
    """`mlflow run` without --experiment-name: its run lands in Default; ours says where the results are."""
    client = MlflowClient()
    launcher = client.create_run("0").info.run_id  # what `mlflow run` makes before our code starts
    monkeypatch.setenv("MLFLOW_RUN_ID", launcher)
    with tracking.training_run(config.EXPERIMENT_NAME, "main", {}) as run:
        work = run.info
    assert client.get_experiment(work.experiment_id).name == config.EXPERIMENT_NAME
    assert client.get_run(work.run_id).data.tags[tracking.LAUNCHER_TAG] == launcher
    pointer = client.get_run(launcher)
    assert pointer.info.run_name == f"main: results in {config.EXPERIMENT_NAME}"
    assert pointer.data.tags[tracking.RESULTS_EXPERIMENT_TAG] == config.EXPERIMENT_NAME
    assert pointer.data.tags[tracking.RESULTS_RUN_TAG] == work.run_id
    note = pointer.data.tags["mlflow.note.content"]
    assert f"#/experiments/{work.experiment_id}/runs/{work.run_id}" in note
    assert f"--experiment-name {config.EXPERIMENT_NAME}" in note


def test_launched_in_our_experiment_the_launcher_run_is_the_run_and_keeps_its_parameters(monkeypatch):
    """`mlflow run --experiment-name titans-finance-ml-models`: the launcher run is used, and the parameters it
    already carries as the user spelled them ('' is logged as "''", 20000 as '20000') are not logged again."""
    client = MlflowClient()
    experiment = client.create_experiment(config.EXPERIMENT_NAME)
    launcher = client.create_run(experiment).info.run_id
    client.log_param(launcher, "data", "''")
    client.log_param(launcher, "sample_rows", "20000.0")
    monkeypatch.setenv("MLFLOW_RUN_ID", launcher)
    with tracking.training_run(config.EXPERIMENT_NAME, "main", {}) as run:
        tracking.log_params_once({"data": "generated:20000:42", "sample_rows": 20000, "seed": 42})
    assert run.info.run_id == launcher
    assert client.get_run(launcher).data.params == {"data": "''", "sample_rows": "20000.0", "seed": "42"}


def test_a_nested_run_inside_the_launcher_run_is_a_new_run(monkeypatch):
    """`mlflow run -e train_category --experiment-name titans-finance-ml-models`: the first candidate's nested run
    is a child of the launcher run, not the launcher run resumed again (MLflow resumes MLFLOW_RUN_ID at the next
    start_run that names no run, nested or not)."""
    client = MlflowClient()
    launcher = client.create_run(client.create_experiment(config.EXPERIMENT_NAME)).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", launcher)
    with tracking.training_run(config.EXPERIMENT_NAME, "train_category", {}) as run:
        with tracking.candidate_run("first_candidate") as candidate:
            pass
    assert run.info.run_id == launcher and candidate.info.run_id != launcher
    assert client.get_run(candidate.info.run_id).data.tags["mlflow.parentRunId"] == launcher
    assert client.get_run(launcher).info.run_name != "first_candidate"


def summary_rows():
    def row(model_type, metric, value, baseline, baseline_value, alias="champion", warnings=()):
        return {"model_type": model_type, "model": MODEL_NAMES[model_type], "version": "3", "alias": alias,
                "metric": metric, "value": value, "baseline": baseline, "baseline_value": baseline_value,
                "decided_by": "passed: every rule", "passed": alias == "champion", "run_id": f"run-{model_type}",
                "warnings": list(warnings)}

    return [row("category", "macro_f1", 0.95, "merchant_lookup", 0.96, warnings=["category: 8 test rows"]),
            row("amount", "mae", 230.0, "category_median", 470.0, alias="challenger")]


def test_the_main_run_carries_its_summary():
    rows = summary_rows()
    skipped = {"cashflow": "cash flow needs at least 116 days of history; the ledger spans 90 days"}
    failures = {"anomaly": "the evaluation ledger could not be scored"}
    text = jobs.summary_text(rows, skipped, failures)
    mlflow.set_experiment(config.EXPERIMENT_NAME)
    with mlflow.start_run() as run:
        jobs.log_summary(rows, skipped, failures, text)
    logged = MlflowClient().get_run(run.info.run_id)
    assert logged.data.metrics == {"category_macro_f1": 0.95, "category_baseline_macro_f1": 0.96,
                                   "amount_mae": 230.0, "amount_baseline_mae": 470.0}
    tags = logged.data.tags
    assert (tags["category.version"], tags["category.alias"], tags["amount.alias"]) == ("3", "champion", "challenger")
    assert tags["category.decided_by"] == "passed: every rule" and tags["category.baseline"] == "merchant_lookup"
    assert tags["category.training_run_id"] == "run-category"
    assert tags["category.small_split_warning"] == "category: 8 test rows" and "amount.small_split_warning" not in tags
    assert tags["cashflow.skipped"].startswith("cash flow needs") and tags["anomaly.error"] == failures["anomaly"]
    assert "| titans-finance-category-prediction | 3 | champion | macro_f1 | 0.9500 |" in tags["mlflow.note.content"]
    summary = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/summary.txt")
    assert summary.strip() == text.strip()
    assert "serve: mlflow models serve -m models:/titans-finance-category-prediction@champion" in summary
    assert "skipped (not enough data): titans-finance-cashflow-forecasting" in summary
    assert "warning: category: 8 test rows" in summary


def test_a_baseline_chosen_by_training_is_not_promoted_for_beating_itself_by_rounding():
    """The gate's 'beats the baseline' rule, when training chose that baseline: its figures are the baseline's but
    for rounding (11.4221 against 11.42227), which must not decide whether it is promoted."""
    candidate = {"mae": 11.4221, "baseline_category_median_mae": 11.42227, "r2": 0.5}
    as_chosen = registry.gate("amount", candidate, {}, None, chosen="category_median")
    assert ("failed: the chosen model is the category_median baseline itself (no trained candidate beat it on "
            "validation), so it cannot beat it") in as_chosen
    assert "ok: mae 11.42 beats the category_median baseline (11.42)" in registry.gate("amount", candidate, {}, None,
                                                                                       chosen="ridge")


@pytest.mark.slow  # trains the cash-flow model through the main entry point (seconds)
def test_a_ledger_of_dated_amounts_alone_trains_cash_flow_and_skips_the_others(tmp_path):
    """A bank export with no description column (Posted Date, Transaction Amount): cash flow needs none, so it is
    trained and registered; the three models that read descriptions are skipped, saying so, and the run succeeds."""
    ledger = generate_ledger(rows=1500, seed=3, days=200)[["Date", "Amount"]]
    ledger.rename(columns={"Date": "Posted Date", "Amount": "Transaction Amount"}).to_csv(tmp_path / "bank.csv",
                                                                                           index=False)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    result = python_module("entrypoints.main", "--data", str(tmp_path / "bank.csv"), uri=uri)
    for model_type in ("category", "amount", "anomaly"):
        assert (f"skipped (not enough data): {MODEL_NAMES[model_type]}: needs column(s) 'description'; the ledger "
                f"has Posted Date, Transaction Amount") in result.stdout
    champion = MlflowClient(uri).get_model_version_by_alias(MODEL_NAMES["cashflow"], config.CHAMPION)
    assert MlflowClient(uri).get_run(champion.run_id).info.status == "FINISHED"
    assert [m.name for m in MlflowClient(uri).search_registered_models()] == [MODEL_NAMES["cashflow"]]


@pytest.mark.parametrize("model_type", list(MODEL_NAMES))
def test_every_registered_model_says_what_it_answers_and_how_it_is_gated(model_type):
    name = MODEL_NAMES[model_type]
    MlflowClient().create_registered_model(name)
    registry.describe_registered_model(model_type)
    description = MlflowClient().get_registered_model(name).description
    task = task_class(model_type)
    rules = task.gate
    assert task.purpose.question in description and rules.key_metric in description
    for baseline in rules.baselines:
        assert f"the {baseline} baseline" in description
    for metric, (default, greater) in rules.floors.items():
        assert metric in description
        if default is not None:
            assert f"{metric} {'>=' if greater else '<='} {default:g}" in description
    assert "`champion`" in description and "`challenger`" in description


# --- item 6: a ledger too small for its metrics says so -----------------------------------------------------------

def test_the_rule_asks_30_rows_and_5_per_class_and_says_how_many_rows_would_give_them():
    assert training.rows_needed() == 30 and training.rows_needed(classes=18) == 90
    assert training.small_split_warning("amount", 30, 150) is None
    warning = training.small_split_warning("category", 8, 40, "categorised expense rows", classes=10, compared_on=6)
    assert "8 test rows" in warning and "6 validation rows" in warning and "50 needed" in warning
    assert "About 250 categorised expense rows would give 50 test rows; this ledger has 40." in warning


def test_a_40_row_ledger_trains_with_a_warning_on_the_terminal_and_the_run(tmp_path, capsys):
    ledger = write_head(tmp_path / "ledger.csv", 40)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trained = jobs.train_model(CategoryTask(only=["text_logistic_regression"]), str(ledger))
    printed = capsys.readouterr().out
    # scikit-learn's own guess about so few rows per class is not repeated: the warning below says it in numbers.
    assert not [w for w in caught if "unique classes" in str(w.message)]
    assert len(trained.warnings) == 1
    warning = trained.warnings[0]
    assert f"warning: {warning}" in printed
    numbers = re.search(r"measured on (\d+) test rows.*\((\d+) needed.*About (\d+) ", warning).groups()
    scored, needed, enough = map(int, numbers)
    assert scored < needed and enough > 40
    tags = MlflowClient().get_run(trained.run_id).data.tags
    assert tags[jobs.SMALL_SPLIT_TAG] == warning


@pytest.mark.slow  # trains the anomaly and cash-flow tasks (seconds)
def test_anomaly_and_cash_flow_warn_on_their_test_windows():
    ledger = prepare_ledger(generate_ledger(rows=300, seed=5, days=130))[0]
    anomaly = AnomalyTask()
    outcome = anomaly.train(ledger.head(120), log=lambda line: None)
    found = outcome.warnings
    assert any(w.startswith("anomaly: its metrics are measured on") and "transactions would give 30" in w
               for w in found)

    cashflow = CashflowTask()
    outcome = cashflow.train(ledger, log=lambda line: None)
    assert outcome.params["backtest_folds"] == 1
    found = outcome.warnings
    assert found == ["cashflow: its candidates were compared on one backtest fold of 30 days and its interval's "
                     "coverage is measured in sample; at least 160 days of history would give two folds; this "
                     "ledger spans 130."]
    assert CashflowTask(horizon=7).train(ledger, log=lambda line: None).warnings[0].startswith(
        "cashflow: its metrics are measured on a test window of 7 days")


# --- item 7: an income row sent to the category model -------------------------------------------------------------

REQUEST = pd.DataFrame([
    {"date": "2025-03-11", "type": "Expense", "description": "SHELL OIL 57444 SAN JOSE CA", "amount": -52.30},
    {"date": "2025-03-11", "type": "Income", "description": "CLIENT PAYMENT INVOICE 1042", "amount": 1250.00},
    {"date": "2025-03-12", "type": "credit", "description": "REFUND AMAZON", "amount": 19.99},
    {"date": "2025-03-12", "type": "", "description": "INTEREST", "amount": 3.10},  # no type: the sign says income
    {"date": "2025-03-12", "type": "", "description": "STAPLES 88812", "amount": -38.10},
])
INCOME = [False, True, True, True, False]


@pytest.fixture(scope="module")
def category_predictor():
    ledger = prepare_ledger(generate_ledger(rows=600, seed=2))[0]
    return CategoryPredictor(MerchantLookup().fit(CategoryTask().training_rows(ledger)))


def test_an_income_row_gets_a_null_category_null_confidence_and_no_alternatives(category_predictor):
    answer = category_predictor.serve(REQUEST, {"top_k": 2})
    assert answer["category"].isna().tolist() == INCOME and answer["confidence"].isna().tolist() == INCOME
    assert [len(a) for a in answer["alternatives"]] == [0 if income else 2 for income in INCOME]
    assert [c is None for c in answer["category"]] == INCOME  # None, not NaN: JSON null
    only_income = category_predictor.serve(REQUEST[np.array(INCOME)])
    assert only_income["category"].isna().all() and len(only_income) == 3


def test_the_logged_category_model_declares_a_null_category_and_warns_nothing(category_predictor, tmp_path):
    """The output schema is inferred from an example with an income row, so category and confidence are optional;
    logging, loading and predicting raise no warning of MLflow's about type hints."""
    example = pd.DataFrame(REQUEST).reindex(columns=CategoryPredictor.input_columns).fillna("")
    mlflow.set_experiment(config.EXPERIMENT_NAME)
    with warnings.catch_warnings(record=True) as caught, mlflow.start_run():
        warnings.simplefilter("always")
        info = tracking.log_predictor(category_predictor, example, {"top_k": 3}, "category")
        model = mlflow.pyfunc.load_model(info.model_uri)
        answer = model.predict(REQUEST)
    assert not [w for w in caught if "type hint" in str(w.message).lower()], [str(w.message) for w in caught]
    outputs = {spec.name: spec for spec in info.signature.outputs.inputs}
    assert not outputs["category"].required and not outputs["confidence"].required
    assert answer["category"].isna().tolist() == INCOME
    from mlflow.pyfunc.scoring_server import predictions_to_json

    with open(tmp_path / "answer.json", "w") as out:
        predictions_to_json(answer, out)
    strict = json.loads((tmp_path / "answer.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert strict["predictions"][1] == {"category": None, "confidence": None, "alternatives": [], "answered_from": None}


# --- item 9: no warnings of ours ---------------------------------------------------------------------------------

def test_amount_bands_are_kbins_quantile_bands_without_the_warning():
    """The category features' amount bands: KBinsDiscretizer's quantile edges, band for band, and on a small
    ledger of whole-number amounts (where neighbouring quantiles coincide) no warning."""
    rows = load_ledger_rows()
    whole = rows.assign(amount=rows["amount"].round(-1))
    for frame in (rows, whole.head(30), whole.head(8)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kbins = make_pipeline(LogAmount(), KBinsDiscretizer(n_bins=12, strategy="quantile",
                                                                quantile_method="averaged_inverted_cdf")).fit(frame)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            bands = AmountBand(bands=12).fit(frame)
            ours = bands.transform(rows)
        assert ours.shape == kbins.transform(rows).shape and abs(ours - kbins.transform(rows)).sum() == 0
        assert ours.shape[1] == len(bands.get_feature_names_out())


def load_ledger_rows():
    return prepare_ledger(generate_ledger(rows=400, seed=9))[0]


# --- end to end: `mlflow run` as the README's quick start says, and a served income row ------------------------

@starts_early("run_in_our_experiment")
def quick_start_in_our_experiment(tmp_path_factory) -> dict:
    """`mlflow run . --experiment-name titans-finance-ml-models -P data=<ledger>` from the repository, on a ledger
    too short for cash flow, in a store of its own; it starts with the session (tests/early_runs.py)."""
    folder = tmp_path_factory.mktemp("quick-start")
    ledger = folder / "ledger.csv"
    generate_ledger(rows=300, seed=4, days=100).to_csv(ledger, index=False)
    # Our experiment first, its artifacts in this folder (`mlflow run` works in the repository, where ./mlruns
    # would land).
    store = [MLFLOW_CLI, "experiments", "create", "-n", config.EXPERIMENT_NAME, "-l", folder / "artifacts"]
    training = [MLFLOW_CLI, "run", ".", "--env-manager", "local", "--experiment-name", config.EXPERIMENT_NAME,
                "-P", f"data={ledger}"]
    return {"run": EarlyRun(store, training, cwd=REPO, env=tracking_env(f"sqlite:///{folder}/mlflow.db"),
                            output_dir=folder)}


@pytest.fixture(scope="module")
def run_in_our_experiment(early_runs):
    return early_runs[quick_start_in_our_experiment]["run"]


@pytest.mark.slow
def test_mlflow_run_with_our_experiment_is_one_run_with_the_summary_and_no_warnings(run_in_our_experiment,
                                                                                     monkeypatch):
    folder = run_in_our_experiment.output_dir
    ledger, uri = folder / "ledger.csv", run_in_our_experiment.env["MLFLOW_TRACKING_URI"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # for mlflow.artifacts below
    client = MlflowClient(uri)
    result = run_in_our_experiment.result()
    output = result.stdout + result.stderr
    assert not WARNING_LINE.search(output), [line for line in output.splitlines() if WARNING_LINE.search(line)]

    experiment = client.get_experiment_by_name(config.EXPERIMENT_NAME)
    (main,) = client.search_runs([experiment.experiment_id], "tags.mlflow.project.entryPoint = 'main'")
    assert client.search_runs(["0"]) == []  # nothing in Default
    assert main.data.params["data"] == str(ledger)
    assert {"sample_rows", "seed", "floors", "date_order"} <= set(main.data.params)
    tags, metrics = main.data.tags, main.data.metrics
    for model_type in ("category", "amount", "anomaly"):
        key = task_class(model_type).gate.key_metric
        assert {f"{model_type}_{key}", f"{model_type}_baseline_{key}"} <= set(metrics)
        assert tags[f"{model_type}.version"] == "1" and tags[f"{model_type}.alias"] in ("champion", "challenger")
        assert tags[f"{model_type}.decided_by"]
        description = client.get_registered_model(MODEL_NAMES[model_type]).description
        assert task_class(model_type).purpose.question in description and key in description
    assert "days" in tags["cashflow.skipped"]
    assert "category.small_split_warning" in tags and "warning: category:" in result.stdout
    summary = mlflow.artifacts.load_text(f"runs:/{main.info.run_id}/summary.txt")
    assert MODEL_NAMES["category"] in summary and "skipped (not enough data)" in summary

    # An income row, served: null category over REST; the server's log has no warning either.
    with served_model(f"models:/{MODEL_NAMES['category']}/1", cwd=folder, env=tracking_env(uri)) as server:
        response = invoke(server.url, {"dataframe_records": REQUEST.to_dict(orient="records")})
        assert response.status_code == 200, response.text
        answers = json.loads(response.text, parse_constant=lambda c: pytest.fail(f"{c} in the JSON answer"))
        answers = answers["predictions"]
        assert [a["category"] is None for a in answers] == INCOME
        assert answers[1] == {"category": None, "confidence": None, "alternatives": [], "answered_from": None}
        assert all(isinstance(a["category"], str) and 0 < a["confidence"] <= 1 and len(a["alternatives"]) == 3
                   for a, income in zip(answers, INCOME) if not income)
    log = "\n".join(path.read_text() for path in folder.glob("serve-*.log"))
    assert not WARNING_LINE.search(log), [line for line in log.splitlines() if WARNING_LINE.search(line)]


@pytest.mark.slow
def test_mlflow_run_without_an_experiment_leaves_a_pointer_in_default(champions):
    """The session's `mlflow run . -P data=...` (no --experiment-name): the Default experiment's run names where
    the results are, and the main run there carries the summary."""
    client = MlflowClient(champions["uri"])
    (launcher,) = client.search_runs(["0"])
    experiment = client.get_experiment_by_name(config.EXPERIMENT_NAME)
    main = client.get_run(launcher.data.tags[tracking.RESULTS_RUN_TAG])
    assert main.info.experiment_id == experiment.experiment_id and main.info.run_name == "main"
    assert launcher.info.run_name == f"main: results in {config.EXPERIMENT_NAME}"
    assert main.info.run_id in launcher.data.tags["mlflow.note.content"]
    for model_type in MODEL_NAMES:
        assert main.data.tags[f"{model_type}.alias"] == "champion"
        assert f"{model_type}_{task_class(model_type).gate.key_metric}" in main.data.metrics
