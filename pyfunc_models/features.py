"""Feature steps as small scikit-learn transformers, composed into one ColumnTransformer.

Every step takes the canonical ledger (see `ledger.prepare_ledger`) and learns
only in `fit`, so a fitted pipeline is the whole preprocessing and pickles as one.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import LabelEncoder, OneHotEncoder, StandardScaler

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
    """
    if not isinstance(estimator, BaseEstimator):  # not a scikit-learn estimator (xgboost's are): nothing to set
        return estimator
    params = estimator.get_params(deep=True)
    estimator.set_params(**{name: 1 for name, value in params.items()
                            if name.split("__")[-1] == "n_jobs" and value not in (None, 1)})
    return estimator
