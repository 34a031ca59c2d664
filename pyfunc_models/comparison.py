"""Offline comparison of two versions of one registered model (`register -P action=compare`).

Both versions answer the same evaluation rows (by default the held-out rows of the newer version's training run)
through monitoring's evaluation code (`ModelTask.watch`), so each metric is a function of per-unit arrays (rows; days
for cash flow) and a paired bootstrap resamples the units once for both. The comparison says in one line what the
evidence supports: promote, keep, or not enough data (with the rows it would take), and logs an evaluation run that
links both versions. An A/B split version (config.AB_SPLIT_TAG) is compared on the rows each variant answered.

    compare("category")                       # champion vs challenger
    compare("amount", ("3", "5"), "new.csv")  # any two versions, on a ledger of your own
    compare("category", ("7",))               # the variants of A/B split version 7
    require_evidence("category", "5", None)   # RegistryError unless the verdict is promote
"""

from __future__ import annotations

import datetime
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar

from pyfunc_models import access, config, registry, tracking
from pyfunc_models.anomaly import AnomalyTask, evaluation_rows
from pyfunc_models.cashflow import daily_net_flow, served_horizon
from pyfunc_models.ledger import LedgerError
from pyfunc_models.model_types import task_class
from pyfunc_models.monitoring import statistics as st
from pyfunc_models.registry import RegistryError
from pyfunc_models.task import PER_LEDGER, ROWS, ModelTask, Sample, Watch

PROMOTE, KEEP, NOT_ENOUGH_DATA = "promote", "keep", "not enough data"
CONFIDENCE = 0.95  # two-sided interval of the difference; McNemar's test at 1 - CONFIDENCE
POWER = 0.8  # rows needed: to see the observed difference this often
RESAMPLES = 2000
SEED = 0
Z_CONFIDENCE = float(stats.norm.ppf(1 - (1 - CONFIDENCE) / 2))  # 1.96
Z_POWER = float(stats.norm.ppf(POWER))  # 0.84
FIGURE_ARTIFACT = "comparison/bootstrap_difference.png"
REPORT_ARTIFACT = "comparison/comparison.json"


# --- statistics, pure ----------------------------------------------------------------------------------------
@dataclass
class Difference:
    """B minus A of a metric: each side's value and bootstrap replicates of the difference."""

    value_a: float
    value_b: float
    replicates: np.ndarray

    @property
    def value(self) -> float:
        return self.value_b - self.value_a

    @property
    def interval(self) -> tuple:
        """The percentile interval at CONFIDENCE; NaN when there was nothing to resample."""
        if not np.isfinite(self.replicates).any():
            return float("nan"), float("nan")
        tail = (1 - CONFIDENCE) / 2 * 100
        low, high = np.nanpercentile(self.replicates, [tail, 100 - tail])
        return float(low), float(high)

    @property
    def standard_error(self) -> float:
        finite = self.replicates[np.isfinite(self.replicates)]
        return float(np.std(finite, ddof=1)) if finite.size > 1 else float("nan")


def _side(columns: dict, side: str) -> dict:
    return {name: values for (owner, name), values in columns.items() if owner == side}


def paired_difference(sample_a: Sample, sample_b: Sample, resamples: int = RESAMPLES, seed: int = SEED) -> Difference:
    """Two versions' metric on the same units, in the same order: each replicate draws the unit indices once and
    recomputes both metrics on them (monitoring's bootstrap_replicates of one joint Sample), so what the units
    share (an easy row, a quiet day) cancels out of the difference."""
    if sample_a.units != sample_b.units:
        raise ValueError(f"a paired comparison needs the same units: {sample_a.units} and {sample_b.units}")
    columns = {**{("a", name): values for name, values in sample_a.columns.items()},
               **{("b", name): values for name, values in sample_b.columns.items()}}
    joint = Sample(columns, lambda c: sample_b.statistic(_side(c, "b")) - sample_a.statistic(_side(c, "a")))
    return Difference(sample_a.value(), sample_b.value(), st.bootstrap_replicates(joint, resamples, seed))


def unpaired_difference(sample_a: Sample, sample_b: Sample, resamples: int = RESAMPLES,
                        seed: int = SEED) -> Difference:
    """Two metrics on different units (an A/B test's variants): each resampled on its own, replicate minus
    replicate (a two-sample bootstrap)."""
    replicates_a = st.bootstrap_replicates(sample_a, resamples, seed)
    replicates_b = st.bootstrap_replicates(sample_b, resamples, seed + 1)
    replicates = replicates_b - replicates_a if replicates_a.size and replicates_b.size else np.array([])
    return Difference(sample_a.value(), sample_b.value(), replicates)


def mcnemar_test(correct_a, correct_b) -> dict | None:
    """McNemar's exact test (statsmodels, the binomial test on the discordant pairs) that two classifiers are right
    equally often on the same rows; `correct_*`: 1.0 right, 0.0 wrong, NaN where the truth is unknown. None when
    no row has a truth."""
    a, b = np.asarray(correct_a, dtype=float), np.asarray(correct_b, dtype=float)
    known = np.isfinite(a) & np.isfinite(b)
    if not known.any():
        return None
    a, b = a[known] == 1, b[known] == 1
    table = [[int(np.sum(a & b)), int(np.sum(a & ~b))], [int(np.sum(~a & b)), int(np.sum(~a & ~b))]]
    return {"rows": int(known.sum()), "accuracy_a": float(a.mean()), "accuracy_b": float(b.mean()),
            "only_a_right": table[0][1], "only_b_right": table[1][0],
            "p_value": float(mcnemar(table, exact=True).pvalue)}


def rows_needed(difference: float, standard_error: float, units: int) -> int | None:
    """Units that would detect `difference` at POWER with a two-sided test at 1 - CONFIDENCE: the paired-design
    n = ((z_0.975 + z_0.8) * sd(d) / mean(d))^2, with sd(d) read as the bootstrap standard error times sqrt(units)
    (for a mean of per-unit differences, that is sd(d); the same scaling serves a macro-F1 or an unpaired A/B
    test, whose total rows keep their split). None when there is no difference to detect."""
    if not (np.isfinite(difference) and np.isfinite(standard_error)) or difference == 0:
        return None
    return math.ceil(units * ((Z_CONFIDENCE + Z_POWER) * standard_error / difference) ** 2)


def mcnemar_rows_needed(only_a_right: int, only_b_right: int, rows: int) -> int | None:
    """Rows that would make McNemar's test detect the observed disagreement at POWER (Connor 1987): with the
    discordant shares p10, p01, psi = p10 + p01 and delta = p01 - p10,
    n = (z_0.975 sqrt(psi) + z_0.8 sqrt(psi - delta^2))^2 / delta^2. None when they are right equally often."""
    if rows == 0 or only_a_right == only_b_right:
        return None
    psi, delta = (only_a_right + only_b_right) / rows, (only_b_right - only_a_right) / rows
    return math.ceil((Z_CONFIDENCE * math.sqrt(psi) + Z_POWER * math.sqrt(psi - delta ** 2)) ** 2 / delta ** 2)


def decide(low: float, high: float, greater_is_better: bool, tolerance: float,
           more_often_right: bool | None = None) -> str:
    """The verdict from the 95% interval [low, high] of B - A on the key metric:
    - promote: B is better and the interval does not reach 0; where the rows say right or wrong (a classifier),
      McNemar's test must also find B right more often (`more_often_right`: p < 0.05 and B right on more of the
      rows where they disagree). For category the key metric, macro-F1, weighs every category alike, so a few rows
      of a rare one can move it; accuracy is what a paired exact test can test. Promotion needs both;
    - keep: A is better and the interval does not reach 0, or the whole interval lies within the gate's
      `tolerance` (absolute, in the key metric's units): the versions do not differ by anything that matters.
      Keeping changes nothing, so it needs the key metric alone;
    - not enough data: anything else (including a NaN interval)."""
    sign = 1.0 if greater_is_better else -1.0
    gain_low, gain_high = sorted((sign * low, sign * high))
    if gain_low > 0 and more_often_right in (None, True):
        return PROMOTE
    if gain_high < 0 or (-tolerance <= gain_low and gain_high <= tolerance):
        return KEEP
    return NOT_ENOUGH_DATA


# --- what a comparison found -----------------------------------------------------------------------------------
@dataclass
class Side:
    """One side of a comparison: a registered version, or the variant of an A/B split version that answered."""

    version: str
    role: str  # champion, challenger, or "" for a version with neither alias
    run_id: str
    model_id: str | None
    units: int = 0

    def label(self) -> str:
        return f"version {self.version}" + (f" ({self.role})" if self.role else "")


@dataclass
class Comparison:
    """Versions A (the champion, else the older) and B compared on one ledger: each key metric, B - A with its
    95% interval, McNemar's test for a classifier, the verdict and, when the data are not enough, how many
    units (rows; days for cash flow) would be."""

    model_type: str
    registered_model: str
    key_metric: str
    greater_is_better: bool
    a: Side
    b: Side
    difference: Difference
    tolerance: float  # the gate's, absolute in the key metric's units
    unit: str  # "rows" or "days"
    evaluated_on: str  # where the rows come from, in words
    paired: bool
    mcnemar: dict | None = None
    split_version: str | None = None  # the A/B split version whose variants are A and B
    run_id: str = ""
    verdict: str = field(init=False)
    rows_needed: int | None = field(init=False)

    @property
    def units(self) -> int:
        """The rows (days) compared: both versions' own, or the two variants' together."""
        return self.a.units + (0 if self.paired else self.b.units)

    def __post_init__(self):
        low, high = self.difference.interval
        self.verdict = decide(low, high, self.greater_is_better, self.tolerance, self._more_often_right())
        self.rows_needed = None
        if self.verdict == NOT_ENOUGH_DATA:
            known = [need for need in self._needs() if need is not None]
            self.rows_needed = max(known) if known else None

    def _more_often_right(self) -> bool | None:
        """McNemar's verdict on B (None without one): p < 0.05 and B right on more of the rows where they differ."""
        if self.mcnemar is None:
            return None
        test = self.mcnemar
        return bool(test["p_value"] < 1 - CONFIDENCE and test["only_b_right"] > test["only_a_right"])

    def _accuracy_blocks(self) -> bool:
        """B leads on the key metric but McNemar does not find it right more often: what promotion still lacks."""
        return self._more_often_right() is False and self._gains()[0] > 0

    def _needs(self) -> list:
        """The units each missing piece of evidence would take (None: no number would do): the key metric's
        interval clear of 0, and, for a B that leads on it, McNemar's test finding it right more often."""
        needs = []
        if not self._gains()[1] > 0:  # NaN too
            needs.append(rows_needed(self.difference.value, self.difference.standard_error, self.units))
        if self._accuracy_blocks():
            only_a, only_b = self.mcnemar["only_a_right"], self.mcnemar["only_b_right"]
            needs.append(mcnemar_rows_needed(only_a, only_b, self.mcnemar["rows"]) if only_b > only_a else None)
        return needs

    def _gains(self) -> tuple:
        """B's gain over A (positive: B better) and its interval, low first."""
        sign = 1.0 if self.greater_is_better else -1.0
        low, high = self.difference.interval
        return sign * self.difference.value, *sorted((sign * low, sign * high))

    def verdict_line(self) -> str:
        key, a, b, difference = self.key_metric, self.a.label(), self.b.label(), self.difference
        low, high = difference.interval
        gain, gain_low, gain_high = self._gains()
        b_first = f"{key} {difference.value_b:.4g} vs {difference.value_a:.4g}"
        interval = f"{CONFIDENCE:.0%} interval of the difference {low:+.4g} to {high:+.4g}"
        if self.verdict == PROMOTE:
            line = f"{b} is better than {a} ({b_first}; {interval}, clear of 0)"
            if self.mcnemar is not None:
                gained = self.mcnemar["only_b_right"] - self.mcnemar["only_a_right"]
                line += (f" and right on {gained} more of {self.mcnemar['rows']} rows (McNemar p "
                         f"{self.mcnemar['p_value']:.2g})")
            return f"verdict: {PROMOTE}: {line}"
        if self.verdict == KEEP and gain_high < 0:
            return (f"verdict: {KEEP}: {a} is better than {b} ({key} {difference.value_a:.4g} vs "
                    f"{difference.value_b:.4g}; {interval}, clear of 0)")
        if self.verdict == KEEP:
            return (f"verdict: {KEEP}: {b} is no better than {a} by more than the gate's tolerance of "
                    f"{self.tolerance:.4g} ({b_first}; {interval}); changing versions would change nothing that "
                    f"matters")
        if gain_low > 0:  # clear on the key metric; McNemar's test is what is missing
            test = self.mcnemar
            found = (f"{b} scores better ({b_first}; {interval}, clear of 0), but is not shown right more often: "
                     f"right on {test['only_b_right']} rows where {a} is wrong, {a} on {test['only_a_right']} where "
                     f"{b} is wrong (McNemar p {test['p_value']:.2g})")
        else:
            direction = "better" if gain > 0 else "worse" if gain < 0 else "no different"
            found = (f"on {self.units} {self.unit}, {b} looks {direction} than {a} ({b_first}), but that could be "
                     f"chance ({interval})")
        against = self._accuracy_blocks() and self.mcnemar["only_b_right"] <= self.mcnemar["only_a_right"]
        if self.rows_needed is not None:
            need = (f"about {self.rows_needed:,} {self.unit} would show a difference this size {POWER:.0%} of the "
                    f"time; compare again on a longer ledger (-P eval_data=...)")
            if against:
                need += (f"; but accuracy points the other way ({b} right on {self.mcnemar['only_b_right']} rows "
                         f"where {a} is wrong, {a} on {self.mcnemar['only_a_right']}), so McNemar's test would not "
                         f"support {b} on more rows of this kind")
        elif self._accuracy_blocks():
            need = f"more rows would not show {b} right more often"
        elif difference.value == 0:
            need = f"the two versions score the same, so no number of {self.unit} would tell them apart"
        else:
            need = f"{self.units} {self.unit} are too few to tell how much the difference varies"
        return f"verdict: {NOT_ENOUGH_DATA}: {found}; {need}"

    def report(self) -> str:
        """What the CLI prints: the versions, the rows, the figures, the run; the last line is the verdict."""
        key, difference = self.key_metric, self.difference
        low, high = difference.interval
        better = "higher" if self.greater_is_better else "lower"
        gain = self._gains()[0]
        direction = "better" if gain > 0 else "worse" if gain < 0 else "no different"
        how = (f"paired bootstrap, {RESAMPLES} resamples of the {self.unit}" if self.paired else
               f"two-sample bootstrap, {RESAMPLES} resamples of each variant's {self.unit}")
        if self.split_version is None:
            title = f"{self.registered_model}: {self.a.label()} vs {self.b.label()}, on the same {self.unit}"
            sides = f"v{self.a.version} {difference.value_a:.4g}, v{self.b.version} {difference.value_b:.4g}"
        else:
            title = (f"{self.registered_model}: A/B split version {self.split_version}, each variant on the "
                     f"{self.unit} it answered")
            sides = (f"{self.a.label()} {difference.value_a:.4g} on {self.a.units} {self.unit}, "
                     f"{self.b.label()} {difference.value_b:.4g} on {self.b.units} {self.unit}")
        lines = [title, f"evaluated on: {self.evaluated_on}",
                 f"{key} ({better} is better): {sides}; v{self.b.version} - v{self.a.version} = "
                 f"{difference.value:+.4g}, {CONFIDENCE:.0%} interval {low:+.4g} to {high:+.4g} ({how}): "
                 f"v{self.b.version} {direction}"]
        if self.mcnemar is not None:
            test = self.mcnemar
            lines.append(f"accuracy: v{self.a.version} {test['accuracy_a']:.4g}, v{self.b.version} "
                         f"{test['accuracy_b']:.4g} on {test['rows']} rows; only v{self.a.version} right on "
                         f"{test['only_a_right']}, only v{self.b.version} right on {test['only_b_right']}; "
                         f"McNemar's exact test (binomial, on those {test['only_a_right'] + test['only_b_right']} "
                         f"rows) p = {test['p_value']:.2g}")
        if self.run_id:
            lines.append(f"evaluation run: {self.run_id}")
        return "\n".join([*lines, self.verdict_line()])

    def as_dict(self) -> dict:
        low, high = self.difference.interval
        return {"model_type": self.model_type, "registered_model": self.registered_model,
                "key_metric": self.key_metric, "greater_is_better": self.greater_is_better,
                "a": vars(self.a), "b": vars(self.b), "split_version": self.split_version, "paired": self.paired,
                "value_a": self.difference.value_a, "value_b": self.difference.value_b,
                "difference": self.difference.value, "interval": [low, high], "confidence": CONFIDENCE,
                "resamples": RESAMPLES, "tolerance": self.tolerance, "unit": self.unit,
                "evaluated_on": self.evaluated_on, "mcnemar": self.mcnemar, "verdict": self.verdict,
                "rows_needed": self.rows_needed, "verdict_line": self.verdict_line(), "run_id": self.run_id}

    def metrics(self) -> tuple:
        """(the run's own metrics, A's, B's): A's and B's are linked to their logged models too."""
        low, high = self.difference.interval
        shared = {f"difference/{self.key_metric}": self.difference.value, "difference/low": low,
                  "difference/high": high, "units/a": self.a.units, "units/b": self.b.units,
                  "verdict_level": {KEEP: 0, NOT_ENOUGH_DATA: 1, PROMOTE: 2}[self.verdict]}
        if self.rows_needed is not None:
            shared["rows_needed"] = self.rows_needed
        own = {"a": {f"a/{self.key_metric}": self.difference.value_a},
               "b": {f"b/{self.key_metric}": self.difference.value_b}}
        if self.mcnemar is not None:
            shared |= {"mcnemar_p_value": self.mcnemar["p_value"], "only_a_right": self.mcnemar["only_a_right"],
                       "only_b_right": self.mcnemar["only_b_right"]}
            own["a"]["a/accuracy"], own["b"]["b/accuracy"] = self.mcnemar["accuracy_a"], self.mcnemar["accuracy_b"]
        finite = {name: float(value) for name, value in shared.items() if np.isfinite(value)}
        return finite, own["a"], own["b"]


# --- the MLflow edge -------------------------------------------------------------------------------------------
def _version(name: str, number):
    try:
        return MlflowClient().get_model_version(name, str(number))
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise RegistryError(f"{name} has no version {number}; list them with "
                            f"mlflow run . -e register -P action=list") from None


def _role(version) -> str:
    return next((alias for alias in (config.CHAMPION, config.CHALLENGER) if alias in version.aliases), "")


def _alias(name: str, alias: str):
    try:
        return MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _versions(name: str, versions) -> tuple:
    """(A, B, split version or None). Default: the champion and the challenger. Two versions given: A is the
    champion if it is one of them, else the older, so `promote` always means "B instead of A". One version given:
    an A/B split version, whose champion and challenger variants are A and B."""
    if versions and len(versions) == 1:
        split = _version(name, versions[0])
        if split.tags.get(config.AB_SPLIT_TAG) != "true":
            raise RegistryError(f"compare takes two versions (-P versions=3,5) or one A/B split version; version "
                                f"{split.version} of {name} is not an A/B split (no tag {config.AB_SPLIT_TAG}=true)")
        return (_version(name, split.tags["ab_champion_version"]), _version(name, split.tags["ab_challenger_version"]),
                split)
    if versions:
        if len(versions) != 2 or str(versions[0]) == str(versions[1]):
            raise RegistryError(f"compare takes two different versions, e.g. -P versions=3,5 (got "
                                f"{','.join(map(str, versions))})")
        a, b = (_version(name, number) for number in versions)
        if _role(b) == config.CHAMPION or (_role(a) != config.CHAMPION and int(a.version) > int(b.version)):
            a, b = b, a
        return a, b, None
    champion, challenger = _alias(name, config.CHAMPION), _alias(name, config.CHALLENGER)
    if champion is None or challenger is None:
        has = (f"champion version {champion.version} and no challenger" if champion is not None else
               "no champion" + (f" (challenger version {challenger.version})" if challenger is not None else ""))
        raise RegistryError(f"nothing to compare: {name} has {has}; pass two versions: -P versions=a,b")
    return champion, challenger, None


def _run_id(version) -> str:
    if not version.run_id:  # team mode: an account that may not read runs is not told the source run
        raise access.Withheld(f"the server withheld the source run of {version.name} version {version.version}")
    return version.run_id


def _evaluation_source(run):
    """Where a training run's held-out rows came from: the source of its logged evaluation input (the ledger it
    read), so the comparison's input names the same data. None for a run that logged none."""
    for logged in run.inputs.dataset_inputs:
        if any(tag.key == "mlflow.data.context" and tag.value == "evaluation" for tag in logged.tags):
            return mlflow.data.get_source(logged)
    return None


def _load(name: str, version: str):
    return mlflow.pyfunc.load_model(f"models:/{name}/{version}")


def _watch(task: ModelTask, predict, rows: pd.DataFrame, history: pd.DataFrame, what: str) -> Watch:
    try:
        return task.watch(predict, rows, history)
    except MlflowException as error:  # the model refused a row: say so, as a ledger error (registry.score does too)
        raise LedgerError(f"{what} could not score the evaluation data: {error.message}") from None


def _period(task: ModelTask, ledger: pd.DataFrame, run_params: dict, eval_data: str | None, predict) -> tuple:
    """(rows, history, note): what both versions answer, scored as the gate scores them. A training run's
    evaluation ledger splits as monitoring splits it (`held_out_of_evaluation`: for cash flow, the test window
    after the history); a ledger given is all rows, or for a forecaster its last `horizon` days (the newer
    version's served horizon) forecast from the days before. Anomaly rows carry their labels, else planted
    anomalies (anomaly.evaluation_rows, seeded as in the gate), so both versions see the same ones."""
    if not eval_data:
        _, rows, history = task.held_out_of_evaluation(ledger, run_params)
    elif task.batch_plan == PER_LEDGER:
        days, horizon = daily_net_flow(ledger), served_horizon(predict)
        if len(days) <= horizon:
            raise LedgerError(f"the evaluation ledger spans {len(days)} days; a {horizon}-day forecast needs more "
                              f"days of history before them")
        first = days.index[-horizon]
        rows, history = ledger[ledger["date"] >= first], ledger[ledger["date"] < first]
    else:
        rows, history = ledger, ledger.iloc[:0]
    rows, note = task.monitored_rows(rows).reset_index(drop=True), ""
    if isinstance(task, AnomalyTask):
        rows, anomalous, kinds, how = evaluation_rows(rows)
        rows = rows.assign(**{config.ANOMALY_LABEL: kinds})
        note = f", {int(anomalous.sum())} of them {'labelled' if how == 'labels' else 'planted'} anomalies"
    if rows.empty:
        raise LedgerError(f"the evaluation ledger has no rows the {task.model_type} model answers")
    return rows, history, note


def _key_sample(task: ModelTask, watch: Watch, what: str) -> Sample:
    """The gate's key metric as a Sample of the watch; anomaly's F1 from its precision and recall (one columns
    dict, so they resample together)."""
    key = task.gate.key_metric
    if key in watch.samples:
        return watch.samples[key]
    if key == "f1" and {"precision", "recall"} <= watch.samples.keys():
        precision, recall = watch.samples["precision"].statistic, watch.samples["recall"].statistic

        def f1(columns):
            p, r = precision(columns), recall(columns)
            return 2 * p * r / (p + r) if p + r else 0.0

        return Sample(watch.samples["precision"].columns, f1)
    raise LedgerError(f"{what}: the evaluation rows carry no truth to measure {key} on (for category: expenses with "
                      f"a category; pass a ledger that has them with -P eval_data=...)")


def _variant_watches(task: ModelTask, predict, rows: pd.DataFrame, history: pd.DataFrame, what: str) -> dict:
    """Each variant's Watch on the rows it answered. The split model answers every row once; then each variant's
    rows are watched again with its recorded answers replayed, so watch's own filters (labelled rows only) apply
    to each variant's rows and stay aligned with them."""
    recorded = []

    def recording(request, params=None):
        recorded.append(predict(request, params=params))
        return recorded[-1]

    _watch(task, recording, rows, history, what)
    answers = recorded[0].reset_index(drop=True)
    if config.AB_VARIANT_COLUMN not in answers:
        raise RegistryError(f"{what} is tagged {config.AB_SPLIT_TAG}=true but its answers have no "
                            f"'{config.AB_VARIANT_COLUMN}' column saying which variant answered")
    watches = {}
    for variant in (config.CHAMPION, config.CHALLENGER):
        mine = (answers[config.AB_VARIANT_COLUMN] == variant).to_numpy()
        if not mine.any():
            raise LedgerError(f"none of the {len(rows)} evaluation rows was answered by the {variant} variant of "
                              f"{what}: nothing to compare; use a longer ledger (-P eval_data=...)")
        replay = answers[mine].reset_index(drop=True)
        watches[variant] = task.watch(lambda request, params=None, replay=replay: replay,
                                      rows[mine].reset_index(drop=True), history)
    return watches


def compare(model_type: str, versions=None, eval_data: str | None = None,
            experiment_name: str = config.EXPERIMENT_NAME) -> Comparison:
    """Compare two versions (default: champion and challenger) or an A/B split version's variants on one ledger
    (default: the held-out rows of the newer version's training run), log the evaluation run and tag both
    versions `last_compared`."""
    name, task = registry.registered_name(model_type), task_class(model_type)()
    if versions and len(versions) == 1 and task.batch_plan != ROWS:
        raise RegistryError(f"cannot split a ledger scored by one variant: a {model_type} model's answer for a row "
                            f"depends on other rows (its day's, or the whole ledger's), so an A/B split sends each "
                            f"request, here the whole evaluation ledger, to one variant; compare the two versions on "
                            f"the same ledger instead: -P versions=<champion>,<challenger>")
    a, b, split = _versions(name, tuple(versions) if versions else None)
    newer = max((a, b), key=lambda version: int(version.version))
    run_id = _run_id(newer)
    ledger = registry.evaluation_ledger(run_id, eval_data)
    models = {version: _load(name, version) for version in ([split.version] if split else [a.version, b.version])}
    run = MlflowClient().get_run(run_id)
    rows, history, note = _period(task, ledger, run.data.params, eval_data,
                                  models[split.version if split else newer.version].predict)
    source = str(Path(eval_data).resolve()) if eval_data else _evaluation_source(run)
    data = source if eval_data else f"runs:/{run_id}/{registry.EVALUATION_ARTIFACT}"
    where = Path(eval_data).name if eval_data else f"the held-out rows of version {newer.version}'s training run"
    unit = "days" if task.batch_plan == PER_LEDGER else "rows"
    sides = [Side(str(v.version), _role(v), _run_id(v), registry.logged_model_id(v)) for v in (a, b)]

    if split is None:
        watches = [_watch(task, models[v.version].predict, rows, history, f"{name} version {v.version}")
                   for v in (a, b)]
        samples = [_key_sample(task, watch, f"{name} version {v.version}") for watch, v in zip(watches, (a, b))]
        difference, paired = paired_difference(*samples), True
        test = mcnemar_test(watches[0].correct, watches[1].correct) if watches[0].correct is not None else None
    else:
        what = f"{name} A/B split version {split.version}"
        watched = _variant_watches(task, models[split.version].predict, rows, history, what)
        samples = [_key_sample(task, watched[variant], what) for variant in (config.CHAMPION, config.CHALLENGER)]
        sides = [Side(side.version, f"{variant} variant", side.run_id, side.model_id)
                 for side, variant in zip(sides, (config.CHAMPION, config.CHALLENGER))]
        difference, paired, test = unpaired_difference(*samples), False, None
    for side, sample in zip(sides, samples):
        side.units = sample.units
    days = rows["date"] if unit == "rows" else pd.Series(daily_net_flow(rows).index)
    gate = task.gate
    comparison = Comparison(
        model_type, name, gate.key_metric, gate.greater_is_better, *sides, difference,
        gate.tolerance * (abs(difference.value_a) if gate.relative else 1.0), unit,
        f"{where} ({days.min():%Y-%m-%d} to {days.max():%Y-%m-%d}): "
        f"{samples[0].units + (0 if paired else samples[1].units)} {unit}{note}", paired, test,
        str(split.version) if split else None)
    _log(comparison, ledger, data, source, task.target_column, experiment_name)
    return comparison


def _figure(comparison: Comparison):
    """The bootstrap distribution of B - A, with 0, the observed difference and the interval marked."""
    from matplotlib.figure import Figure

    difference, key = comparison.difference, comparison.key_metric
    low, high = difference.interval
    figure = Figure(figsize=(7, 3.5))
    axes = figure.subplots()
    axes.hist(difference.replicates[np.isfinite(difference.replicates)], bins=50, color="#9ecae1")
    axes.axvline(0, color="black", linewidth=1, label="no difference")
    axes.axvline(difference.value, color="#d94801", label=f"observed {difference.value:+.4g}")
    for edge in (low, high):
        axes.axvline(edge, color="#d94801", linestyle="--", linewidth=1)
    axes.set_xlabel(f"{key}: v{comparison.b.version} minus v{comparison.a.version} "
                    f"({'higher' if comparison.greater_is_better else 'lower'} is better)")
    axes.set_ylabel("bootstrap resamples")
    axes.set_title(f"{comparison.registered_model}: {comparison.verdict} "
                   f"({CONFIDENCE:.0%} interval dashed)", fontsize=10)
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def _log(comparison: Comparison, ledger: pd.DataFrame, data: str, source, target: str | None,
         experiment_name: str) -> None:
    """The evaluation run (tracking.training_run, so a `mlflow run` launcher is reused or points to it) that
    links both versions, and each version's `last_compared` tag. `data`: the evaluation data, as a parameter;
    `source`: its dataset source for mlflow.log_input (None: not logged as an input)."""
    a, b = comparison.a, comparison.b
    tags = {"compared_registered_model": comparison.registered_model, "compared_model_type": comparison.model_type,
            "compared_version_a": a.version, "compared_version_b": b.version, "compared_role_a": a.role,
            "compared_role_b": b.role, "compared_run_a": a.run_id, "compared_run_b": b.run_id,
            "compared_model_id_a": a.model_id or "", "compared_model_id_b": b.model_id or "",
            "verdict": comparison.verdict}
    if comparison.split_version:
        tags["compared_split_version"] = comparison.split_version
    with tracking.training_run(experiment_name, f"compare_{comparison.model_type}", tags) as run:
        comparison.run_id = run.info.run_id
        tracking.log_params_once({"model_type": comparison.model_type,
                                  "compared_versions": f"{a.version},{b.version}", "evaluation_data": data,
                                  "paired": str(comparison.paired).lower(), "resamples": RESAMPLES})
        if source is not None:
            tracking.log_ledger(ledger, source, "evaluation", f"{comparison.model_type}-comparison", target)
        shared, of_a, of_b = comparison.metrics()
        mlflow.log_metrics(shared)
        mlflow.log_metrics(of_a, model_id=a.model_id)  # the logged model's page lists them
        mlflow.log_metrics(of_b, model_id=b.model_id)
        mlflow.log_dict(comparison.as_dict(), REPORT_ARTIFACT)
        mlflow.log_figure(_figure(comparison), FIGURE_ARTIFACT)
        mlflow.set_tag(tracking.NOTE_TAG, "\n".join(f"- {line}" for line in comparison.report().splitlines()))
    # The launcher run `mlflow run` made is this one, now finished: another comparison in this process (model_type
    # all) makes its own.
    os.environ.pop("MLFLOW_RUN_ID", None)
    now = f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%dT%H:%M:%SZ}"
    compared = {a.version: f"with version {b.version}", b.version: f"with version {a.version}"}
    if comparison.split_version:
        compared[comparison.split_version] = f"its variants, versions {a.version} and {b.version}"
    for version, what in compared.items():
        registry.tag_version(comparison.model_type, version, {
            "last_compared": f"{now} {what}: {comparison.verdict} (evaluation run {comparison.run_id})"})


def require_evidence(model_type: str, version: str, eval_data: str | None = None,
                     experiment_name: str = config.EXPERIMENT_NAME) -> Comparison:
    """Compare `version` with the champion; a RegistryError, with the verdict, unless the verdict is promote."""
    name = registry.registered_name(model_type)
    champion = _alias(name, config.CHAMPION)
    if champion is None:
        raise RegistryError(f"{name} has no champion to compare version {version} with; promote it without "
                            f"-P require_significance=true")
    if str(champion.version) == str(version):
        raise RegistryError(f"version {version} of {name} is already the champion")
    comparison = compare(model_type, (str(champion.version), str(version)), eval_data, experiment_name)
    if comparison.verdict != PROMOTE:
        raise RegistryError(f"version {version} not promoted: the evidence does not show it is better than champion "
                            f"version {champion.version} (evaluation run {comparison.run_id})\n"
                            f"{comparison.verdict_line()}")
    return comparison
