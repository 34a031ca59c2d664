"""Orchestration shared by the entry points: get a ledger, open a run, train, log, summarise.

Entry points parse parameters and call one function here; the modelling itself
lives in the model modules and `training.py`, the MLflow calls in `tracking.py`.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pandas as pd

from pyfunc_models import access, config, tracking
from pyfunc_models.encoder_build import EncoderUnavailable
from pyfunc_models.generator import write_ledger
from pyfunc_models.ledger import LedgerError, load_ledger
from pyfunc_models.model_types import MODEL_NAMES, task_class
from pyfunc_models.monitoring import job as monitoring_job
from pyfunc_models.predictor import learned_date_order
from pyfunc_models.task import ModelTask

DEFAULT_SAMPLE_ROWS = 20_000
SMALL_SPLIT_TAG = "small_split_warning"  # on a training run (and per model on main) whose test split is too small


@dataclass
class TrainedModel:
    model_type: str
    run_id: str
    model_uri: str
    metrics: dict
    baseline_metrics: dict
    primary_metric: str
    example: pd.DataFrame
    warnings: list = field(default_factory=list)  # e.g. a test split too small for its metrics to mean much


def obtain_ledger(data: str | None, rows: int, seed: int, workdir: Path) -> Path:
    """The user's ledger, or a generated sample one when no `data` is given."""
    if data:
        return Path(data)
    path = workdir / "sample_ledger.csv"
    print(f"no data given: generating a sample ledger of {rows} rows (seed {seed}) at {path}")
    write_ledger(path, rows=rows, seed=seed)
    return path


def report_ledger(report) -> None:
    """What reading the ledger did, on the terminal and on the run: corrections, unknown values, dropped rows,
    and a day/month order that had to be guessed."""
    mlflow.log_dict(report.as_dict(), "ledger/normalisation_report.json")
    if report.amount_columns:
        money_out, money_in = report.amount_columns
        read = " minus ".join(f"column {c!r}" for c in (money_in, money_out) if c)
        read = read if money_in else f"minus {read}"
        print(f"amount: {read} (the ledger writes money in and money out in columns of their own)")
        if report.amount_columns_reversed:
            warning = (f"the ledger's balance goes up where {money_out!r} has an amount and down where {money_in!r} "
                       f"has one, on nearly every row: it writes {money_out!r} as money in, as a bookkeeping export "
                       f"of a bank account does. If so, swap the two column names and train again")
            print(f"warning: {warning}")
            mlflow.set_tag("amount_columns_warning", warning)
        if report.type_from_amount_columns:
            print(f"warning: {report.type_from_amount_columns} row(s) whose type says the other direction than the "
                  f"column of their amount: read by the column")
    if report.decimal_comma:
        print("amount: read with a decimal comma (-39,99; 1.150,00), as the ledger writes it; the models read their "
              "requests' amounts so unless a request's own text shows a decimal point")
    if report.corrected or report.unknown:
        print(f"normalised enumerations: {json.dumps({**report.corrected, **{'unknown': report.unknown}})}")
    for why, dropped in report.dropped_rows.items():
        print(f"warning: {dropped['count']} row(s) dropped ({why}), e.g. {', '.join(dropped['examples'][:3])}")
        mlflow.set_tag(f"dropped_rows.{why.replace(' ', '_')}", str(dropped["count"]))
    if report.date_order_ambiguous:
        warning = (f"every date in column 'date' reads either way (day or month first); read as "
                   f"{'day' if report.date_order == 'dmy' else 'month'}-first. If the ledger writes "
                   f"{'month' if report.date_order == 'dmy' else 'day'} first, train again with "
                   f"-P date_order={'mdy' if report.date_order == 'dmy' else 'dmy'}")
        print(f"warning: {warning}")
        mlflow.set_tag("date_order_warning", warning)


def train_model(task: ModelTask, data: str | None, experiment_name: str = config.EXPERIMENT_NAME,
                seed: int = 42, sample_rows: int = DEFAULT_SAMPLE_ROWS, test_fraction: float = 0.2,
                date_order: str = "auto") -> TrainedModel:
    """The whole job for one model task; a LedgerError leaves a FAILED run that says why, and logs no model."""
    started = time.perf_counter()
    tags = {config.MODEL_TYPE_TAG: task.model_type}
    with tempfile.TemporaryDirectory() as folder, \
            tracking.training_run(experiment_name, f"train_{task.model_type}", tags) as run, \
            tracking.failure_recorded():
        path = obtain_ledger(data, sample_rows, seed, Path(folder))
        tracking.log_params_once({"data": str(data or f"generated:{sample_rows}:{seed}"), "seed": seed,
                                  "test_fraction": test_fraction, "date_order": date_order})
        ledger, report = load_ledger(path, required=task.training_columns, date_order=date_order)
        report_ledger(report)

        outcome = task.train(ledger, seed=seed, test_fraction=test_fraction, on_candidate=tracking.log_candidate)
        if outcome.params:  # row caps and other choices the task made, e.g. max_search_rows
            mlflow.log_params(outcome.params)
        source = str(Path(path).resolve()) if data else "generated sample ledger"
        tracking.log_ledger(outcome.train, source, "training", f"{task.model_type}-train", task.target_column)
        tracking.log_ledger(outcome.test, source, "evaluation", f"{task.model_type}-test", task.target_column)
        mlflow.log_text(outcome.test.to_csv(index=False, date_format="%Y-%m-%d"), "evaluation/test_ledger.csv")

        warnings = outcome.warnings
        for warning in warnings:
            print(f"warning: {warning}")
        if warnings:
            mlflow.set_tag(SMALL_SPLIT_TAG, " | ".join(warnings)[:5000])
        if outcome.chosen:
            mlflow.set_tag("chosen_candidate", outcome.chosen.name)
        mlflow.log_metrics({f"test_{k}": v for k, v in outcome.metrics.items()})
        mlflow.log_metrics(outcome.run_metrics)
        for name, metrics in outcome.baseline_metrics.items():
            mlflow.log_metrics({f"baseline_{name}_test_{k}": v for k, v in metrics.items()})
        tracking.log_artifacts(outcome.artifacts, "evaluation")

        example = outcome.predictor.example()  # made up, never the customer's rows
        # Requests are read in the day/month order the training ledger decided, unless they say otherwise.
        outcome.predictor.date_order = learned_date_order(report)
        outcome.predictor.decimal_comma = report.decimal_comma  # and amounts with the training ledger's decimal mark
        serving_params = {**task.serving_params, "date_order": outcome.predictor.date_order}
        info = tracking.log_predictor(outcome.predictor, example, serving_params, task.model_type)
        monitoring_job.log_reference_profile(task, outcome, ledger)  # what monitoring compares new periods with
        mlflow.log_metric("train_seconds", time.perf_counter() - started)
        return TrainedModel(task.model_type, run.info.run_id, info.model_uri, outcome.metrics,
                            outcome.baseline_metrics, task.primary_metric, example, warnings)


def metrics_table(trained: TrainedModel, metric_names) -> str:
    """Model vs baselines on the same test rows, as a small text table."""
    names = ["model"] + list(trained.baseline_metrics)
    values = [trained.metrics] + list(trained.baseline_metrics.values())
    first = max(len(m) for m in metric_names) + 2
    width = max(14, *(len(n) + 2 for n in names))
    lines = [f"{'metric':<{first}}" + "".join(f"{n:>{width}}" for n in names)]
    for metric in metric_names:
        lines.append(f"{metric:<{first}}" + "".join(f"{v.get(metric, float('nan')):>{width}.4f}" for v in values))
    return "\n".join(lines)


# What training and registering take on a team server with authentication (team mode).
TRAINING_NEEDS = ("training needs EDIT on the experiment (runs, metrics, models) and registering MANAGE on the "
                  "registered models")


def run_entry_point(job, *args, needs: str = TRAINING_NEEDS, **kwargs):
    """Run a job; a bad ledger, credentials or a permission the tracking server refuses, or a sentence encoder that
    cannot be fetched, end with one line and exit code 2, not a stack trace. `needs` says what permissions the job
    takes, for that line."""
    try:
        with access.needing(needs):
            return job(*args, **kwargs)
    except (LedgerError, access.AccessRefused, EncoderUnavailable) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


SAMPLE_TRANSACTIONS = pd.DataFrame([
    {"date": "2025-03-11", "description": "POS PURCHASE SHELL OIL #4410 SAN JOSE CA", "amount": -52.30,
     "category": "fuel"},
    {"date": "2025-03-11", "description": "ADOBE *CREATIVE CLOUD", "amount": -84.99, "category": "software"},
])


def champion_sample(model_type: str) -> pd.DataFrame:
    """What a client of the served champion sees, for two everyday booked transactions: the category model is
    asked without their category, which it predicts; the others with it (the amount model compares the amount
    with what it expects of such a transaction)."""
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAMES[model_type]}@{config.CHAMPION}")
    asked = SAMPLE_TRANSACTIONS.drop(columns=["category"] if task_class(model_type).target_column == "category" else [])
    answer = model.predict(asked).drop(columns=["alternatives"], errors="ignore")
    return pd.concat([asked, answer], axis=1)


def summary_row(task, trained: TrainedModel, version: str, alias: str, decision) -> dict:
    """One line of the main job's summary: the registered version and its key metric against the baseline."""
    key = task.primary_metric
    baseline_name = task.gate.baselines[0]  # the strongest baseline the gate compares with
    baseline = trained.baseline_metrics.get(baseline_name, {})
    return {
        "model_type": task.model_type, "model": task.registered_name, "version": version,
        "alias": alias, "metric": key, "value": trained.metrics.get(key, float("nan")),
        "baseline": baseline_name, "baseline_value": baseline.get(key, float("nan")),
        "decided_by": decision.decided_by, "passed": decision.passed, "run_id": trained.run_id,
        "warnings": list(trained.warnings),
    }


def summary_table(rows: list) -> str:
    lines = [f"{'model':<38}{'version':>8}  {'alias':<11}{'test metric':<16}{'model':>12}{'baseline':>12}  baseline name"]
    for row in rows:
        lines.append(f"{row['model']:<38}{row['version']:>8}  {row['alias']:<11}{row['metric']:<16}"
                     f"{row['value']:>12.4f}{row['baseline_value']:>12.4f}  {row['baseline']}")
        lines.append(f"    {'gate' if row['passed'] else 'not promoted'}: {row['decided_by']}")
        lines.extend(f"    warning: {warning}" for warning in row.get("warnings", ()))
    return "\n".join(lines)


def summary_text(rows: list, skipped: dict, failures: dict) -> str:
    """What `main` prints last and logs as summary.txt: the table, the command that serves each champion, and
    each model type skipped (not enough data) or not registered, with why. `skipped`, `failures`: type -> why."""
    from pyfunc_models import registry

    lines = [summary_table(rows)]
    lines += [f"  serve: {registry.serve_command(row['model_type'])}"
              for row in rows if row["alias"] == config.CHAMPION]
    lines += [f"  skipped (not enough data): {MODEL_NAMES[t]}: {why}" for t, why in skipped.items()]
    lines += [f"  not registered: {MODEL_NAMES[t]}: {why}" for t, why in failures.items()]
    return "\n".join(lines)


def summary_description(rows: list, skipped: dict, failures: dict) -> str:
    """The main run's description (markdown, shown at the top of the run's page in the MLflow UI)."""
    lines = ["Every model trained on one ledger, put through its gate and registered. Each model's training run is "
             "nested under this run; the full summary is the artifact `summary.txt`.", "",
             "| registered model | version | alias | test metric | model | baseline |", "|---|---|---|---|---|---|"]
    lines += [f"| {row['model']} | {row['version']} | {row['alias']} | {row['metric']} | {row['value']:.4f} | "
              f"{row['baseline_value']:.4f} ({row['baseline']}) |" for row in rows]
    notes = [f"- {row['model']}: warning: {warning}" for row in rows for warning in row["warnings"]]
    notes += [f"- {MODEL_NAMES[t]}: skipped, not enough data: {why}" for t, why in skipped.items()]
    notes += [f"- {MODEL_NAMES[t]}: not registered: {why}" for t, why in failures.items()]
    return "\n".join(lines + ([""] + notes if notes else []))


def log_summary(rows: list, skipped: dict, failures: dict, text: str) -> None:
    """The main run carries its summary where a UI user looks. Per model type: metrics `<type>_<key metric>` and
    `<type>_baseline_<key metric>`; tags `<type>.version`, `.alias`, `.decided_by` (the gate rule that decided),
    `.baseline`, `.training_run_id` and `.small_split_warning`, or `<type>.skipped` / `<type>.error` with the
    reason. The summary as `summary.txt`, and as the run's description."""
    for row in rows:
        kind = row["model_type"]
        mlflow.log_metrics({f"{kind}_{row['metric']}": row["value"],
                            f"{kind}_baseline_{row['metric']}": row["baseline_value"]})
        mlflow.set_tags({f"{kind}.version": row["version"], f"{kind}.alias": row["alias"],
                         f"{kind}.decided_by": row["decided_by"][:5000], f"{kind}.baseline": row["baseline"],
                         f"{kind}.training_run_id": row["run_id"]})
        if row["warnings"]:
            mlflow.set_tag(f"{kind}.{SMALL_SPLIT_TAG}", " | ".join(row["warnings"])[:5000])
    for kind, why in skipped.items():
        mlflow.set_tag(f"{kind}.skipped", why[:5000])
    for kind, why in failures.items():
        mlflow.set_tag(f"{kind}.error", why[:5000])
    mlflow.log_text(text + "\n", "summary.txt")
    mlflow.set_tag(tracking.NOTE_TAG, summary_description(rows, skipped, failures))
