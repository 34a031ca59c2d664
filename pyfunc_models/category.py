"""Category prediction: which bookkeeping category is this expense?

Learns from description + reference text, amount, payment method, type and date
parts. The predictor answers with the category, its probability and the top-k
alternatives, for any batch of raw transactions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, classification_report, f1_score
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from xgboost import XGBClassifier

from pyfunc_models import config
from pyfunc_models.features import (EncodedLabels, TransactionText, columns_read, lean, merchant_keys,
                                    predict_in_one_thread, transaction_features)
from pyfunc_models.ledger import LedgerError, request_rows
from pyfunc_models.predictor import LedgerPredictor, baseline_metrics
from pyfunc_models.splits import merchant_groups, merchant_split
from pyfunc_models.task import Gate, Monitoring, Option, Purpose, Sample, Watch, Watched
from pyfunc_models.training import (Candidate, NotEnoughData, RowTask, TrainingOutcome, fit_candidate,
                                    require_classes, select_candidates)
from pyfunc_models.word_knowledge import SOURCES, WordKnowledge

MAX_TOP_K = 20
DEFAULT_TOP_K = 3
TREE_TEXT_FEATURES = 2_000  # trees cannot use 80k sparse n-grams in reasonable time; the linear model can
DEFAULT_MAX_TREE_ROWS = 30_000
DEFAULT_MAX_LINEAR_ROWS = 200_000  # its fit grows with rows x classes (benchmarks/RESULTS.md, measured choices)
DEFAULT_MAX_SEARCH_ROWS = 100_000  # candidates are compared, and the merchant hold-out refit, on this many rows
HELD_OUT_MERCHANT_SHARE = 0.2
MIN_TRAINING_ROWS = 20  # enough for a test slice and rolling-origin validation folds of a few rows each


class MajorityCategory(BaseEstimator, ClassifierMixin):
    """Baseline: always the most frequent category of the training rows (probabilities: their shares)."""

    def fit(self, rows: pd.DataFrame, y=None):
        categories = rows["category"].to_numpy(dtype=object) if y is None else np.asarray(y, dtype=object)
        self.classes_, counts = np.unique(categories, return_counts=True)
        self.prior_ = counts / counts.sum()
        return self

    def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
        return np.tile(self.prior_, (len(rows), 1))

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(rows), axis=1)]


class MerchantLookup(MajorityCategory):
    """Baseline: the categories a merchant had in training (by its two-word key, then its first word), as
    shares of its rows; a merchant never seen gets the ledger's category shares."""

    def _counts_by(self, keys, categories) -> dict:
        frame = pd.DataFrame({"key": keys, "column": pd.Categorical(categories, categories=self.classes_).codes})
        table = pd.crosstab(frame["key"], frame["column"]).reindex(columns=range(len(self.classes_)), fill_value=0)
        return dict(zip(table.index, table.to_numpy(dtype=float)))

    def fit(self, rows: pd.DataFrame, y=None):
        super().fit(rows, y)
        categories = rows["category"].to_numpy(dtype=object) if y is None else np.asarray(y, dtype=object)
        keys = merchant_keys(rows["description"])
        self.by_name_ = self._counts_by(keys, categories)
        self.by_first_word_ = self._counts_by([key.split(" ")[0] for key in keys], categories)
        return self

    def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
        counts = [self.by_name_.get(key, self.by_first_word_.get(key.split(" ")[0]))
                  for key in merchant_keys(rows["description"])]
        return np.array([self.prior_ if c is None else c / c.sum() for c in counts]).reshape(len(rows), -1)

    def knows(self, rows: pd.DataFrame) -> np.ndarray:
        """Per row, whether its merchant was seen in training (by its two-word key or its first word)."""
        return np.array([key in self.by_name_ or key.split(" ")[0] in self.by_first_word_
                         for key in merchant_keys(rows["description"])], dtype=bool)


class MerchantMemory(BaseEstimator, ClassifierMixin):
    """A classifier plus what the training ledger says of each merchant it has seen.

    For a merchant seen n times in training, its category counts and the classifier's probabilities are pooled as
    if the classifier were one more row: (counts + p) / (n + 1). A merchant seen often is answered as it was
    booked; one never seen gets the classifier's answer alone. Nothing is tuned: the weights are the counts.
    """

    def __init__(self, estimator=None):
        self.estimator = estimator

    def fit(self, rows: pd.DataFrame, y):
        self.estimator_ = clone(self.estimator).fit(rows, y)
        self.classes_ = np.asarray(self.estimator_.classes_, dtype=object)
        self.memory_ = MerchantLookup().fit(rows, y)
        if not np.array_equal(self.memory_.classes_, self.classes_):
            raise ValueError("the classifier and the merchant memory disagree on the categories")
        return self

    def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
        model = lean(self.estimator_).predict_proba(rows)
        memory = self.memory_
        for i, key in enumerate(merchant_keys(rows["description"])):
            counts = memory.by_name_.get(key, memory.by_first_word_.get(key.split(" ")[0]))
            if counts is not None:
                model[i] = (counts + model[i]) / (counts.sum() + 1.0)
        return model

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(rows), axis=1)]


def merchant_memory(fitted) -> MerchantLookup | None:
    """What a fitted candidate remembers of the merchants it was trained on (None: a model that remembers none)."""
    if isinstance(fitted, MerchantLookup):
        return fitted
    return getattr(fitted, "memory_", None)


def description_text_features(max_text_features: int = 40_000) -> FeatureUnion:
    """The description alone, as word 1-2-grams and character 2-5-grams (min_df 1: a tiny ledger still has a
    vocabulary)."""
    def vectoriser(**options):
        return make_pipeline(TransactionText(columns=("description",)),
                             TfidfVectorizer(sublinear_tf=True, max_features=max_text_features, **options))

    return FeatureUnion([("words", vectoriser(ngram_range=(1, 2))),
                         ("characters", vectoriser(analyzer="char_wb", ngram_range=(2, 5)))])


def text_logistic_regression() -> Pipeline:
    return Pipeline([("features", description_text_features()),
                     ("classifier", LogisticRegression(C=10.0, max_iter=2000))])


# Where a row's answer came from (the served `answered_from`): its merchant's booked categories pooled with the
# classifier; for a merchant never seen, the description's words read with word knowledge, or the classifier alone
# (a model trained with word_knowledge=0, or before it existed).
MERCHANT_HISTORY, DESCRIPTION_WORDS, CLASSIFIER = "merchant_history", "description_words", "classifier"


class CategoryPredictor(LedgerPredictor):
    """The served model: raw transactions in; category, confidence and top-k alternatives out.

    It learned expense categories only, so an income row (type income, credit, ..., or no type and an amount that
    is not negative: see `ledger.prepare_ledger`) is answered for what it is: category null, confidence null, no
    alternatives, rather than the expense category it least resembles.
    """

    input_columns = tuple(c for c in config.COLUMNS if c != "category")
    word_knowledge = None  # predictors pickled before issue 17 have none

    def __init__(self, pipeline: Pipeline, baselines: dict | None = None, word_knowledge: WordKnowledge | None = None):
        self.pipeline = predict_in_one_thread(pipeline)
        self.categories = np.asarray(pipeline.classes_, dtype=object)
        self.baselines_ = baselines or {}  # fitted on the same past: the gate scores them on the model's rows
        self.word_knowledge = word_knowledge

    @property
    def read_columns(self) -> tuple | None:
        """What the contract parses of a request: the required columns, type (an income row is answered as such) and
        what the model reads, for a merchant memory around the description's text model (with or without word
        knowledge, which reads the description too); None, every column, for any other model. A row's other columns
        are neither parsed nor kept (0.1 to 0.2 ms of a one-row request), and none of them can refuse a request."""
        reads = columns_read(self.pipeline.estimator_) if isinstance(self.pipeline, MerchantMemory) else None
        if reads is None:
            return None
        reads = reads | set(self.required_columns) | {"type", "description"}
        return tuple(column for column in config.COLUMNS if column in reads)

    only_read = True

    def warm(self) -> None:
        """LedgerPredictor.warm (the example's merchants are never seen: word knowledge's encoder session and text
        model, about 7 ms each), then the classifier's own path, which a merchant seen in training takes."""
        super().warm()
        self.pipeline.predict_proba(self.prepare(self.example()))

    def probabilities(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(probability of each category, where the answer came from) per row: rows of a merchant seen in training
        from the classifier and its history; the others from word knowledge when the model has it."""
        memory = merchant_memory(self.pipeline)
        seen = memory.knows(rows) if memory is not None else np.zeros(len(rows), dtype=bool)
        answered_from = np.where(seen, MERCHANT_HISTORY,
                                 DESCRIPTION_WORDS if self.word_knowledge else CLASSIFIER).astype(object)
        if self.word_knowledge is None or seen.all():
            return self.pipeline.predict_proba(rows), answered_from
        probabilities = np.empty((len(rows), len(self.categories)))
        if seen.any():
            probabilities[seen] = self.pipeline.predict_proba(rows.iloc[np.flatnonzero(seen)])
        probabilities[~seen] = self.word_knowledge.predict_proba(rows.iloc[np.flatnonzero(~seen)])
        return probabilities, answered_from

    def predict(self, transactions: pd.DataFrame, top_k: int | None = DEFAULT_TOP_K) -> pd.DataFrame:
        top_k = DEFAULT_TOP_K if top_k is None else top_k  # a null param is the default, as for the other models
        if not 1 <= int(top_k) <= MAX_TOP_K:
            raise LedgerError(f"param 'top_k' is {top_k}; expected a whole number from 1 to {MAX_TOP_K}")
        top_k = min(int(top_k), len(self.categories))
        count = len(transactions)
        expenses = np.flatnonzero(transactions["type"].to_numpy(dtype=object) != "income")
        # None, in object columns: pandas' default string dtype would make a missing category NaN, which MLflow
        # writes into the JSON answer as a bare NaN.
        category = np.full(count, None, dtype=object)
        confidence, no_confidence = np.zeros(count), np.ones(count, dtype=bool)
        alternatives = np.empty(count, dtype=object)
        alternatives[:] = [[] for _ in range(count)]
        answered_from = np.full(count, None, dtype=object)
        if len(expenses):
            rows = transactions if len(expenses) == count else transactions.iloc[expenses]
            probabilities, answered_from[expenses] = self.probabilities(rows)
            order = np.argsort(-probabilities, axis=1, kind="stable")[:, :top_k]
            # Built from plain lists (a numpy scalar per cell would cost microseconds each at 10k rows).
            names = self.categories[order].tolist()
            chances = np.round(np.take_along_axis(probabilities, order, axis=1), 6).tolist()
            category[expenses] = [str(row_names[0]) for row_names in names]
            confidence[expenses] = probabilities[np.arange(len(order)), order[:, 0]]
            no_confidence[expenses] = False
            alternatives[expenses] = [
                [{"category": name, "probability": chance} for name, chance in zip(row_names, row_chances)]
                for row_names, row_chances in zip(names, chances)
            ]
        return self.answer(category, pd.arrays.FloatingArray(confidence, no_confidence), alternatives, answered_from)

    # Made once: a column Index built from names costs about 60 microseconds a frame (pandas' string dtype).
    answer_columns = pd.Index(["category", "confidence", "alternatives", "answered_from"])

    @classmethod
    def answer(cls, category, confidence, alternatives, answered_from) -> pd.DataFrame:
        """The answer frame: object columns (a missing category is None, not NaN) and confidence as Float64 (missing
        is null in the JSON answer). Made as one object block, then the Float64 column: a quarter of the cost of a
        frame of four Series at one row."""
        block = np.empty((len(category), len(cls.answer_columns)), dtype=object)
        block[:, 0], block[:, 2], block[:, 3] = category, alternatives, answered_from
        frame = pd.DataFrame(block, columns=cls.answer_columns, dtype=object, copy=False)
        frame["confidence"] = confidence
        return frame



class CategoryTask(RowTask):
    model_type = "category"
    registered_name = "titans-finance-category-prediction"
    target_column = "category"
    purpose = Purpose(
        question="Which bookkeeping category is this expense?",
        answer="one answer per transaction: its category, the confidence in it, the `top_k` most likely "
               "categories as alternatives, and where the answer came from (`answered_from`: `merchant_history` for "
               "a merchant seen in training; `description_words` for one never seen, read with the sentence "
               "encoder's word knowledge). It learned expense categories only: an income row is answered with "
               "category null, confidence null and no alternatives.",
        outputs="per row: `category`, `confidence`, `alternatives` (top-k), `answered_from`",
        evaluated_on="its training run's held-out test rows (the latest categorised expenses)")
    gate = Gate(key_metric="macro_f1", greater_is_better=True, tolerance=0.01, relative=False,
                beat=("majority",), match=("merchant_lookup",),
                floors={"macro_f1": (None, True), "accuracy": (None, True)})
    serving_params = {"top_k": DEFAULT_TOP_K}
    options = (Option("max_tree_rows", DEFAULT_MAX_TREE_ROWS, "train tree candidates on at most this many recent "
                      "rows; 0: no cap", whole=True),
               Option("word_knowledge", 1, "1: answer merchants never seen in training from what their description's "
                      "words mean (a sentence encoder inside the model, 59 MB; fetched once per machine); 0: the "
                      "classifier alone", whole=True))
    baseline_margin = gate.tolerance  # the gate's tolerance against the merchant lookup
    report_metrics = ("accuracy", "macro_f1", "weighted_f1",
                      "merchant_holdout_accuracy", "merchant_holdout_macro_f1")
    rows_name = "categorised expense rows"
    # Macro-F1 on a month is an average over the categories that month happens to have (one row can be one class):
    # reported beside accuracy, which decides.
    monitoring = Monitoring(inputs=("description", "amount", "payment_method", "reference"), labels=("category",),
                            watched=(Watched("accuracy", True), Watched("macro_f1", True, decides=False)))

    def __init__(self, max_tree_rows: int | None = DEFAULT_MAX_TREE_ROWS, only=None,
                 max_search_rows: int | None = DEFAULT_MAX_SEARCH_ROWS,
                 max_linear_rows: int | None = DEFAULT_MAX_LINEAR_ROWS, word_knowledge: int = 1):
        self.max_tree_rows = max_tree_rows or None  # 0: no cap
        self.word_knowledge = bool(word_knowledge)
        self.max_linear_rows = max_linear_rows
        self.max_search_rows = max_search_rows
        self.only = tuple(only) if only else None  # candidate names to try (default: all)

    def training_rows(self, ledger: pd.DataFrame) -> pd.DataFrame:
        rows = categorised_expenses(CategoryPredictor.answerable(ledger, log=print))
        if len(rows) < MIN_TRAINING_ROWS:
            raise NotEnoughData(f"category prediction needs at least {MIN_TRAINING_ROWS} expense rows with a category "
                                f"(type Expense, debit or a negative amount, and a non-empty 'category'); the ledger "
                                f"has {len(rows)}")
        require_classes(rows["category"])
        return rows.reset_index(drop=True)

    def target(self, rows: pd.DataFrame) -> np.ndarray:
        return rows["category"].to_numpy(dtype=object)

    def classes(self, rows: pd.DataFrame) -> int:
        return int(rows["category"].nunique())

    def candidates(self, seed: int) -> list:
        def pipeline(classifier, text_features=40_000):
            return MerchantMemory(Pipeline([("features", transaction_features(text_features)),
                                            ("classifier", classifier)]))

        candidates = [
            Candidate("text_logistic_regression", MerchantMemory(text_logistic_regression()),
                      {"C": 10.0, "features": "description word 1-2-grams + char 2-5-grams",
                       "max_rows": self.max_linear_rows},
                      self.max_linear_rows),
            Candidate("logistic_regression",
                      pipeline(LogisticRegression(C=20.0, max_iter=2000)),
                      {"C": 20.0, "text_features": 40_000, "max_rows": self.max_linear_rows},
                      self.max_linear_rows),
            Candidate("random_forest",
                      pipeline(RandomForestClassifier(n_estimators=200, n_jobs=-1, random_state=seed),
                               TREE_TEXT_FEATURES),
                      {"n_estimators": 200, "text_features": TREE_TEXT_FEATURES, "max_rows": self.max_tree_rows},
                      self.max_tree_rows),
            Candidate("xgboost",
                      # One thread: one small tree per class and round spends more time syncing threads than
                      # building; two threads were 5x slower (CPU and wall) than one on a busy 2-core machine.
                      pipeline(EncodedLabels(XGBClassifier(n_estimators=80, max_depth=6, learning_rate=0.3,
                                                           max_bin=32, colsample_bytree=0.5, tree_method="hist",
                                                           n_jobs=1, random_state=seed)),
                               TREE_TEXT_FEATURES),
                      {"n_estimators": 80, "max_depth": 6, "learning_rate": 0.3, "colsample_bytree": 0.5,
                       "text_features": TREE_TEXT_FEATURES, "max_rows": self.max_tree_rows, "n_jobs": 1},
                      self.max_tree_rows),
            # The naive baselines compete too, so the chosen model is never worse than them on validation.
            *self.baseline_candidates(),
        ]
        return select_candidates(candidates, self.only)

    def metrics(self, rows, y_true, y_pred) -> dict:
        return {
            "accuracy": float(accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
            "weighted_f1": float(f1_score(y_true, y_pred, average="weighted", zero_division=0)),
        }

    def baseline_candidates(self) -> list:
        return [Candidate("merchant_lookup", MerchantLookup(), {"baseline": True}, baseline=True),
                Candidate("majority", MajorityCategory(), {"baseline": True}, baseline=True)]

    def predictor(self, fitted, past, chosen) -> CategoryPredictor:
        return CategoryPredictor(fitted, baselines=self.baselines(past), word_knowledge=self.learn_words(fitted, past))

    def learn_words(self, fitted, past: pd.DataFrame) -> WordKnowledge | None:
        """Word knowledge for merchants `fitted` never saw, learnt from the same past (None when turned off)."""
        if not self.word_knowledge:
            return None
        return learn_word_knowledge(past, self.target(past), fitted.classes_)

    def test_predictions(self, predictor: CategoryPredictor, fitted, rows: pd.DataFrame) -> np.ndarray:
        return predictor.predict(rows)["category"].to_numpy(dtype=object)

    def evidence(self, outcome: TrainingOutcome, chosen: Candidate, seed: int) -> None:
        y_test = self.target(outcome.test)
        labels = sorted(set(y_test) | set(outcome.test_predictions))
        from pyfunc_models import plots  # matplotlib is for training runs only: a server never loads it

        outcome.artifacts["confusion_matrix.png"] = plots.confusion_matrix(y_test, outcome.test_predictions, labels)
        outcome.artifacts["classification_report.json"] = classification_report(
            y_test, outcome.test_predictions, labels=labels, output_dict=True, zero_division=0)
        outcome.artifacts["classification_report.txt"] = classification_report(
            y_test, outcome.test_predictions, labels=labels, zero_division=0)
        words = outcome.predictor.word_knowledge
        if words is not None:
            outcome.artifacts["category_glosses.json"] = {
                "what": "the text each category was read as, for merchants never seen (category_glosses.py; a "
                        "category it does not list is read by its name)",
                "encoder": words.encoder.source,
                "blend_weights": dict(zip(SOURCES, map(float, words.weights_))),
                "blend_weights_learnt_on_rows": words.blend_rows_,
                "glosses": dict(zip(map(str, words.classes_), words.glosses_))}

        # Merchants never seen in training: what a model that only memorises names cannot do.
        # A diagnostic, not the served model: fitted on at most max_search_rows recent known-merchant rows.
        rows = pd.concat([outcome.train, outcome.test], ignore_index=True)
        try:
            known, unseen = merchant_split(rows, HELD_OUT_MERCHANT_SHARE, seed)
            fitted, used = fit_candidate(self, chosen, known, self.max_search_rows)
        except ValueError as error:  # a tiny ledger: too few merchants or categories to hold some out
            outcome.params["merchant_holdout"] = f"skipped: {str(error).splitlines()[0]}"
            return
        outcome.params["merchant_holdout_train_rows"] = used
        y_unseen = self.target(unseen)
        known = known.iloc[-used:].reset_index(drop=True)
        answers = CategoryPredictor(fitted, word_knowledge=self.learn_words(fitted, known)).predict(unseen)
        for name, metric in self.metrics(unseen, y_unseen, answers["category"].to_numpy(dtype=object)).items():
            outcome.metrics[f"merchant_holdout_{name}"] = metric
        correct = answers["category"].to_numpy(dtype=object) == y_unseen
        confidence = answers["confidence"].to_numpy(dtype=float, na_value=np.nan)
        outcome.metrics.update({f"merchant_holdout_{name}": value
                                for name, value in calibration(confidence, correct).items()})
        chance = calibration_noise(confidence, merchant_groups(unseen["description"]))
        if np.isfinite(chance):  # none when no held-out row has a confidence (as calibration gives none)
            outcome.metrics["merchant_holdout_calibration_chance_gap"] = chance
        if self.word_knowledge:  # what the classifier alone did on the same rows: what word knowledge adds
            outcome.metrics["merchant_holdout_classifier_accuracy"] = float(np.mean(fitted.predict(unseen) == y_unseen))
        for name, baseline in self.baselines(known).items():
            for metric_name, value in self.metrics(unseen, y_unseen, baseline.predict(unseen)).items():
                outcome.baseline_metrics[name][f"merchant_holdout_{metric_name}"] = value
        outcome.metrics["merchant_holdout_rows"] = float(len(unseen))
        outcome.artifacts["calibration_unseen_merchants.png"] = plots.reliability(calibration_bins(confidence, correct))


    def gate_metrics(self, predict, ledger: pd.DataFrame, **options) -> dict:
        return gate_metrics(predict, ledger)

    def monitored_rows(self, ledger: pd.DataFrame) -> pd.DataFrame:
        rows = CategoryPredictor.answerable(ledger)
        return rows[rows["type"] != "income"].reset_index(drop=True)

    def watch(self, predict, rows: pd.DataFrame, history: pd.DataFrame) -> Watch:
        answers = predict(request_rows(rows, drop=("category",)))
        predicted = answers["category"].to_numpy(dtype=object)
        confidence = answers["confidence"].to_numpy(dtype=float, na_value=np.nan)
        truth = rows["category"].to_numpy(dtype=object)
        labelled = truth != ""
        samples = {}
        if labelled.any():
            columns = {"truth": truth[labelled], "predicted": predicted[labelled]}
            samples = {"accuracy": Sample(columns, lambda c: float(np.mean(c["truth"] == c["predicted"]))),
                       "macro_f1": Sample(columns, lambda c: macro_f1(c["truth"], c["predicted"]))}
        correct = np.where(labelled, (predicted == truth).astype(float), np.nan)
        return Watch({"predicted_category": predicted, "confidence": confidence}, samples, confidence, correct)


def macro_f1(truth, predicted) -> float:
    """sklearn's f1_score(average="macro", zero_division=0) over the labels in either array, in a few array
    operations (a bootstrap computes it hundreds of times)."""
    labels, codes = np.unique(np.concatenate([truth, predicted]).astype(str), return_inverse=True)
    true_codes, predicted_codes = codes[:len(truth)], codes[len(truth):]
    hits = np.bincount(true_codes[true_codes == predicted_codes], minlength=len(labels))
    totals = np.bincount(true_codes, minlength=len(labels)) + np.bincount(predicted_codes, minlength=len(labels))
    return float(np.mean(2 * hits / np.maximum(totals, 1)))


def learn_word_knowledge(rows: pd.DataFrame, y, classes) -> WordKnowledge:
    """The served model's word knowledge for `classes` (sorted), learnt from `rows` and their categories `y`: the
    sentence encoder, a description model, and each category's gloss (category_glosses)."""
    from pyfunc_models.category_glosses import gloss_for  # training only: a model carries the gloss vectors
    from pyfunc_models.encoder_build import sentence_encoder

    classes = np.asarray(classes, dtype=object)
    return WordKnowledge(sentence_encoder(), text_logistic_regression()).fit(
        rows, y, classes, [gloss_for(category)[0] for category in classes])


def calibration_bins(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> list:
    """(mean confidence, accuracy, rows) of equal-count bins of the rows ordered by confidence (rows without a
    confidence left out); fewer bins when a bin would have fewer than 10 rows."""
    keep = ~np.isnan(confidence)
    confidence, correct = confidence[keep], np.asarray(correct)[keep].astype(float)
    if not len(confidence):
        return []
    groups = np.array_split(np.argsort(confidence, kind="stable"), max(1, min(bins, len(confidence) // 10)))
    return [(float(confidence[g].mean()), float(correct[g].mean()), len(g)) for g in groups]


def calibration(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> dict:
    """How far confidence is from accuracy over `calibration_bins`: the largest |mean confidence - accuracy|
    (`calibration_max_gap`) and its row-weighted mean (`calibration_error`, the ECE)."""
    found = calibration_bins(confidence, correct, bins)
    if not found:
        return {}
    gaps = np.array([abs(mean - accuracy) for mean, accuracy, _ in found])
    sizes = np.array([rows for *_, rows in found])
    return {"calibration_max_gap": float(gaps.max()), "calibration_error": float((gaps * sizes).sum() / sizes.sum())}


def calibration_noise(confidence: np.ndarray, groups, bins: int = 10, draws: int = 400, seed: int = 0) -> float:
    """The worst-bin gap (`calibration_max_gap`) that chance alone gives a perfectly calibrated model on these rows:
    the 95th percentile over `draws` outcomes drawn with P(right) = confidence, all rows of one merchant group
    right or wrong together (one uniform draw per group; a row is right when the draw is below its confidence), as
    a held-out merchant's rows are. A bin of a handful of merchants moves by whole merchants, so a gap below this
    is what calibration can show on these merchants; a gap above it is miscalibration, not chance."""
    confidence = np.asarray(confidence, dtype=float)
    keep = ~np.isnan(confidence)
    confidence, groups = confidence[keep], np.asarray(groups, dtype=object)[keep]
    if not len(confidence):
        return float("nan")
    order = np.argsort(confidence, kind="stable")  # the bins of calibration_bins
    confidence, groups = confidence[order], groups[order]
    starts = np.array([part[0] for part in
                       np.array_split(np.arange(len(confidence)), max(1, min(bins, len(confidence) // 10)))])
    sizes = np.diff(np.append(starts, len(confidence)))
    _, codes = np.unique(groups.astype(str), return_inverse=True)
    right = np.random.default_rng(seed).random((draws, codes.max() + 1))[:, codes] < confidence
    gaps = np.abs(np.add.reduceat(right, starts, axis=1) / sizes - np.add.reduceat(confidence, starts) / sizes)
    return float(np.percentile(gaps.max(1), 95))


def categorised_expenses(ledger: pd.DataFrame) -> pd.DataFrame:
    return ledger[(ledger["type"] == "expense") & (ledger["category"] != "")]


def gate_metrics(predict, ledger: pd.DataFrame) -> dict:
    """Score any category model (its pyfunc `predict`) on an evaluation ledger's categorised expenses."""
    rows = categorised_expenses(CategoryPredictor.answerable(ledger))
    if rows.empty:
        raise LedgerError("the evaluation ledger has no categorised expense rows to score a category model on")
    predicted = predict(request_rows(rows, drop=("category",)))["category"].to_numpy()
    truth = rows["category"].to_numpy()

    def metrics(answers):
        return CategoryTask().metrics(rows, truth, answers)

    return {**metrics(predicted), **baseline_metrics(predict, rows.reset_index(drop=True), metrics)}
