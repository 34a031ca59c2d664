"""Monitoring and retraining (issue 15) on champions trained once for the module: a 10-year generated ledger (its
business grows 0.8x to 1.25x over the whole span, about 4% a year: steady), the first year trained on, the
months after it monitored. False alarms over 20 months, four injected shifts, labels withheld, the estimated
accuracy, the `monitor` job with its runs and tags, retraining through the gate, a bad ledger."""

import json
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pyfunc_models import config, jobs, registry
from pyfunc_models.amount import AmountTask
from pyfunc_models.anomaly import AnomalyTask
from pyfunc_models.cashflow import CashflowTask
from pyfunc_models.category import CategoryTask
from pyfunc_models.features import merchant_keys
from pyfunc_models.generator import generate_ledger
from pyfunc_models.ledger import LedgerError, load_ledger, prepare_ledger
from pyfunc_models.model_types import MODEL_NAMES, task_class
from pyfunc_models.monitoring import job
from pyfunc_models.monitoring.profile import OK, RETRAIN, check_period

pytestmark = pytest.mark.slow  # trains four models

REFERENCE_DAYS, PERIOD_DAYS, PERIODS = 365, 30, 20


class RidgeAndBaselines(AmountTask):
    def candidates(self, seed):
        return [c for c in super().candidates(seed) if c.name == "ridge" or c.baseline]


def cheap_tasks():
    """One candidate where a type has several: monitoring, not the choice of model, is under test."""
    return {"category": CategoryTask(only=["text_logistic_regression"], word_knowledge=0),
            "amount": RidgeAndBaselines(),
            "anomaly": AnomalyTask(), "cashflow": CashflowTask(folds=1)}


# --- injected shifts, on a period as the export writes it ----------------------------------------------------
def _expense(raw):
    return (raw["Amount"].astype(float) < 0).to_numpy()


def scaled_amounts(raw, factor=1.6, share=1 / 3, seed=0):
    """A third of the merchants charge 1.6 times as much."""
    raw = raw.copy().reset_index(drop=True)
    keys = merchant_keys(raw["Description"])
    merchants = np.unique(keys[_expense(raw)])
    chosen = np.random.default_rng(seed).choice(merchants, size=int(round(share * len(merchants))), replace=False)
    hit = np.isin(keys, chosen) & _expense(raw)
    raw.loc[hit, "Amount"] = (raw.loc[hit, "Amount"].astype(float) * factor).map("{:.2f}".format)
    return raw


def new_merchants(raw, share=0.4, seed=0):
    """40% of the period's rows from merchants never seen: three made-up merchants per category, each row's from
    its own category (a new supplier of office supplies is booked as office supplies)."""
    raw = raw.copy().reset_index(drop=True)
    rng = np.random.default_rng(seed)
    rows = rng.choice(np.flatnonzero(_expense(raw)), size=int(round(share * len(raw))), replace=False)
    syllables = np.array(["ka", "lo", "mi", "zu", "re", "ta", "no", "vi", "se", "du", "po", "fe"])
    names = {category: ["".join(rng.choice(syllables, 3)).upper() + " " + "".join(rng.choice(syllables, 2)).upper()
                        for _ in range(3)] for category in sorted(set(raw["Category"]))}
    raw.loc[rows, "Description"] = [f"{names[category][rng.integers(3)]} #{rng.integers(100, 999)} OAKLAND CA"
                                    for category in raw.loc[rows, "Category"]]
    return raw


def category_mix(raw, keep=0.15, seed=0):
    """Every other category keeps only 15% of its rows."""
    categories = sorted(set(raw["Category"]) - {""})
    cut = raw["Category"].isin(categories[::2]).to_numpy()
    return raw[~(cut & (np.random.default_rng(seed).random(len(raw)) > keep))].reset_index(drop=True)


def recurring_bill(raw, amount):
    """A new bill debited every weekday."""
    dates = pd.to_datetime(raw["Date"])
    days = pd.date_range(dates.min(), dates.max(), freq="D")
    days = days[days.dayofweek < 5]
    bill = pd.DataFrame({"Date": days.strftime("%Y-%m-%d"), "Type": "Expense",
                         "Description": "ACH DEBIT NORTHWIND EQUIPMENT LEASE", "Amount": f"{-amount:.2f}",
                         "Category": "equipment", "Payment Method": "bank_transfer", "Status": "completed",
                         "Reference": "LEASE", "Receipt URL": "", "Anomaly Label": ""})
    return pd.concat([raw, bill], ignore_index=True).sort_values("Date", kind="stable").reset_index(drop=True)


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    """The four champions trained on the first year and registered, each loaded with its profile."""
    folder = tmp_path_factory.mktemp("monitoring")
    uri = f"sqlite:///{folder}/mlflow.db"
    raw = generate_ledger(rows=50_000, seed=11, days=3650, anomaly_rate=0.03)
    raw = raw.astype(str).replace("nan", "")
    dates = pd.to_datetime(raw["Date"])
    start = dates.min() + pd.Timedelta(days=REFERENCE_DAYS)
    reference_path = folder / "reference.csv"
    raw[dates < start].to_csv(reference_path, index=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        for model_type, task in cheap_tasks().items():
            trained = jobs.train_model(task, str(reference_path))
            _, alias, decision = registry.register(model_type, trained.run_id)
            assert alias == config.CHAMPION, f"{model_type}: {decision.decided_by}"
        client = MlflowClient(uri)
        champions = {}
        for model_type, name in MODEL_NAMES.items():
            version = client.get_model_version_by_alias(name, config.CHAMPION)
            model = mlflow.pyfunc.load_model(f"models:/{name}/{version.version}")
            task = task_class(model_type)()
            champions[model_type] = (task, model, job.champion_profile(version, task, model), version)
        mlflow.set_tracking_uri(None)

    def period(k):
        first = start + pd.Timedelta(days=PERIOD_DAYS * k)
        chosen = (dates >= first) & (dates < first + pd.Timedelta(days=PERIOD_DAYS))
        return raw[chosen].reset_index(drop=True)

    before, _ = prepare_ledger(raw[dates < start])
    return SimpleNamespace(uri=uri, folder=folder, raw=raw, dates=dates, start=start, reference=reference_path,
                           champions=champions, period=period, before=before)


@pytest.fixture
def store(watched, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", watched.uri)
    return watched


def check(watched, model_type, raw_period, history=None):
    task, model, profile, _ = watched.champions[model_type]
    period, _ = prepare_ledger(raw_period)
    if history is None:
        history = watched.before
    return check_period(task, model.predict, profile, period, history)


def test_every_training_run_logs_a_reference_profile_without_raw_rows(store):
    # Merchant keys ('shell oil') are the profile's vocabulary; a description that is nothing but one is no leak.
    descriptions = store.raw["Description"].to_numpy()
    raw_text = {d for d, key in zip(descriptions, merchant_keys(descriptions)) if d != key}
    raw_text |= set(store.raw["Reference"]) - {""}
    for model_type, (_, _, profile, version) in store.champions.items():
        assert profile["source"] == "training run" and profile["model_type"] == model_type
        assert {"inputs", "rates", "outputs", "metrics"} <= set(profile)
        assert profile["metrics"], f"{model_type}: no held-out metric"
        text = json.dumps(profile)
        leaked = [value for value in raw_text if f'"{value}"' in text]
        assert not leaked, f"{model_type}: raw text in the profile: {leaked[:3]}"
    assert "calibration" in store.champions["category"][2]
    assert "history" in store.champions["cashflow"][2]


def test_months_drawn_like_the_reference_are_ok_on_at_least_19_of_20(store):
    decisions = {model_type: [] for model_type in store.champions}
    for k in range(PERIODS):
        raw_period = store.period(k)
        history, _ = prepare_ledger(store.raw[store.dates < store.start + pd.Timedelta(days=PERIOD_DAYS * k)])
        for model_type in store.champions:
            report = check(store, model_type, raw_period, history)
            decisions[model_type].append((report.status, report.reasons))
    for model_type, made in decisions.items():
        alarms = [(k, reasons) for k, (status, reasons) in enumerate(made) if status != OK]
        assert len(alarms) <= 1, f"{model_type}: {len(alarms)} of {PERIODS} months not OK: {alarms}"


@pytest.mark.parametrize("shift, model_type, named", [
    ("scaled_amounts", "amount", "amount_bias"),
    ("new_merchants", "category", "new merchants"),
    ("new_merchants", "anomaly", "new merchants"),
    ("category_mix", "category", "predicted_category"),
    ("recurring_bill", "cashflow", "mase"),
])
def test_an_injected_shift_is_retrain_with_its_reason(store, shift, model_type, named):
    period = store.period(0)
    if shift == "recurring_bill":  # three times the champion's held-out daily error, every weekday
        shifted = recurring_bill(period, 3 * store.champions["cashflow"][2]["metrics"]["mae"]["value"])
    else:
        shifted = globals()[shift](period)
    assert check(store, model_type, period).status == OK
    report = check(store, model_type, shifted)
    assert report.status == RETRAIN, report.reasons
    assert any(reason.startswith(named) and RETRAIN in [c.status for c in report.checks if c.reason == reason]
               for reason in report.reasons), report.reasons


@pytest.mark.parametrize("shift", ["none", "new_merchants", "category_mix"])
def test_with_the_labels_withheld_the_drift_decisions_are_the_same(store, shift):
    period = store.period(1) if shift == "none" else globals()[shift](store.period(1))
    # Each model's own labels: the bookkeepers' categories, the anomaly labels (the category is the anomaly
    # model's input, there before any label).
    withheld_for = {"category": period.assign(Category=""),
                    "anomaly": period.drop(columns=[config.ANOMALY_LABEL_HEADER])}
    for model_type, unlabelled in withheld_for.items():
        labelled_report, withheld = check(store, model_type, period), check(store, model_type, unlabelled)
        assert withheld.drift_status() == labelled_report.drift_status(), model_type
        assert not any(c.kind == "performance" for c in withheld.checks)


@pytest.mark.parametrize("model_type", ["amount", "anomaly"])
def test_a_period_whose_categories_are_not_assigned_yet_is_no_input_alarm(store, model_type):
    """Bookkeepers categorise later: a period without categories yet is no change in the data (found on a bank-style
    export: its newest month had none, and the amount and anomaly models said RETRAIN for 'missing category').
    What the models do without them is still judged: the amount model, which leans on the category, is worse."""
    period = store.period(2)
    labelled = check(store, model_type, period)
    for unassigned in (period.assign(Category=""), period.drop(columns=["Category"])):
        report = check(store, model_type, unassigned)
        assert not any("missing category" in reason for reason in report.reasons), report.reasons
        if model_type == "anomaly":
            assert report.drift_status() == labelled.drift_status(), report.reasons


def test_the_estimated_accuracy_is_within_005_of_the_true_one_on_unseen_months(store):
    for k in (2, 7, 15):
        report = check(store, "category", store.period(k))
        true = next(c for c in report.checks if c.kind == "performance" and c.name == "accuracy")
        estimated = next(c for c in report.checks if c.kind == "estimate")
        assert abs(estimated.figures["value"] - true.figures["value"]) <= 0.05, (k, estimated.reason, true.reason)


def test_a_bad_ledger_gets_the_same_error_as_training(store, tmp_path, capsys):
    from entrypoints import monitor as entry_point

    bad = store.period(0)
    bad.loc[3, "Amount"] = "12,50"
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(LedgerError) as training:
        load_ledger(path)
    with pytest.raises(LedgerError) as monitoring:
        job.monitor(str(path))
    assert str(monitoring.value) == str(training.value) and "row 3" in str(training.value)
    with pytest.raises(SystemExit) as exit_code:
        entry_point.main(["--data", str(path)])
    assert exit_code.value.code == 2 and f"error: {training.value}" in capsys.readouterr().err


def test_a_champion_without_a_profile_gets_one_from_its_evaluation_data(store, monkeypatch):
    monkeypatch.setattr(job, "log_reference_profile", lambda *args: None)
    trained = jobs.train_model(AnomalyTask(), str(store.reference))
    model = mlflow.pyfunc.load_model(trained.model_uri)
    version = SimpleNamespace(run_id=trained.run_id)
    with pytest.raises(Exception):
        mlflow.artifacts.download_artifacts(run_id=trained.run_id, artifact_path=job.PROFILE_ARTIFACT)
    profile = job.champion_profile(version, AnomalyTask(), model)
    assert profile["source"].startswith("made on first monitoring")
    assert json.loads(open(mlflow.artifacts.download_artifacts(
        run_id=trained.run_id, artifact_path=job.PROFILE_ARTIFACT)).read())["source"] == profile["source"]
    report = check_period(AnomalyTask(), model.predict, profile, prepare_ledger(store.period(0))[0], store.before)
    assert report.status in (OK, "WARN", RETRAIN) and report.checks


def test_monitor_logs_runs_tags_the_version_and_retrains_through_the_gate(store, tmp_path, capsys):
    """Last in the module: it makes a new category champion."""
    shifted = new_merchants(store.period(0))
    path = tmp_path / "november.csv"
    shifted.to_csv(path, index=False)
    client = MlflowClient(store.uri)
    old = client.get_model_version_by_alias(MODEL_NAMES["category"], config.CHAMPION)
    done = job.monitor(str(path), ["category", "cashflow"], retrain_when="auto", reference=str(store.reference),
                       tasks={"category": CategoryTask(only=["text_logistic_regression", "merchant_lookup",
                                                             "majority"])})
    printed = capsys.readouterr().out
    assert f"{MODEL_NAMES['category']} v{old.version}: RETRAIN: " in printed and "new merchants" in printed
    assert f"{MODEL_NAMES['cashflow']} v1: OK" in printed
    category = next(m for m in done if m.model_type == "category")
    run = client.get_run(category.run_id)
    assert run.data.tags["model_version"] == str(old.version) and run.data.tags["monitoring_status"] == RETRAIN
    assert run.data.metrics["status_level"] == 2 and "rate/new_merchants" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(category.run_id, "monitoring")}
    assert {job.REPORT_ARTIFACT, job.FIGURE_ARTIFACT} <= artifacts
    tags = client.get_model_version(MODEL_NAMES["category"], old.version).tags
    assert tags["monitoring_status"] == RETRAIN and "new merchants" in tags["monitoring_reasons"]
    assert tags["last_monitored"] and tags["monitoring_run_id"] == category.run_id
    history = client.search_runs([run.info.experiment_id], f"tags.{job.HISTORY_TAG} = 'category'")
    assert len(history) == 1 and client.get_metric_history(history[0].info.run_id, "status_level")

    # Retrained on the reference plus the period and put through the gate, which says whether the champion changed
    # and by how much; on the shifted period the new version beats the old champion. (With one learned candidate
    # here, the gate may keep it challenger for the merchant-lookup rule: that is the gate's call, stated.)
    assert f"vs champion v{old.version}" in category.retrained and "held-out rows" in category.retrained
    assert "is the new champion" in category.retrained or "stays challenger" in category.retrained
    versions = client.search_model_versions(f"name = '{MODEL_NAMES['category']}'")
    new = max(versions, key=lambda v: int(v.version))
    assert new.version != old.version and new.tags["validation_status"] in ("passed", "rejected")
    period, _ = prepare_ledger(shifted)
    scores = {v: registry.score("category", f"models:/{MODEL_NAMES['category']}/{v}", period)["accuracy"]
              for v in (old.version, new.version)}
    assert scores[new.version] > scores[old.version] + 0.1, scores
