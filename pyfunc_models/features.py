"""Feature steps as small scikit-learn transformers, composed into one ColumnTransformer.

Every step takes the canonical ledger (see `ledger.prepare_ledger`) and learns
only in `fit`, so a fitted pipeline is the whole preprocessing and pickles as one.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import LabelEncoder, OneHotEncoder, StandardScaler
from sklearn.utils.sparsefuncs_fast import inplace_csr_row_normalize_l2

from pyfunc_models.kept_beside import KeptBeside
from pyfunc_models.ledger import CharacterTable, fold_text

# Words that only say how the bank moved the money, not who was paid.
_BANK_NOISE = re.compile(
    r"\b(pos|purchase|visa|debit|card|checkcard|ach|pmt|online|sq|tst|www|com|inc|llc)\b"
)
_NOT_LETTERS = re.compile(r"[^a-z&]+")  # for ASCII text; other text goes through `_NON_ASCII_NOT_LETTERS`
_STATE_SUFFIX = re.compile(r"\s+[a-z]{2}$")
_PROCESSOR_PREFIX = re.compile(r"\b(sq|tst|sp|pp|paypal)\s?\*\s*")  # "SQ *BLUE BOTTLE": the processor, not the merchant


def _non_letter_to_space(character: str) -> str:
    # Letters of any script are kept, with the marks that spell them (Devanagari vowel signs); digits go.
    keep = character.isalpha() or character == "&" or unicodedata.category(character).startswith("M")
    return character if keep else " "


_NON_ASCII_NOT_LETTERS = CharacterTable(_non_letter_to_space)


def _letters(folded: str) -> str:
    """Every character that is not a letter (or '&') as a space."""
    if folded.isascii():
        return _NOT_LETTERS.sub(" ", folded)
    return folded.translate(_NON_ASCII_NOT_LETTERS)


def clean_text(text: str) -> str:
    """Case and accents folded, letters of any script kept, digits and punctuation removed (store numbers
    and order codes carry no category): 'CAFÉ Müller #12' -> 'cafe muller'."""
    return " ".join(_letters(fold_text(text)).split())


@lru_cache(maxsize=4096)  # a served category answer reads a row's merchant twice: is it known, what was it booked as
def merchant_key(description: str) -> str:
    """A merchant's name from a bank-style description: 'POS PURCHASE SHELL OIL #57444 SAN JOSE CA' -> 'shell oil'.

    Card-network prefixes, digits, order codes after '*' and a trailing state are dropped; case and accents
    are folded ('CAFÉ' and 'Cafe' are one merchant) and letters of any script kept;
    the first two remaining words name the merchant well enough to group its rows.
    """
    text = _PROCESSOR_PREFIX.sub(" ", fold_text(description)).split("*")[0]
    text = _BANK_NOISE.sub(" ", _letters(text))
    text = _STATE_SUFFIX.sub("", " ".join(text.split()))
    words = text.split()
    return " ".join(words[:2]) if words else ""


def merchant_keys(descriptions) -> np.ndarray:
    return np.array([merchant_key(text) for text in descriptions], dtype=object)


class TransactionText(BaseEstimator, TransformerMixin):
    """Description and reference as one cleaned string per transaction (empty text stays empty)."""

    def __init__(self, columns=("description", "reference")):
        self.columns = columns

    def fit(self, ledger, y=None):
        return self

    def transform(self, ledger):
        parts = [ledger[column].to_numpy(dtype=object) for column in self.columns]
        return [clean_text(" ".join(map(str, texts))) for texts in zip(*parts)]


class AmountParts(BaseEstimator, TransformerMixin):
    """Sign and log magnitude of the signed amount."""

    def fit(self, ledger, y=None):
        return self

    def transform(self, ledger):
        amount = ledger["amount"].to_numpy(dtype=float)
        return np.column_stack([np.sign(amount), np.log1p(np.abs(amount))])

    def get_feature_names_out(self, input_features=None):
        return np.array(["amount_sign", "amount_log"], dtype=object)


class LogAmount(AmountParts):
    """Log magnitude only, for binning."""

    def transform(self, ledger):
        return super().transform(ledger)[:, 1:]

    def get_feature_names_out(self, input_features=None):
        return np.array(["amount_log"], dtype=object)


class AmountBand(BaseEstimator, TransformerMixin):
    """Which band of the training amounts (log magnitude) a transaction falls in, one-hot: at most `bands`
    bands, each an equal share of the training rows.

    Where amounts repeat (a rent paid every month, a ledger of whole numbers) neighbouring quantiles coincide
    and the empty band between them is dropped, so a small ledger gets fewer bands, never an empty one. (This
    is scikit-learn's KBinsDiscretizer(strategy="quantile", quantile_method="averaged_inverted_cdf"), edges and
    all, without its warning for the dropped bands, which on a small ledger is expected, not a fault, and
    without its subsample of 200,000 rows drawn afresh at each fit.)
    """

    def __init__(self, bands: int = 12):
        self.bands = bands

    def fit(self, ledger, y=None):
        log_amount = LogAmount().transform(ledger)[:, 0]
        edges = np.percentile(log_amount, np.linspace(0, 100, self.bands + 1), method="averaged_inverted_cdf")
        edges = edges[np.ediff1d(edges, to_begin=np.inf) > 1e-8]  # coinciding quantiles: one edge
        self.inner_edges_ = edges[1:-1]
        return self

    def transform(self, ledger):
        band = np.searchsorted(self.inner_edges_, LogAmount().transform(ledger)[:, 0], side="right")
        rows = np.arange(len(band))
        return sparse.csr_matrix((np.ones(len(band)), (rows, band)), shape=(len(band), len(self.inner_edges_) + 1))

    def get_feature_names_out(self, input_features=None):
        return np.array([f"amount_band{k}" for k in range(len(self.inner_edges_) + 1)], dtype=object)


class DateParts(BaseEstimator, TransformerMixin):
    """Calendar position: weekday, day of month, month start/end, month of year."""

    names = ("weekday", "day_of_month", "month_start", "month_end", "month")

    def fit(self, ledger, y=None):
        return self

    def transform(self, ledger):
        dates = pd.DatetimeIndex(ledger["date"])
        return np.column_stack([
            dates.day_of_week,
            dates.day,
            dates.day <= 3,
            dates.days_in_month - dates.day < 3,
            dates.month,
        ]).astype(float)

    def get_feature_names_out(self, input_features=None):
        return np.array(self.names, dtype=object)


def transaction_features(max_text_features: int = 40_000, use_amount: bool = True,
                         use_category: bool = False) -> ColumnTransformer:
    """Text (word and character n-grams), calendar and enumerations, plus the amount (for models that
    may see it) and the category (for models that predict something else from it)."""
    words = make_pipeline(
        TransactionText(),
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=max_text_features),
    )
    characters = make_pipeline(
        TransactionText(columns=("description",)),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), min_df=3, sublinear_tf=True,
                        max_features=max_text_features),
    )
    calendar = make_pipeline(
        DateParts(),
        OneHotEncoder(handle_unknown="ignore", categories=[list(range(7)), list(range(1, 32)), [0, 1], [0, 1],
                                                           list(range(1, 13))]),
    )
    text_columns = ["description", "reference"]
    steps = [
        ("words", words, text_columns),
        ("characters", characters, text_columns),
        ("calendar", calendar, ["date"]),
        ("enums", OneHotEncoder(handle_unknown="ignore"), ["payment_method", "type"]),
    ]
    if use_amount:
        steps += [
            ("amount", make_pipeline(AmountParts(), StandardScaler()), ["amount"]),
            ("amount_band", AmountBand(bands=12), ["amount"]),
        ]
    if use_category:
        steps.append(("category", OneHotEncoder(handle_unknown="ignore"), ["category"]))
    return ColumnTransformer(steps, sparse_threshold=1.0)


class EncodedLabels(BaseEstimator, ClassifierMixin):
    """Lets a classifier that needs labels 0..K-1 (XGBoost) learn string categories."""

    def __init__(self, estimator=None):
        self.estimator = estimator

    def fit(self, X, y, **fit_params):
        self.encoder_ = LabelEncoder().fit(y)
        self.classes_ = self.encoder_.classes_
        self.estimator_ = clone(self.estimator).fit(X, self.encoder_.transform(y), **fit_params)
        return self

    def predict_proba(self, X):
        return self.estimator_.predict_proba(X)

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def predict_in_one_thread(estimator):
    """Make a fitted estimator (or pipeline) predict on the calling thread; returns it.

    A forest fitted with n_jobs=-1 also predicts through joblib's thread pool, tree by tree; on a
    one-row request the caller then spends most of its time in joblib's polling sleeps (measured in
    benchmarks/RESULTS.md, "Measurements behind choices in the code"). One thread gives the same numbers
    in a fraction of the time; a large batch is spread over cores by the batch-scoring job, not by the model.
    The fitted parts are reached through the object's attributes (`estimator_`, `steps`, `transformers_`,
    `regressor_`, ...): `get_params` would only reach the unfitted templates they were cloned from.
    """
    if isinstance(estimator, (list, tuple)):  # a pipeline's (name, step) pairs, a forest's trees, ...
        for part in estimator:
            predict_in_one_thread(part)
    elif isinstance(estimator, BaseEstimator):  # xgboost's scikit-learn wrappers too
        if getattr(estimator, "n_jobs", None) not in (None, 1):
            estimator.n_jobs = 1
        for value in vars(estimator).values():
            predict_in_one_thread(value)
    return estimator


class _OneHotLookup:
    """A fitted OneHotEncoder(handle_unknown="ignore")'s transform as dict lookups: a value it never saw is a row
    of zeros, as there. Given a ledger, it reads the columns it was fitted on by name."""

    def __init__(self, encoder: OneHotEncoder):
        self.names = list(getattr(encoder, "feature_names_in_", ()))
        self.codes = [dict(zip(values.tolist(), range(len(values)))) for values in encoder.categories_]
        self.offsets = np.cumsum([0] + [len(values) for values in encoder.categories_])

    def __call__(self, table) -> sparse.csr_matrix:
        if isinstance(table, pd.DataFrame):
            columns = [table[name].to_numpy(dtype=object).tolist() for name in self.names]
        else:
            columns = np.asarray(table, dtype=object).T.tolist()
        codes = np.array([[lookup.get(value, -1) for value in values] for lookup, values in zip(self.codes, columns)],
                         dtype=np.int64).reshape(len(columns), -1).T
        known = codes >= 0
        indptr = np.concatenate([[0], np.cumsum(known.sum(axis=1))])
        return sparse.csr_matrix((np.ones(int(indptr[-1])), (codes + self.offsets[:-1])[known], indptr),
                                 shape=(len(codes), int(self.offsets[-1])))


class _LeanDateParts:
    """A DateParts' transform with numpy's calendar arithmetic on the dates' datetime64 values (days since 1970, their
    month, its first day and the next's), the same numbers without a DatetimeIndex (0.17 -> 0.03 ms a row). Dates that
    are not plain datetime64 values, or missing ones, go through DateParts itself."""

    def __init__(self, parts: DateParts):
        self.parts = parts

    def __call__(self, ledger) -> np.ndarray:
        dates = ledger["date"].to_numpy()
        if dates.dtype.kind != "M" or np.isnat(dates).any():
            return self.parts.transform(ledger)
        days = dates.astype("datetime64[D]")
        months = days.astype("datetime64[M]")
        first = months.astype("datetime64[D]")
        day = (days - first).astype(np.int64) + 1
        length = ((months + 1).astype("datetime64[D]") - first).astype(np.int64)
        weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0, as pandas counts
        month = months.astype(np.int64) % 12 + 1
        return np.column_stack([weekday, day, day <= 3, length - day < 3, month]).astype(float)


def _compiled_step(step):
    """A fitted step as a function with the same output, cheaper where scikit-learn's own checks were the cost."""
    if (isinstance(step, OneHotEncoder) and step.handle_unknown == "ignore" and step.drop is None
            and step.min_frequency is None and step.max_categories is None and step.sparse_output):
        return _OneHotLookup(step)
    if isinstance(step, StandardScaler) and step.with_mean and step.with_std:
        mean, scale = step.mean_, step.scale_
        return lambda values: (values - mean) / scale
    if type(step) is DateParts:
        return _LeanDateParts(step)
    return step.transform


class CompiledFeatures:
    """A fitted `transaction_features` ColumnTransformer's transform, number for number, without scikit-learn's
    per-call machinery: each branch applied to the request (TF-IDF text branches through `LeanText`, the calendar in
    numpy, one-hot encoders as dict lookups, the scaler in numpy), then one sparse hstack, as the ColumnTransformer
    stacks them.

    At one row that machinery (column selection, input and feature-name checks, set_output wrappers, the encoders'
    validation) was most of the cost: the category model's features took 6.9 ms through the ColumnTransformer and
    1.9 ms compiled (issue 18).
    """

    def __init__(self, fitted: ColumnTransformer):
        self.branches = []  # (compiled steps, the branch's columns, or None where its first step reads them by name)
        for _, transformer, columns in fitted.transformers_:
            if transformer == "drop":
                continue
            if isinstance(transformer, Pipeline) and LeanText.handles([transformer]):
                # TransactionText and TF-IDF: the text path of `LeanText`, which reads its columns by name.
                self.branches.append(([LeanText([transformer]).matrix], None))
                continue
            steps = [step for _, step in transformer.steps] if isinstance(transformer, Pipeline) else [transformer]
            steps = [_compiled_step(step) for step in steps]
            # A first step that picks its columns by name from any ledger is given the whole request, not pandas'
            # copy of its columns (that copy was 40% of the compiled features' time at one row).
            first = getattr(steps[0], "__self__", steps[0])  # a bound `transform`: its transformer
            by_name = (isinstance(first, (TransactionText, AmountParts, AmountBand, DateParts, _LeanDateParts))
                       or isinstance(first, _OneHotLookup) and bool(first.names))
            self.branches.append((steps, None if by_name else columns))

    def transform(self, ledger: pd.DataFrame) -> sparse.csr_matrix:
        blocks = []
        for steps, columns in self.branches:
            block = ledger if columns is None else ledger[columns]
            for step in steps:
                block = step(block)
            blocks.append(block)
        return sparse.hstack(blocks, format="csr")


def forest_proba(forest: RandomForestClassifier, features) -> np.ndarray:
    """`forest.predict_proba(features)` as it is with n_jobs=1, bit for bit: the trees' probabilities summed in
    their order, then averaged; one call into each tree's arrays instead of a joblib task and input checks per tree
    (a 200-tree forest, one row: 9 ms through predict_proba with n_jobs=1, 0.9 ms here)."""
    features = sparse.csr_matrix(features, dtype=np.float32)  # what the forest's own check converts it to
    proba = np.zeros((features.shape[0], forest.n_classes_))
    for tree in forest.estimators_:
        proba += tree.tree_.predict(features)[:, :forest.n_classes_]
    proba /= len(forest.estimators_)
    return proba


class LeanPipeline:
    """A fitted Pipeline([("features", transaction_features(...)), (name, final)]) scored with the same numbers
    through `CompiledFeatures` (and `forest_proba` for a random forest)."""

    def __init__(self, pipeline: Pipeline):
        self.features = CompiledFeatures(pipeline[0])
        self.final = pipeline[-1]

    def predict_proba(self, ledger: pd.DataFrame) -> np.ndarray:
        features = self.features.transform(ledger)
        if isinstance(self.final, RandomForestClassifier):
            return forest_proba(self.final, features)
        return self.final.predict_proba(features)

    def predict(self, ledger: pd.DataFrame) -> np.ndarray:
        return self.final.predict(self.features.transform(ledger))


# Each fitted pipeline's LeanPipeline or UnionPipeline, made on its first prediction (see kept_beside).
_LEAN = KeptBeside()


class LeanText:
    """The parts of a fitted FeatureUnion that are each Pipeline(TransactionText(columns), TfidfVectorizer) on the same
    columns, as one step giving the matrix FeatureUnion.transform stacks, number for number.

    The text is cleaned once for all parts; each vectoriser's own analyzer reads it and its vocabulary (held with the
    block's offset in the union) counts the terms, sorted by column; then, as scikit-learn does, sublinear tf with
    numpy's log, the idf, and each row's block divided by its l2 norm with scikit-learn's own routine (a row's blocks
    laid out as rows of their own, so that one call normalises every block on its own).
    """

    def __init__(self, parts):
        self.text = parts[0][0]
        vectorisers = [part[-1] for part in parts]
        offsets = np.cumsum([0] + [len(vectoriser.vocabulary_) for vectoriser in vectorisers])
        self.width = int(offsets[-1])
        self.analysers = [vectoriser.build_analyzer() for vectoriser in vectorisers]
        self.vocabularies = [{term: int(column) + int(offset) for term, column in vectoriser.vocabulary_.items()}
                             for vectoriser, offset in zip(vectorisers, offsets)]
        # No idf is an idf of ones: multiplying by 1.0 changes no value.
        self.idf = np.concatenate([vectoriser.idf_ if vectoriser.use_idf else np.ones(len(vectoriser.vocabulary_))
                                   for vectoriser in vectorisers])
        self.sublinear = vectorisers[0].sublinear_tf
        self.l2 = vectorisers[0].norm == "l2"

    @staticmethod
    def handles(parts) -> bool:
        def plain_text(part) -> bool:
            return (isinstance(part, Pipeline) and len(part) == 2 and type(part[0]) is TransactionText
                    and isinstance(part[-1], TfidfVectorizer) and not part[-1].binary
                    and np.dtype(part[-1].dtype) == np.float64 and part[-1].norm in ("l2", None))

        return bool(parts) and all(plain_text(part) for part in parts) and len(
            {(tuple(part[0].columns), part[-1].sublinear_tf, part[-1].norm) for part in parts}) == 1

    def matrix(self, rows) -> sparse.csr_matrix:
        columns, counts, ends = [], [], [0]
        for text in self.text.transform(rows):
            for analyse, vocabulary in zip(self.analysers, self.vocabularies):
                found = Counter(map(vocabulary.get, analyse(text)))
                found.pop(None, None)  # terms the vocabulary does not have
                block = sorted(found)
                columns += block
                counts += map(found.__getitem__, block)
                ends.append(len(columns))
        columns = np.array(columns, dtype=np.int32)
        values = np.array(counts, dtype=np.float64)
        if self.sublinear:
            np.log(values, values)
            values += 1.0
        values *= self.idf[columns]
        # Each row's block of each vectoriser as a row of its own, for the l2 norm.
        blocks = sparse.csr_matrix((values, columns, np.array(ends, dtype=np.int32)), shape=(len(ends) - 1, self.width))
        if self.l2:
            inplace_csr_row_normalize_l2(blocks)
        parts = len(self.analysers)
        return sparse.csr_matrix((blocks.data, blocks.indices, blocks.indptr[::parts]),
                                 shape=(blocks.shape[0] // parts, self.width))


class LinearScores:
    """A fitted multinomial LogisticRegression's predict_proba on a CSR matrix, number for number, without its
    per-call checks: the same scipy product of the matrix and coef_.T (held C-ordered, which scipy reads without
    copying), the intercept, then softmax as scikit-learn computes it."""

    def __init__(self, classifier: LogisticRegression):
        self.coefficients = np.ascontiguousarray(classifier.coef_.T)
        self.intercept = classifier.intercept_

    @staticmethod
    def handles(classifier) -> bool:
        return (type(classifier) is LogisticRegression and len(classifier.classes_) > 2
                and classifier.coef_.ndim == 2 and classifier.coef_.dtype == np.float64)

    def decision(self, features: sparse.csr_matrix) -> np.ndarray:
        return features @ self.coefficients + self.intercept

    def predict_proba(self, features: sparse.csr_matrix) -> np.ndarray:
        scores = self.decision(features)
        scores -= scores.max(axis=1).reshape(-1, 1)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=1).reshape(-1, 1)
        return scores


class UnionPipeline:
    """A fitted Pipeline(FeatureUnion, classifier) scored with the same numbers: the union's parts called one after
    the other and stacked as FeatureUnion stacks them, without its joblib dispatch (about 1 ms a call); where the parts
    are the description's TF-IDF vectorisers (`LeanText`) and the classifier a logistic regression (`LinearScores`),
    without scikit-learn's per-call checks either (one row of the category model's text model: 1.3 ms -> 0.1 ms)."""

    def __init__(self, fitted: Pipeline):
        self.parts = [part for _, part in fitted[0].transformer_list]
        self.classifier = fitted[-1]
        self.classes_ = fitted.classes_
        self.text = LeanText(self.parts) if LeanText.handles(self.parts) else None
        self.linear = LinearScores(self.classifier) if LinearScores.handles(self.classifier) else None

    def _features(self, rows):
        if self.text is not None:
            return self.text.matrix(rows)
        return sparse.hstack([part.transform(rows) for part in self.parts]).tocsr()

    def predict_proba(self, rows) -> np.ndarray:
        if self.linear is not None:
            return self.linear.predict_proba(self._features(rows))
        return self.classifier.predict_proba(self._features(rows))

    def predict(self, rows) -> np.ndarray:
        if self.linear is not None:
            return self.classes_[np.argmax(self.linear.decision(self._features(rows)), axis=1)]
        return self.classifier.predict(self._features(rows))


def columns_read(fitted) -> set | None:
    """The ledger columns a fitted Pipeline(FeatureUnion of Pipeline(TransactionText, ...), classifier) reads: its
    TransactionTexts' columns. None for any other model: what it reads is not known here."""
    if not (isinstance(fitted, Pipeline) and isinstance(fitted[0], FeatureUnion)):
        return None
    parts = [part for _, part in fitted[0].transformer_list]
    if not parts or not all(isinstance(part, Pipeline) and type(part[0]) is TransactionText for part in parts):
        return None
    return {column for part in parts for column in part[0].columns}


def columns_selected(pipeline) -> set | None:
    """The ledger columns a fitted Pipeline(ColumnTransformer, ...) gives its branches (those it drops left out):
    all it can read. None for any other model: what it reads is not known here. (The amount model's; the category
    model reads only a description model's columns, `columns_read` above, and every column for any other.)"""
    if not (isinstance(pipeline, Pipeline) and isinstance(pipeline[0], ColumnTransformer)):
        return None
    selected = set()
    for _, transformer, columns in pipeline[0].transformers_:
        if isinstance(transformer, str) and transformer == "drop":
            continue
        if not (isinstance(columns, list) and all(isinstance(column, str) for column in columns)):
            return None
        selected.update(columns)
    return selected


def _is_plain_union(fitted) -> bool:
    return (isinstance(fitted, Pipeline) and len(fitted) == 2 and isinstance(fitted[0], FeatureUnion)
            and fitted[0].transformer_weights is None
            and all(part not in ("drop", "passthrough") for _, part in fitted[0].transformer_list))


def lean(fitted):
    """What scores `fitted` fastest with its own numbers: its LeanPipeline when it is a pipeline that starts with a
    sparse `transaction_features` ColumnTransformer, its UnionPipeline when it is a FeatureUnion and a classifier,
    else `fitted` itself."""
    if isinstance(fitted, Pipeline) and isinstance(fitted[0], ColumnTransformer) \
            and getattr(fitted[0], "sparse_output_", False):
        kind = LeanPipeline
    elif _is_plain_union(fitted):
        kind = UnionPipeline
    else:
        return fitted
    return _LEAN.get(fitted, kind)
