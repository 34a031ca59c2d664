"""A model's reference profile, and a new period's checks against it. Pure: no MLflow.

The reference profile (`build_profile`, logged by every training run as `monitoring/profile.json`) holds no
raw row: binned distributions and counts of what the model reads (rows per day, log |amount|, the type, payment
method, status and category mix, each merchant key's count, missing and unknown rates), of what it answered on
the held-out rows (`ModelTask.watch`: predicted category mix, confidence, anomaly scores and flag rate, amounts
and forecasts), its held-out metrics with bootstrap replicates, the calibration of its confidences (a classifier),
and, for a model that reads only dates, amounts, types and statuses (cash flow), the daily totals of its history.

`check_period` measures a new period of the ledger the same way and says, per check, OK, WARN or RETRAIN with
the reason in numbers; the thresholds are config.MONITORING's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from pyfunc_models import config
from pyfunc_models.features import merchant_keys
from pyfunc_models.ledger import LedgerError, signed_by_type
from pyfunc_models.monitoring import statistics as st
from pyfunc_models.task import ModelTask, Sample

PROFILE_VERSION = 1
OK, WARN, RETRAIN = "OK", "WARN", "RETRAIN"
LEVELS = {OK: 0, WARN: 1, RETRAIN: 2}
# Profile features of the ledger and the column each is read from (the column a task's Monitoring names).
FEATURE_COLUMNS = {"rows_per_day": "date", "log_amount": "amount", "type": "type", "payment_method": "payment_method",
                   "status": "status", "category": "category", "merchant": "description",
                   "amount_vs_merchant": "amount"}
ENUMERATIONS = ("type", "payment_method", "status")  # an unknown rate each
MAY_BE_EMPTY = ("description", "category", "reference", "receipt_url")  # a missing rate each
# Filled in by bookkeepers after the fact: a new period may not have them yet, so their missing rate is no alarm
# (the category mix of the rows that have one is still checked, and so is the category model's performance).
ASSIGNED_LATER = ("category",)
HISTORY_COLUMNS = {"date", "amount", "type", "status"}  # what the kept daily totals can stand in for


def _log_amount(rows: pd.DataFrame) -> np.ndarray:
    amount = rows["amount"].to_numpy(dtype=float)
    return np.log1p(np.abs(amount[np.isfinite(amount)]))


def _rows_per_day(rows: pd.DataFrame) -> np.ndarray:
    dates = pd.DatetimeIndex(rows["date"]).normalize()
    days = pd.date_range(dates.min(), dates.max(), freq="D")
    return pd.Series(1, index=dates).groupby(level=0).size().reindex(days, fill_value=0).to_numpy(dtype=float)


def ledger_features(rows: pd.DataFrame) -> dict:
    """Each profile feature's values on canonical rows (FEATURE_COLUMNS)."""
    category = rows["category"].to_numpy(dtype=object)
    return {"rows_per_day": _rows_per_day(rows), "log_amount": _log_amount(rows),
            "type": rows["type"].to_numpy(dtype=object),
            "payment_method": rows["payment_method"].to_numpy(dtype=object),
            "status": rows["status"].to_numpy(dtype=object), "category": category[category != ""],
            "merchant": merchant_keys(rows["description"])}


def merchant_medians(rows: pd.DataFrame, least: int) -> dict:
    """Median log |amount| of each merchant key with at least `least` rows: what is usual for it."""
    frame = pd.DataFrame({"key": merchant_keys(rows["description"]),
                          "value": np.log1p(np.abs(rows["amount"].to_numpy(dtype=float)))})
    grouped = frame.groupby("key")["value"]
    medians = grouped.median()[grouped.size() >= least]
    return medians.round(6).to_dict()


def amount_vs_merchant(rows: pd.DataFrame, medians: dict) -> np.ndarray:
    """log |amount| minus its merchant's usual (`merchant_medians`), for rows of a merchant that has one: how
    prices move, apart from which merchants a period happens to have."""
    usual = pd.Series(merchant_keys(rows["description"])).map(medians).to_numpy(dtype=float)
    relative = np.log1p(np.abs(rows["amount"].to_numpy(dtype=float))) - usual
    return relative[np.isfinite(relative)]


def ledger_rates(rows: pd.DataFrame) -> dict:
    """name -> (rows with it, rows, column): missing values of the optional text columns, unknown enumerations."""
    rates = {f"missing {c}": (int((rows[c].to_numpy(dtype=object) == "").sum()), len(rows), c) for c in MAY_BE_EMPTY}
    rates.update({f"unknown {c}": (int((rows[c].to_numpy(dtype=object) == config.UNKNOWN).sum()), len(rows), c)
                  for c in ENUMERATIONS})
    return rates


def _distribution(values, bins: int) -> dict:
    values = np.asarray(values)
    if values.dtype == bool:
        return {"kind": "rate", "hits": int(values.sum()), "rows": int(values.size)}
    if values.dtype == object:
        return st.categorical_distribution(values)
    return st.numeric_distribution(values, bins)


def _daily_totals(rows: pd.DataFrame) -> list:
    """[date, type, status, sum of its amounts signed by type] per day: all a model reading only those columns needs
    of a history. (A profile written before kept sums of |amount|; `history_rows` reads both.)"""
    frame = pd.DataFrame({"date": pd.DatetimeIndex(rows["date"]).strftime("%Y-%m-%d"), "type": rows["type"],
                          "status": rows["status"],
                          "amount": signed_by_type(rows["amount"].to_numpy(dtype=float), rows["type"])})
    totals = frame.groupby(["date", "type", "status"], sort=True)["amount"].sum().round(2)
    return [[date, kind, status, float(amount)] for (date, kind, status), amount in totals.items()]


def history_rows(profile: dict) -> pd.DataFrame:
    """The kept daily totals as canonical ledger rows (one per day, type and status), for `ModelTask.watch`."""
    records = profile.get("history") or []
    frame = pd.DataFrame(records, columns=["date", "type", "status", "amount"])
    frame["date"] = pd.to_datetime(frame["date"])
    frame["amount"] = signed_by_type(frame["amount"].to_numpy(dtype=float), frame["type"])
    for column in config.COLUMNS:
        if column not in frame:
            frame[column] = "daily total" if column == "description" else ""
    return frame[list(config.COLUMNS)]


def build_profile(task: ModelTask, predict, reference: pd.DataFrame, heldout: pd.DataFrame, history: pd.DataFrame,
                  source: str, seed: int = 0, thresholds=config.MONITORING) -> dict:
    """The reference profile of a model: `reference` the canonical rows it learnt from, `heldout` rows it never
    saw (after them) and `history` the rows before those (what a forecaster forecasts them from); `predict` the
    served model's predict, or a predictor's `serve`."""
    reference, heldout = task.monitored_rows(reference), task.monitored_rows(heldout)
    if reference.empty or heldout.empty:
        raise LedgerError(f"{task.model_type}: no rows to profile ({len(reference)} reference, "
                          f"{len(heldout)} held out)")
    features = ledger_features(reference)
    inputs = {name: (st.numeric_distribution(values, thresholds.DAY_BINS) if name == "rows_per_day" else
                     {"kind": "merchants", "counts": st.categorical_distribution(values)["counts"]}
                     if name == "merchant" else _distribution(values, thresholds.NUMERIC_BINS))
              for name, values in features.items()}
    medians = merchant_medians(reference, thresholds.MIN_MERCHANT_ROWS)
    inputs["amount_vs_merchant"] = {**st.numeric_distribution(amount_vs_merchant(heldout, medians),
                                                              thresholds.NUMERIC_BINS), "medians": medians}
    known = set(features["merchant"].tolist())
    heldout_keys = merchant_keys(heldout["description"])
    inputs["merchant"]["heldout_new"] = int(sum(key not in known for key in heldout_keys))
    inputs["merchant"]["heldout_rows"] = len(heldout_keys)
    watch = task.watch(predict, heldout, history)
    metrics = {}
    for name, sample in watch.samples.items():
        replicates = st.bootstrap_replicates(sample, thresholds.BOOTSTRAP_RESAMPLES, seed)
        metrics[name] = {"value": sample.value(), "units": sample.units, "replicates": np.round(replicates, 6).tolist()}
    profile = {
        "profile_version": PROFILE_VERSION, "model_type": task.model_type, "source": source,
        "reference": {"first_day": str(reference["date"].min().date()), "last_day": str(reference["date"].max().date()),
                      "rows": len(reference)},
        "heldout": {"first_day": str(heldout["date"].min().date()), "last_day": str(heldout["date"].max().date()),
                    "rows": len(heldout)},
        "inputs": inputs,
        "rates": {name: {"hits": hits, "rows": rows} for name, (hits, rows, _) in ledger_rates(reference).items()},
        "outputs": {name: _distribution(values, thresholds.NUMERIC_BINS) for name, values in watch.outputs.items()},
        "metrics": metrics,
    }
    if watch.confidence is not None and watch.correct is not None:
        profile["calibration"] = st.calibration(watch.confidence, watch.correct)
    if set(task.monitoring.inputs) <= HISTORY_COLUMNS:
        everything = pd.concat([history, heldout], ignore_index=True) if len(history) else heldout
        profile["history"] = _daily_totals(everything)
    return profile


@dataclass
class Check:
    """One thing compared with the reference: what (`name`, `kind`: input, label, output, performance or
    estimate), how it came out (`status`) and why, in numbers (`reason`); `figures` for the report and metrics."""

    name: str
    kind: str
    status: str
    reason: str
    figures: dict = field(default_factory=dict)


@dataclass
class PeriodReport:
    """A model's new period against its reference profile: the decision and every check behind it."""

    model_type: str
    status: str
    reasons: list
    checks: list
    period: dict

    def as_dict(self) -> dict:
        return {"model_type": self.model_type, "status": self.status, "reasons": self.reasons, "period": self.period,
                "checks": [asdict(check) for check in sorted(self.checks, key=_severity)]}

    def drift_status(self) -> tuple:
        """The decision of the distribution checks alone (inputs and outputs), with their reasons: what must not
        depend on whether the labels have arrived."""
        drifted = [c for c in self.checks if c.kind in ("input", "output") and c.status != OK]
        status = max((c.status for c in drifted), key=LEVELS.get, default=OK)
        return status, sorted(c.reason for c in drifted)


def _severity(check: Check):
    figures = check.figures
    return -LEVELS[check.status], -(figures.get("psi", figures.get("rise", figures.get("drop", 0))) or 0)


def _short(value: float) -> str:
    return f"{value:.2g}" if abs(value) < 0.01 and value != 0 else f"{value:.3g}"


def _distribution_check(name, kind, reference: dict, values, thresholds) -> dict | None:
    """PSI and the chi-square p-value of one distribution; None when either side has no values."""
    values = np.asarray(values)
    if reference["kind"] == "numeric":
        if not reference["edges"] and reference["count"] == 0:
            return None
        reference_counts = np.asarray(reference["counts"], dtype=float)
        period_counts = st.numeric_counts(values, reference["edges"]).astype(float)
        ks, ks_p = st.ks_against_reference(reference["quantiles"], values)
        extra = {"ks_statistic": ks, "ks_p_value": ks_p}
        bins = [f"<= {edge:g}" for edge in reference["edges"]] + ["above"]
    else:
        top = thresholds.TOP_MERCHANTS if reference["kind"] == "merchants" else None
        bins, reference_counts, period_counts = st.categorical_bins(reference, values, thresholds.MIN_BIN_SHARE, top)
        extra = {}
    if period_counts.sum() == 0 or reference_counts.sum() == 0:
        return None
    return {"name": name, "kind": kind, "test": "distribution", "psi": st.psi(reference_counts, period_counts),
            "p_value": st.homogeneity_p_value(reference_counts, period_counts), "rows": int(period_counts.sum()),
            "bins": bins, "reference_shares": (reference_counts / reference_counts.sum()).round(4).tolist(),
            "period_shares": (period_counts / period_counts.sum()).round(4).tolist(), **extra}


def _rate_check(name, kind, reference_hits, reference_rows, hits, rows, retrain, warn) -> dict:
    before = reference_hits / max(reference_rows, 1)
    now = hits / max(rows, 1)
    return {"name": name, "kind": kind, "test": "rate", "reference_rate": before, "rate": now, "rise": now - before,
            "p_value": st.rate_p_value(reference_hits, reference_rows, hits, rows), "rows": rows,
            "retrain_level": retrain, "warn_level": warn}


def _judge_distribution(figures: dict, alpha: float, thresholds) -> Check:
    significant = figures["p_value"] < alpha
    if figures["test"] == "distribution":
        psi_value = figures["psi"]
        status = (RETRAIN if significant and psi_value > thresholds.PSI_RETRAIN else
                  WARN if significant and psi_value > thresholds.PSI_WARN else OK)
        level = thresholds.PSI_RETRAIN if status == RETRAIN else thresholds.PSI_WARN
        compared = f" > {level:g}" if status != OK else ""
        reason = (f"{figures['name']} ({figures['kind']}): PSI {psi_value:.3f}{compared}, chi-square p "
                  f"{_short(figures['p_value'])} on {figures['rows']} rows")
    else:
        rise = figures["rise"]
        status = (RETRAIN if significant and rise > figures["retrain_level"] else
                  WARN if significant and rise > figures["warn_level"] else OK)
        level = figures["retrain_level"] if status == RETRAIN else figures["warn_level"]
        compared = f" (+{rise:.1%} > {level:.0%})" if status != OK else f" ({rise:+.1%})"
        reason = (f"{figures['name']} ({figures['kind']}): {figures['rate']:.1%} of {figures['rows']} rows vs "
                  f"{figures['reference_rate']:.1%} in the reference{compared}, p {_short(figures['p_value'])}")
    return Check(figures["name"], figures["kind"], status, reason, {**figures, "alpha": alpha})


def _judge_metric(name: str, kind: str, heldout: dict, period_value: float, period_replicates, units: int,
                  greater_is_better: bool, relative: bool, decides: bool, thresholds) -> Check:
    held = heldout["value"]
    sign = 1.0 if greater_is_better else -1.0
    scale = abs(held) if relative and held else 1.0
    drop = sign * (held - period_value) / scale
    heldout_replicates = np.asarray(heldout.get("replicates") or [], dtype=float)
    low, high = st.drop_interval(sign * heldout_replicates / scale, sign * np.asarray(period_replicates) / scale,
                                 thresholds.CONFIDENCE)
    size = thresholds.ERROR_RISE if relative else thresholds.SCORE_DROP
    real = np.isfinite(low) and low > 0
    enough = units >= thresholds.MIN_UNITS
    status = (RETRAIN if real and drop > size else WARN if real else OK) if decides and enough else OK
    word = "drop" if greater_is_better else "rise"
    shown = (lambda v: f"{v:+.0%}") if relative else (lambda v: f"{v:+.3f}")
    interval = (f"{thresholds.CONFIDENCE:.0%} interval of the {word} {shown(low)} to {shown(high)}"
                if np.isfinite(low) else "no interval")
    compared = f" > {size:.0%}" if relative else f" > {size:g}"
    why = "" if decides and enough else ("; reported, not a reason" if not decides else
                                          f"; {units} units are too few to decide on (< {thresholds.MIN_UNITS})")
    label = f"{name} (estimated from confidences)" if kind == "estimate" else name
    reason = (f"{label}: {_short(period_value)} vs {_short(held)} held out ({word} {shown(drop)}"
              f"{compared if status == RETRAIN else ''}; {interval}; {units} units{why})")
    return Check(name, kind, status, reason, {"value": period_value, "heldout": held, "drop": drop, "drop_low": low,
                                              "drop_high": high, "units": units, "decides": decides and enough,
                                              "size": size})


def check_period(task: ModelTask, predict, profile: dict, period: pd.DataFrame, history: pd.DataFrame,
                 seed: int = 0, thresholds=config.MONITORING) -> PeriodReport:
    """Every check of a new period (canonical rows) against a model's reference profile, and the decision:
    RETRAIN if any check says so, else WARN if any does, else OK."""
    rows = task.monitored_rows(period)
    if rows.empty:
        raise LedgerError(f"the period has no rows the {task.model_type} model answers")
    monitoring = task.monitoring
    features = ledger_features(rows)
    if "amount_vs_merchant" in profile["inputs"]:
        features["amount_vs_merchant"] = amount_vs_merchant(rows, profile["inputs"]["amount_vs_merchant"]["medians"])
    planned = []
    for name, values in features.items():
        column = FEATURE_COLUMNS[name]
        kind = "input" if column in monitoring.inputs else "label" if column in monitoring.labels else None
        if kind is None or name not in profile["inputs"]:
            continue
        figures = _distribution_check(name, kind, profile["inputs"][name], values, thresholds)
        if figures is not None:
            planned.append(figures)
    merchants = profile["inputs"].get("merchant")
    if "description" in monitoring.inputs and merchants:
        new = int(sum(key not in merchants["counts"] for key in features["merchant"]))
        planned.append(_rate_check("new merchants", "input", merchants["heldout_new"], merchants["heldout_rows"], new,
                                   len(rows), thresholds.NEW_MERCHANT_RETRAIN, thresholds.NEW_MERCHANT_WARN))
    for name, (hits, count, column) in ledger_rates(rows).items():
        reference = profile["rates"].get(name)
        if name == f"missing {column}" and column in ASSIGNED_LATER:
            continue  # a period whose rows have no category yet is the usual case, not a change in the data
        if column in monitoring.inputs and reference:
            planned.append(_rate_check(name, "input", reference["hits"], reference["rows"], hits, count,
                                       thresholds.RATE_RETRAIN, thresholds.RATE_WARN))
    watch = task.watch(predict, rows, history)
    for name, values in watch.outputs.items():
        reference = profile["outputs"].get(name)
        if reference is None:
            continue
        if reference["kind"] == "rate":
            values = np.asarray(values, dtype=bool)
            planned.append(_rate_check(name, "output", reference["hits"], reference["rows"], int(values.sum()),
                                       int(values.size), thresholds.RATE_RETRAIN, thresholds.RATE_WARN))
        else:
            figures = _distribution_check(name, "output", reference, values, thresholds)
            if figures is not None:
                planned.append(figures)
    alpha = thresholds.FAMILY_ALPHA / max(len(planned), 1)  # Bonferroni over the model's tests
    checks = [_judge_distribution(figures, alpha, thresholds) for figures in planned]

    for watched in monitoring.watched:
        sample, heldout = watch.samples.get(watched.metric), profile["metrics"].get(watched.metric)
        if sample is None or heldout is None:
            continue
        replicates = st.bootstrap_replicates(sample, thresholds.BOOTSTRAP_RESAMPLES, seed + 1)
        checks.append(_judge_metric(watched.metric, "performance", heldout, sample.value(), replicates, sample.units,
                                    watched.greater_is_better, watched.relative, watched.decides, thresholds))
    if watch.confidence is not None and profile.get("calibration") and "accuracy" in profile["metrics"]:
        chance = st.calibrated(profile["calibration"], watch.confidence)
        estimate = Sample({"chance": chance}, lambda columns: float(np.mean(columns["chance"])))
        replicates = st.bootstrap_replicates(estimate, thresholds.BOOTSTRAP_RESAMPLES, seed + 2)
        labelled = watch.correct is not None and np.isfinite(watch.correct).sum() >= thresholds.MIN_UNITS
        checks.append(_judge_metric("accuracy", "estimate", profile["metrics"]["accuracy"], estimate.value(),
                                    replicates, estimate.units, True, False, not labelled, thresholds))
    status = max((check.status for check in checks), key=LEVELS.get, default=OK)
    reasons = [check.reason for check in sorted(checks, key=_severity) if check.status != OK]
    described = {"first_day": str(rows["date"].min().date()), "last_day": str(rows["date"].max().date()),
                 "rows": len(rows), "labelled": {column: int((rows[column].to_numpy(dtype=object) != "").sum())
                                                 for column in monitoring.labels if column in rows
                                                 and rows[column].dtype == object}}
    return PeriodReport(task.model_type, status, reasons, checks, described)


def report_metrics(report: PeriodReport) -> dict:
    """The figures of a report as MLflow metrics, grouped by prefix: psi/<name>, p_value/<name>, rate/<name>,
    <metric>/period, <metric>/heldout, <metric>/drop_low and /drop_high, and status_level (0 OK, 1 WARN, 2
    RETRAIN), so that successive monitoring runs chart side by side."""
    metrics = {"status_level": LEVELS[report.status], "period_rows": report.period["rows"]}
    for check in report.checks:
        key = check.name.replace(" ", "_")
        figures = check.figures
        if "psi" in figures:
            metrics[f"psi/{key}"] = figures["psi"]
            metrics[f"p_value/{key}"] = figures["p_value"]
        elif "rate" in figures:
            metrics[f"rate/{key}"] = figures["rate"]
            metrics[f"rate_reference/{key}"] = figures["reference_rate"]
        else:
            prefix = f"estimated_{key}" if check.kind == "estimate" else key
            metrics[f"{prefix}/period"] = figures["value"]
            metrics[f"{prefix}/heldout"] = figures["heldout"]
            if np.isfinite(figures["drop_low"]):
                metrics[f"{prefix}/drop_low"] = figures["drop_low"]
                metrics[f"{prefix}/drop_high"] = figures["drop_high"]
    return {name: float(value) for name, value in metrics.items() if np.isfinite(value)}
