"""Amount prediction: what amount is normal for this transaction?

Learns the signed amount from description + reference text, category (when given),
payment method, type and date parts, never from the amount itself. Regressors work
in signed-log space (amounts are heavy-tailed; the median of a log is the median of
the amount), and a split-conformal interval on a later calibration slice gives the
stated coverage: a multiplicative band, narrow for a coffee and wide for a flight.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import sklearn
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.pipeline import Pipeline
from sklearn.utils.extmath import safe_sparse_dot
from xgboost import XGBRegressor

from pyfunc_models import config
from pyfunc_models.features import (LeanPipeline, columns_selected, lean, merchant_keys, predict_in_one_thread,
                                    transaction_features)
from pyfunc_models.ledger import LedgerError, request_rows, signed_by_type
from pyfunc_models.predictor import LedgerPredictor, baseline_metrics
from pyfunc_models.splits import time_split
from pyfunc_models.task import Gate, Monitoring, Option, Purpose, Sample, Watch, Watched
from pyfunc_models.training import Candidate, NotEnoughData, RowTask, TrainingOutcome, fit_candidate

DEFAULT_LEVEL = 0.9
LEVEL_RANGE = (0.5, 0.99)
TREE_TEXT_FEATURES = 2_000
DEFAULT_MAX_TREE_ROWS = 50_000
DEFAULT_MAX_SEARCH_ROWS = 100_000  # candidates are compared on at most this many recent training rows
MIN_TRAINING_ROWS = 50  # past, test and a calibration slice each need a few rows
CALIBRATION_FRACTION = 0.2  # the latest share of the training past, held back to calibrate the interval


def signed_log(amount):
    return np.sign(amount) * np.log1p(np.abs(amount))


def signed_exp(value):
    return np.sign(value) * np.expm1(np.abs(value))


def _log_target(regressor) -> TransformedTargetRegressor:
    return TransformedTargetRegressor(regressor=regressor, func=signed_log, inverse_func=signed_exp,
                                      check_inverse=False)


def _is_log_ridge(final) -> bool:
    """Whether `final` is a fitted _log_target(Ridge) of one target, as the ridge candidate fits it."""
    return (type(final) is TransformedTargetRegressor and final.inverse_func is signed_exp
            and type(getattr(final, "regressor_", None)) is Ridge and final.regressor_.coef_.ndim == 1)


def expected_amounts(pipeline, rows: pd.DataFrame) -> np.ndarray:
    """`pipeline.predict(rows)`, number for number, by the cheapest path: `features.lean`, and where the pipeline
    ends in _log_target(Ridge), the ridge's own product (safe_sparse_dot of the features and coef_, plus the
    intercept: Ridge's decision function without its per-call input checks, 0.18 ms of a one-row request) and then
    signed_exp, the inverse TransformedTargetRegressor applies.

    scikit-learn's parameter validation and finiteness checks are off meanwhile (0.3 ms of a one-row request, in the
    TF-IDF vectorisers): the rows come through the ledger contract (dates and texts always filled, the amount never
    read), so the features are finite and the parameters the fitted ones, and neither check could fire. The switch
    is scikit-learn's config_context, local to this thread and undone on return."""
    scorer = lean(pipeline)
    with sklearn.config_context(skip_parameter_validation=True, assume_finite=True):
        if isinstance(scorer, LeanPipeline) and _is_log_ridge(scorer.final):
            ridge = scorer.final.regressor_
            features = scorer.features.transform(rows)
            return signed_exp(safe_sparse_dot(features, ridge.coef_.T, dense_output=True) + ridge.intercept_)
        return scorer.predict(rows)


class GroupMedian(BaseEstimator, RegressorMixin):
    """Baseline: the median amount of the row's group in training, else of its type, else overall."""

    def __init__(self, group=None):
        self.group = group  # rows -> array of group keys (a module-level function, so the fitted object pickles)

    def fit(self, rows: pd.DataFrame, y=None):
        amounts = rows["amount"].to_numpy(dtype=float) if y is None else np.asarray(y, dtype=float)
        self.by_group_ = pd.Series(amounts).groupby(self.group(rows)).median().to_dict()
        self.by_type_ = pd.Series(amounts).groupby(rows["type"].to_numpy()).median().to_dict()
        self.overall_ = float(np.median(amounts))
        return self

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        return np.array([
            self.by_group_.get(group, self.by_type_.get(kind, self.overall_))
            for group, kind in zip(self.group(rows), rows["type"].to_numpy())
        ], dtype=float)


def category_of(rows):
    # No category is no group (None: groupby leaves it out): such a row gets its type's median. A group of its own
    # would mix income (never categorised) with an uncategorised expense, which got the payroll's median.
    categories = rows["category"].to_numpy(dtype=object)
    return np.where(categories != "", categories, None)


def merchant_of(rows):
    return merchant_keys(rows["description"])


class AmountPredictor(LedgerPredictor):
    """The served model: expected signed amount and a conformal interval; deviation when the amount is given."""

    required_columns = ("date", "description")
    missing_amount_ok = True
    only_read = True  # the prepared request holds only `read_columns`, when they are known

    @property
    def read_columns(self) -> tuple | None:
        """What the contract parses of a request: the required columns, type and amount (the answer reads them) and
        the columns the fitted features select; None, every column, for any other model. The others (status,
        receipt_url) are neither parsed nor kept (0.13 ms of a one-row request); an enumeration never refuses a row,
        so the answers and refusals are those of parsing every column, except that a list or object in one of them
        is no longer refused, as for the category model."""
        selected = columns_selected(self.pipeline)
        if selected is None:
            return None
        reads = selected | set(self.required_columns) | {"type", "amount"}
        return tuple(column for column in config.COLUMNS if column in reads)

    def __init__(self, pipeline, calibration_residuals: np.ndarray, level: float = DEFAULT_LEVEL,
                 usual_type: str = "expense", baselines: dict | None = None):
        self.pipeline = predict_in_one_thread(pipeline)
        self.baselines_ = baselines or {}  # fitted on the same past: the gate scores them on the model's rows
        self.usual_type = usual_type  # the training ledger's most common type, for rows that say neither
        # Absolute residuals in signed-log space on rows the pipeline never saw; sorted, so any level is a lookup.
        self.calibration_residuals = np.sort(np.abs(calibration_residuals))
        self.default_level = level

    def half_width(self, level: float) -> float:
        """Split-conformal quantile: the ceil((n+1)*level)-th smallest calibration residual."""
        n = len(self.calibration_residuals)
        rank = min(n, int(np.ceil((n + 1) * level)))
        return float(self.calibration_residuals[rank - 1])

    def predict(self, transactions: pd.DataFrame, level: float | None = None) -> pd.DataFrame:
        level = self.default_level if level is None else level
        if not LEVEL_RANGE[0] <= float(level) <= LEVEL_RANGE[1]:
            raise LedgerError(f"param 'level' is {level}; expected a coverage between {LEVEL_RANGE[0]} and "
                              f"{LEVEL_RANGE[1]}, e.g. 0.9")
        types = transactions["type"]
        kinds = types.to_numpy(dtype=object)
        unknown = kinds == config.UNKNOWN
        if unknown.any():  # no type and no amount: the sign would be a guess; the ledger's usual type is a better one
            transactions = transactions.assign(type=np.where(unknown, self.usual_type, kinds))
        # In float64: a forest's float32 answer rounded to cents as float32 is -31.649999618530273 in the JSON.
        center = signed_log(np.asarray(expected_amounts(self.pipeline, transactions), dtype=float))
        width = self.half_width(float(level))
        predicted = np.round(signed_exp(center), 2)
        lower, upper = np.round(signed_exp(center - width), 2), np.round(signed_exp(center + width), 2)
        actual = signed_by_type(transactions["amount"].to_numpy(dtype=float), types)  # as sent: unknown too
        missing = np.isnan(actual)
        deviation = np.where(missing, 0.0, np.round(actual - predicted, 2))
        outside = (actual < lower) | (actual > upper)
        return pd.DataFrame({
            "predicted_amount": predicted,
            "lower": lower,
            "upper": upper,
            # Rows sent without an amount get null here, not a made-up number.
            "deviation": pd.arrays.FloatingArray(deviation, missing),
            "outside_interval": pd.arrays.BooleanArray(outside, missing),
        })


def regression_metrics(y_true, y_pred) -> dict:
    y_true, y_pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    big = np.abs(y_true) >= 1
    return {
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "rmse": float(np.sqrt(mean_squared_error(y_true, y_pred))),
        "r2": float(r2_score(y_true, y_pred)),
        "mape": float(np.mean(np.abs((y_true[big] - y_pred[big]) / y_true[big]))) if big.any() else float("nan"),
    }


class AmountTask(RowTask):
    model_type = "amount"
    registered_name = "titans-finance-amount-prediction"
    target_column = "amount"
    purpose = Purpose(
        question="What amount is normal for this transaction?",
        answer="one answer per transaction: the expected signed amount and an interval at the `level` coverage; when "
               "the transaction's own amount is sent, how far it is from the expected one and whether it is outside "
               "the interval (null when it is not sent).",
        outputs="per row: `predicted_amount`, `lower`, `upper`, `deviation`, `outside_interval`",
        evaluated_on="its training run's held-out test rows, asked without their amounts")
    gate = Gate(key_metric="mae", greater_is_better=False, tolerance=0.05, relative=True,
                beat=("category_median",), floors={"mae": (None, False), "r2": (None, True)})
    serving_params = {"level": DEFAULT_LEVEL}
    options = (Option("max_tree_rows", DEFAULT_MAX_TREE_ROWS, "train tree candidates on at most this many recent "
                      "rows; 0: no cap", whole=True),
               Option("level", DEFAULT_LEVEL, "nominal interval coverage, the served default"))
    report_metrics = ("mae", "rmse", "r2", "mape", "interval_coverage")
    # The amount is what it predicts (its label, posted with the row); it reads the rest. MAE follows the largest
    # amounts; amount_bias (how much larger or smaller amounts are than predicted, as a share) sees prices move.
    monitoring = Monitoring(inputs=("description", "category", "payment_method", "type", "reference"),
                            labels=("amount",),
                            watched=(Watched("mae", False, relative=True), Watched("interval_coverage", True),
                                     Watched("amount_bias", False)))

    def __init__(self, max_tree_rows: int | None = DEFAULT_MAX_TREE_ROWS, level: float = DEFAULT_LEVEL,
                 max_search_rows: int | None = DEFAULT_MAX_SEARCH_ROWS):
        self.max_tree_rows = max_tree_rows or None  # 0: no cap
        self.max_search_rows = max_search_rows
        self.level = level
        self.serving_params = {"level": level}  # the served default is the level trained with

    def training_rows(self, ledger: pd.DataFrame) -> pd.DataFrame:
        rows = scored_rows(AmountPredictor.answerable(ledger, log=print))
        if len(rows) < MIN_TRAINING_ROWS:
            raise NotEnoughData(f"amount prediction needs at least {MIN_TRAINING_ROWS} transactions with a non-zero "
                                f"amount; the ledger has {len(rows)}")
        return rows

    def target(self, rows: pd.DataFrame) -> np.ndarray:
        return rows["amount"].to_numpy(dtype=float)

    def candidates(self, seed: int) -> list:
        def pipeline(regressor, text_features=40_000):
            features = transaction_features(text_features, use_amount=False, use_category=True)
            return Pipeline([("features", features), ("regressor", _log_target(regressor))])

        tree_params = {"text_features": TREE_TEXT_FEATURES, "max_rows": self.max_tree_rows}
        return [
            Candidate("ridge", pipeline(Ridge(alpha=1.0)), {"alpha": 1.0, "text_features": 40_000}),
            Candidate("random_forest",
                      pipeline(RandomForestRegressor(n_estimators=150, min_samples_leaf=2, max_features="sqrt",
                                                     n_jobs=-1, random_state=seed), TREE_TEXT_FEATURES),
                      {"n_estimators": 150, "min_samples_leaf": 2, "max_features": "sqrt", **tree_params},
                      self.max_tree_rows),
            Candidate("xgboost",
                      # One thread: two threads mostly wait for each other (benchmarks/RESULTS.md, "Measurements
                      # behind choices in the code").
                      pipeline(XGBRegressor(n_estimators=300, max_depth=8, learning_rate=0.1, max_bin=64,
                                            objective="reg:absoluteerror", tree_method="hist", n_jobs=1,
                                            random_state=seed), TREE_TEXT_FEATURES),
                      {"n_estimators": 300, "max_depth": 8, "learning_rate": 0.1, "objective": "reg:absoluteerror",
                       "n_jobs": 1, **tree_params}, self.max_tree_rows),
            # The naive baselines compete too, so the chosen model is never worse than them on validation.
            *self.baseline_candidates(),
        ]

    def metrics(self, rows, y_true, y_pred) -> dict:
        return regression_metrics(y_true, y_pred)

    def baseline_candidates(self) -> list:
        return [Candidate("category_median", GroupMedian(category_of), {"baseline": True}, baseline=True),
                Candidate("merchant_median", GroupMedian(merchant_of), {"baseline": True}, baseline=True)]

    def predictor(self, fitted, past: pd.DataFrame, chosen: Candidate) -> AmountPredictor:
        # Calibrate on the latest slice of the past with a twin fitted on what precedes it: residuals on unseen rows.
        fit_part, calibration = time_split(past, CALIBRATION_FRACTION)
        twin, _ = fit_candidate(self, chosen, fit_part)
        residuals = signed_log(self.target(calibration)) - signed_log(twin.predict(calibration))
        return AmountPredictor(fitted, residuals, self.level, usual_type=past["type"].value_counts().idxmax(),
                               baselines=self.baselines(past))

    def evidence(self, outcome: TrainingOutcome, chosen: Candidate, seed: int) -> None:
        y_test = self.target(outcome.test)
        scored = outcome.predictor.predict(outcome.test, level=self.level)
        inside = (y_test >= scored["lower"].to_numpy()) & (y_test <= scored["upper"].to_numpy())
        outcome.metrics["interval_coverage"] = float(inside.mean())
        outcome.metrics["interval_level"] = self.level
        outcome.metrics["interval_median_width"] = float(np.median(scored["upper"] - scored["lower"]))
        from pyfunc_models import plots  # matplotlib is for training runs only: a server never loads it

        outcome.artifacts["predicted_vs_actual.png"] = plots.predicted_vs_actual(
            y_test, outcome.test_predictions, scored["lower"].to_numpy(), scored["upper"].to_numpy(), self.level)


    def gate_metrics(self, predict, ledger: pd.DataFrame, **options) -> dict:
        return gate_metrics(predict, ledger)

    def monitored_rows(self, ledger: pd.DataFrame) -> pd.DataFrame:
        return scored_rows(AmountPredictor.answerable(ledger))

    def watch(self, predict, rows: pd.DataFrame, history: pd.DataFrame) -> Watch:
        answers = predict(request_rows(rows, drop=("amount",)))  # asked as the gate asks: without the amount
        predicted = answers["predicted_amount"].to_numpy(dtype=float)
        truth = rows["amount"].to_numpy(dtype=float)
        inside = (truth >= answers["lower"].to_numpy(dtype=float)) & (truth <= answers["upper"].to_numpy(dtype=float))
        columns = {"error": np.abs(truth - predicted), "inside": inside.astype(float),
                   "log_ratio": np.log1p(np.abs(truth)) - np.log1p(np.abs(predicted))}
        return Watch({"predicted_log_amount": np.log1p(np.abs(predicted))},
                     {"mae": Sample(columns, lambda c: float(np.mean(c["error"]))),
                      "interval_coverage": Sample(columns, lambda c: float(np.mean(c["inside"]))),
                      "amount_bias": Sample(columns, lambda c: float(np.expm1(abs(np.mean(c["log_ratio"])))))})


def scored_rows(ledger: pd.DataFrame) -> pd.DataFrame:
    """The rows an amount model learns from and is scored on: those that moved a non-zero amount, signed by their
    type (`signed_by_type`)."""
    rows = ledger[ledger["amount"] != 0]
    signed = signed_by_type(rows["amount"].to_numpy(dtype=float), rows["type"])
    return rows.assign(amount=signed).reset_index(drop=True)


def gate_metrics(predict, ledger: pd.DataFrame) -> dict:
    """Score any amount model on an evaluation ledger: it is asked without the amount it must predict."""
    rows = scored_rows(AmountPredictor.answerable(ledger))
    if rows.empty:
        raise LedgerError("the evaluation ledger has no non-zero amounts to score an amount model on")
    predicted = predict(request_rows(rows, drop=("amount",)))["predicted_amount"].to_numpy(dtype=float)
    truth = rows["amount"].to_numpy(dtype=float)

    def metrics(answers):
        return regression_metrics(truth, answers)

    return {**metrics(predicted), **baseline_metrics(predict, rows, metrics)}
