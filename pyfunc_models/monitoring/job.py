"""The MLflow edge of monitoring: the reference profile a training run logs, one monitoring run per champion on
a new period, the champion version's tags, and retraining through the registry's gate.

    monitor("november.csv")                                   # every champion: OK, WARN or RETRAIN, with why
    monitor("november.csv", ["category"], retrain="auto")     # and retrain it if the decision is RETRAIN
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pyfunc_models import config, tracking
from pyfunc_models.ledger import LedgerError, load_ledger
from pyfunc_models.model_types import MODEL_NAMES, MODEL_TYPES, task_class
from pyfunc_models.monitoring.profile import (RETRAIN, PeriodReport, build_profile, check_period, history_rows,
                                              report_metrics)
from pyfunc_models.task import ModelTask

PROFILE_ARTIFACT = "monitoring/profile.json"
REPORT_ARTIFACT = "monitoring/report.json"
FIGURE_ARTIFACT = "monitoring/report.png"
RETRAIN_CHOICES = ("false", "true", "auto")
HISTORY_TAG = "monitoring_history"  # the run per model type whose metrics are the monitoring time series
WATCHED_TAGS = ("monitored_model_type", "registered_model", "model_version", "champion_run_id")


class MonitoringError(ValueError):
    """Monitoring cannot go on (no champion, no reference ledger to retrain on), with what to do about it."""


def log_reference_profile(task: ModelTask, outcome, ledger: pd.DataFrame) -> None:
    """In the active training run: the model's reference profile (profile.build_profile) as PROFILE_ARTIFACT,
    from the training ledger's rows before the held-out ones and the predictor's answers on those. A ledger too
    small to profile is a warning on the run, not a failed training."""
    heldout, history = task.held_out(outcome)
    reference = ledger[ledger["date"] < heldout["date"].min()]
    try:
        profile = build_profile(task, outcome.predictor.serve, reference, heldout, history, "training run")
    except (LedgerError, ValueError) as error:
        print(f"warning: no monitoring profile: {error}")
        mlflow.set_tag("monitoring_profile_warning", str(error)[:5000])
        return
    mlflow.log_dict(profile, PROFILE_ARTIFACT)


def champion_profile(version, task: ModelTask, model) -> dict:
    """The profile logged by the champion's training run; for a champion trained before profiles existed, one
    made now from its run's evaluation data (evaluation/test_ledger.csv: the held-out rows are then the reference
    too) and logged to that run, so it is made once."""
    try:
        path = mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path=PROFILE_ARTIFACT)
        return json.loads(Path(path).read_text())
    except (MlflowException, OSError):
        pass
    from pyfunc_models import registry

    evaluation = registry.evaluation_ledger(version.run_id, None)
    run = MlflowClient().get_run(version.run_id)
    reference, heldout, history = task.held_out_of_evaluation(evaluation, run.data.params)
    profile = build_profile(task, model.predict, reference, heldout, history,
                            f"made on first monitoring from {registry.EVALUATION_ARTIFACT}")
    MlflowClient().log_dict(version.run_id, profile, PROFILE_ARTIFACT)
    return profile


@dataclass
class Monitored:
    """What monitoring one champion did: its decision, the run that records it and any retraining."""

    model_type: str
    version: str
    report: PeriodReport
    run_id: str
    retrained: str = ""  # what retraining did, in a line

    def line(self) -> str:
        reasons = "; ".join(self.report.reasons) or "every check within its level"
        return f"{MODEL_NAMES[self.model_type]} v{self.version}: {self.report.status}: {reasons}"


def split_period(ledger: pd.DataFrame, since: str | None) -> tuple:
    """(period, rows before it): the whole ledger is the period unless `since` (a date) says where it starts."""
    if not since:
        return ledger, ledger.iloc[:0]
    start = pd.Timestamp(since)
    period = ledger[ledger["date"] >= start].reset_index(drop=True)
    if period.empty:
        raise LedgerError(f"no transaction on or after since={since}; the ledger ends {ledger['date'].max().date()}")
    return period, ledger[ledger["date"] < start].reset_index(drop=True)


def _history_run(client: MlflowClient, experiment_id: str, model_type: str) -> str:
    runs = client.search_runs([experiment_id], f"tags.{HISTORY_TAG} = '{model_type}'", max_results=1)
    if runs:
        return runs[0].info.run_id
    run = client.create_run(experiment_id, run_name=f"history: {MODEL_NAMES[model_type]}",
                            tags={HISTORY_TAG: model_type, tracking.NOTE_TAG: (
                                f"Every monitoring of {MODEL_NAMES[model_type]}'s champions, one point per period "
                                f"(step: the period's last day, in days since 1970-01-01); the runs themselves are "
                                f"the `monitor_{model_type}` runs.")})
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def _log_time_series(experiment_id: str, model_type: str, metrics: dict, period_end: pd.Timestamp) -> None:
    """The period's metrics appended to the model type's history run: successive monitorings as one chart each."""
    client = MlflowClient()
    run_id = _history_run(client, experiment_id, model_type)
    step = int((period_end - pd.Timestamp("1970-01-01")).days)
    stamp = int(period_end.timestamp() * 1000)
    client.log_batch(run_id, metrics=[Metric(key, value, stamp, step) for key, value in metrics.items()])


def watch_champion(model_type: str, period: pd.DataFrame, before: pd.DataFrame, data: str) -> Monitored | None:
    """Monitor one champion on a period, inside the active (parent) monitoring run: its own nested run with the
    figures as metrics, report.json and report.png, and the version's tags. None when there is no champion."""
    from pyfunc_models import registry

    client, name = MlflowClient(), MODEL_NAMES[model_type]
    try:
        version = client.get_model_version_by_alias(name, config.CHAMPION)
    except MlflowException:
        print(f"{name}: no champion to monitor (register one first: "
              f"mlflow run . -e register -P model_type={model_type})")
        return None
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version.version}")
    task = task_class(model_type)()
    profile = champion_profile(version, task, model)
    history = before if len(before) else history_rows(profile)
    report = check_period(task, model.predict, profile, period, history)
    metrics = report_metrics(report)
    title = (f"{name} v{version.version}, {report.period['first_day']} to {report.period['last_day']} "
             f"({report.period['rows']} rows)")
    tags = dict(zip(WATCHED_TAGS, (model_type, name, str(version.version), version.run_id)))
    with mlflow.start_run(run_name=f"monitor_{model_type}", nested=True,
                          tags={**tags, "monitoring_status": report.status}) as run:
        mlflow.log_params({"data": data, "period_first_day": report.period["first_day"],
                           "period_last_day": report.period["last_day"], "profile_source": profile["source"]})
        try:  # linked to the champion's logged model too: its page lists the monitoring metrics
            mlflow.log_metrics(metrics, model_id=registry.logged_model_id(version))
        except MlflowException:
            mlflow.log_metrics(metrics)
        mlflow.log_dict(report.as_dict(), REPORT_ARTIFACT)
        from pyfunc_models.monitoring.figure import report_figure  # matplotlib only where a report is drawn

        mlflow.log_figure(report_figure(report, title), FIGURE_ARTIFACT)
        mlflow.set_tag(tracking.NOTE_TAG, f"**{report.status}**: champion {name} version {version.version} "
                       f"(training run `{version.run_id}`) on {title}.\n\n"
                       + "\n".join(f"- {reason}" for reason in report.reasons))
        experiment_id = run.info.experiment_id
    registry.tag_version(model_type, version.version, {
        "monitoring_status": report.status,
        "last_monitored": f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%dT%H:%M:%SZ} on "
                          f"{report.period['first_day']} to {report.period['last_day']}",
        "monitoring_reasons": " | ".join(report.reasons)[:5000] or "none",
        "monitoring_run_id": run.info.run_id})
    _log_time_series(experiment_id, model_type, metrics, pd.Timestamp(report.period["last_day"]))
    return Monitored(model_type, str(version.version), report, run.info.run_id)


def reference_ledger_path(version, reference: str | None) -> str:
    """The ledger the champion learnt from: `reference` if given, else the `data` its training run was given."""
    if reference:
        return reference
    data = MlflowClient().get_run(version.run_id).data.params.get("data", "")
    if data and Path(data).is_file():
        return data
    raise MonitoringError(f"retraining needs the ledger {version.name} "
                          f"version {version.version} learnt from, and its training run's data ({data or 'none'}) is "
                          f"not a file here: pass it with -P reference=<ledger.csv>")


def combined_ledger(reference: pd.DataFrame, period: pd.DataFrame, path: Path) -> Path:
    """Reference rows before the period, then the period's, written as one canonical CSV (ISO dates): the newest
    rows are last, so a time split holds them out."""
    older = reference[reference["date"] < period["date"].min()]
    both = pd.concat([older, period], ignore_index=True).fillna({config.ANOMALY_LABEL: ""})
    both.to_csv(path, index=False, date_format="%Y-%m-%d", float_format="%.2f")
    return path


# A retrained model holds out the newest rows as training does (20%), but never more than this share of the new
# period: it must learn from the period that made it necessary, and is judged on the newest rest of it.
RETRAIN_HELD_OUT_OF_PERIOD = 0.5


def retrain(model_type: str, period: pd.DataFrame, reference: str | None, experiment_name: str,
            date_order: str = "auto", task: ModelTask | None = None) -> str:
    """Train on the reference ledger plus the period (newest rows held out) and register through the gate;
    returns what happened, in a line: whether the champion changed, and by how much on the new version's
    held-out rows."""
    from pyfunc_models import jobs, registry

    client, name = MlflowClient(), MODEL_NAMES[model_type]
    champion = client.get_model_version_by_alias(name, config.CHAMPION)
    source = reference_ledger_path(champion, reference)
    reference_rows, _ = load_ledger(source, date_order=date_order)
    if task is None:
        params = client.get_run(champion.run_id).data.params
        options = {o.name: type(o.default)(float(params[o.name])) for o in task_class(model_type).options
                   if o.name in params}
        task = task_class(model_type).from_options(**options)
    with tempfile.TemporaryDirectory() as folder:
        path = combined_ledger(reference_rows, period, Path(folder) / f"{model_type}_reference_and_period.csv")
        rows = len(pd.read_csv(path, usecols=[0]))
        held_out = min(0.2, RETRAIN_HELD_OUT_OF_PERIOD * len(period) / rows)
        trained = jobs.train_model(task, str(path), experiment_name=experiment_name, test_fraction=held_out)
        version, alias, decision = registry.register(model_type, trained.run_id, experiment_name=experiment_name)
    key = task.gate.key_metric
    new, old = decision.candidate.get(key, float("nan")), (decision.champion or {}).get(key, float("nan"))
    change = (new - old) / abs(old) if old else float("nan")
    compared = (f"{key} {new:.4g} vs champion v{decision.champion_version} {old:.4g} ({change:+.1%}) on "
                f"v{version.version}'s held-out rows")
    if alias == config.CHAMPION:
        return f"retrained: v{version.version} is the new champion, replacing v{champion.version}: {compared}"
    return (f"retrained: v{version.version} stays challenger, v{champion.version} is still champion: {compared}; "
            f"{decision.decided_by}")


def monitor(data: str, model_types=MODEL_TYPES, retrain_when: str = "false", since: str | None = None,
            reference: str | None = None, experiment_name: str = config.EXPERIMENT_NAME, date_order: str = "auto",
            tasks: dict | None = None) -> list:
    """Monitor each champion of `model_types` on the ledger `data` (read as training reads a ledger: a bad one is
    the same LedgerError), print one line per model, and retrain where `retrain_when` is 'true', or 'auto' and
    the decision RETRAIN. `tasks`: model type -> the ModelTask to retrain with (default: the champion's options)."""
    if retrain_when not in RETRAIN_CHOICES:
        raise ValueError(f"retrain is {retrain_when!r}; expected one of {', '.join(RETRAIN_CHOICES)}")
    ledger, _ = load_ledger(data, date_order=date_order)
    period, before = split_period(ledger, since)
    watched = []
    with tracking.training_run(config.MONITORING.EXPERIMENT, "monitor", {"monitoring": "true"}):
        tracking.log_params_once({"data": str(data), "model_type": ",".join(model_types), "retrain": retrain_when,
                                  "since": since or "", "date_order": date_order})
        for model_type in model_types:
            monitored = watch_champion(model_type, period, before, str(data))
            if monitored is not None:
                print(monitored.line())
                watched.append(monitored)
        mlflow.set_tag(tracking.NOTE_TAG, "\n".join(f"- {m.line()}" for m in watched) or "no champion to monitor")
    # The launcher run `mlflow run` made is this monitoring run, now finished: retraining runs are the training
    # experiment's own (see tracking.training_run).
    os.environ.pop("MLFLOW_RUN_ID", None)
    for monitored in watched:
        if retrain_when == "true" or (retrain_when == "auto" and monitored.report.status == RETRAIN):
            monitored.retrained = retrain(monitored.model_type, period, reference, experiment_name, date_order,
                                          (tasks or {}).get(monitored.model_type))
            MlflowClient().set_tag(monitored.run_id, "retrained", monitored.retrained[:5000])
            print(f"{MODEL_NAMES[monitored.model_type]}: {monitored.retrained}")
    return watched
