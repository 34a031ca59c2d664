"""The lean text path (issue 18): `features.LeanText` and `features.LinearScores` give the numbers scikit-learn gives.

The category champion of the quick start is TF-IDF (description word 1-2-grams and char_wb 2-5-grams) and a
logistic regression, scored through `features.UnionPipeline`. Its matrix must be FeatureUnion.transform's (the same
columns, values within 1e-12) and its probabilities the pipeline's (within 1e-9), on generated descriptions and on
text a ledger rarely has: accents, ligatures, other scripts, empty and whitespace-only text, repeated words, one
long description. On this machine both are exact (the same floating-point operations in the same order), and the
served answers are compared exactly.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from mlflow.pyfunc.scoring_server import predictions_to_json
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline

from pyfunc_models import category
from pyfunc_models.category import CategoryPredictor, categorised_expenses, text_logistic_regression
from pyfunc_models.features import LeanText, LinearScores, TransactionText, UnionPipeline, lean
from pyfunc_models.generator import generate_ledger
from pyfunc_models.ledger import prepare_ledger, request_rows

ODD_DESCRIPTIONS = [
    "CAFÉ MÜLLER Zürich #12", "café müller zurich", "कैफ़े दिल्ली 221", "", "   ", "12345 #99 ***",
    "東京 ラーメン 一蘭", "ΩMEGA ΣΤΑΘΜΟΣ Αθήνα", "МАГАЗИН ПРОДУКТЫ Москва", "مطعم القاهرة", "naïve façade crème brûlée",
    "x", "ß STRASSE Straße", "ﬁnance ﬀ oﬃce", "İSTANBUL ıspanak", "e\u0301cole e\u0300 ", "Ⅻ ½ ² ₂",
    "🍕 PIZZA 🍕 pizza", "coffee coffee coffee coffee", "shell shell oil oil oil",
    "A" * 3 + " " + "very long description " * 40, "AMZN Mktp US*2K3LL0 AMZN.COM/BILL WA", "sq *blue bottle coffee",
    "tab\tand\nnewline", "dash-and_underscore.dot",
]
# Words drawn from many scripts, some repeated within a description (so counts above one and sublinear tf are met).
_ALPHABET = list("abcdefghijklmnopqrstuvwxyzéèüöñçåøß&") + list("αβγδεζηθ") + list("абвгдежз") + \
    list("कखगघचछ") + list("東京大阪") + list("0123456789#*-./")


def random_descriptions(count: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    words = ["".join(rng.choice(_ALPHABET, size=rng.integers(1, 9))) for _ in range(60)]
    return [" ".join(rng.choice(words, size=rng.integers(1, 7))).upper() if i % 3 == 0
            else " ".join(rng.choice(words, size=rng.integers(1, 7))) for i in range(count)]


def with_descriptions(rows: pd.DataFrame, descriptions) -> pd.DataFrame:
    picked = rows.iloc[np.arange(len(descriptions)) % len(rows)].reset_index(drop=True)
    return picked.assign(description=list(descriptions))


@pytest.fixture(scope="module")
def ledger() -> pd.DataFrame:
    return prepare_ledger(generate_ledger(rows=3000, seed=23))[0]


@pytest.fixture(scope="module")
def past_and_requests(ledger):
    """Expenses to fit on, with random descriptions and every odd one among them (so their n-grams are in the
    vocabularies), and requests: later expenses, other random descriptions, then the odd ones again on other rows."""
    expenses = categorised_expenses(ledger).reset_index(drop=True)
    past = pd.concat([expenses.iloc[:1500], with_descriptions(expenses, random_descriptions(300, seed=1)),
                      with_descriptions(expenses, ODD_DESCRIPTIONS)], ignore_index=True)
    requests = pd.concat([expenses.iloc[1500:], with_descriptions(expenses.iloc[50:], random_descriptions(300, seed=2)),
                          with_descriptions(expenses.iloc[100:], ODD_DESCRIPTIONS)], ignore_index=True)
    return past, requests


def batches(requests: pd.DataFrame) -> list:
    """All the requests at once, and one row at a time: known descriptions and each odd one. (No rows: scikit-learn
    refuses them, the lean path answers with no rows.)"""
    odd = range(len(requests) - len(ODD_DESCRIPTIONS), len(requests))
    return [requests, *(requests.iloc[[row]] for row in (*range(20), *odd))]


def assert_close_matrix(lean_matrix, expected, tolerance=1e-12):
    assert lean_matrix.shape == expected.shape and lean_matrix.dtype == expected.dtype
    lean_matrix, expected = lean_matrix.tocsr(), expected.tocsr()
    lean_matrix.sort_indices()
    expected.sort_indices()
    assert np.array_equal(lean_matrix.indptr, expected.indptr) and np.array_equal(lean_matrix.indices, expected.indices)
    assert np.abs(lean_matrix.data - expected.data).max(initial=0.0) <= tolerance


UNIONS = {  # the category champion's own union, and others LeanText reads the same way
    "champion": lambda: category.description_text_features(),
    "no idf, raw tf": lambda: FeatureUnion([
        ("words", make_pipeline(TransactionText(columns=("description",)), TfidfVectorizer(use_idf=False))),
        ("characters", make_pipeline(TransactionText(columns=("description",)),
                                     TfidfVectorizer(analyzer="char", ngram_range=(1, 3), use_idf=False)))]),
    "no norm, stop words, description and reference": lambda: FeatureUnion([
        ("words", make_pipeline(TransactionText(), TfidfVectorizer(norm=None, sublinear_tf=True,
                                                                   stop_words=["coffee", "the"], min_df=2))),
        ("characters", make_pipeline(TransactionText(), TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 4),
                                                                        norm=None, sublinear_tf=True,
                                                                        max_features=500)))]),
}


@pytest.mark.parametrize("union", UNIONS)
def test_lean_text_is_the_feature_union(past_and_requests, union):
    past, requests = past_and_requests
    fitted = UNIONS[union]().fit(past)
    parts = [part for _, part in fitted.transformer_list]
    assert LeanText.handles(parts)
    text = LeanText(parts)
    for batch in batches(requests):
        assert_close_matrix(text.matrix(batch), fitted.transform(batch), tolerance=0.0)  # exact here


def test_lean_text_leaves_what_it_does_not_read_to_scikit_learn(past_and_requests):
    past, _ = past_and_requests

    def vectoriser(**options):
        return make_pipeline(TransactionText(columns=("description",)), TfidfVectorizer(**options))

    refused = {
        "binary counts": [vectoriser(binary=True)],
        "float32": [vectoriser(dtype=np.float32)],
        "l1 norm": [vectoriser(norm="l1")],
        "parts that disagree on sublinear tf": [vectoriser(), vectoriser(sublinear_tf=True)],
        "parts that read other columns": [vectoriser(), make_pipeline(TransactionText(), TfidfVectorizer())],
        "no parts": [],
    }
    for name, parts in refused.items():
        fitted = [part.fit(past) for part in parts]
        assert not LeanText.handles(fitted), name
    # A union LeanText refuses is still scored by its parts, with the same numbers.
    fitted = Pipeline([("features", FeatureUnion([("words", vectoriser(norm="l1"))])),
                       ("classifier", LogisticRegression(max_iter=500))]).fit(past, past["category"])
    scorer = UnionPipeline(fitted)
    assert scorer.text is None
    np.testing.assert_array_equal(scorer.predict_proba(past.iloc[:50]), fitted.predict_proba(past.iloc[:50]))


@pytest.fixture(scope="module")
def text_model(past_and_requests):
    past, _ = past_and_requests
    return text_logistic_regression().fit(past, past["category"])


@pytest.mark.slow  # fits the category's text model (seconds)
def test_union_pipeline_scores_as_the_fitted_pipeline(past_and_requests, text_model):
    _, requests = past_and_requests
    scorer = UnionPipeline(text_model)
    assert scorer.text is not None and scorer.linear is not None  # the lean path is the one tested
    for batch in batches(requests):
        assert_close_matrix(scorer._features(batch), text_model[0].transform(batch))
        lean_probabilities, probabilities = scorer.predict_proba(batch), text_model.predict_proba(batch)
        assert lean_probabilities.shape == probabilities.shape
        assert np.abs(lean_probabilities - probabilities).max(initial=0.0) <= 1e-9
        np.testing.assert_array_equal(lean_probabilities, probabilities)  # exact on this machine
        np.testing.assert_array_equal(scorer.predict(batch), text_model.predict(batch))
    assert scorer.predict_proba(requests.iloc[:0]).shape == (0, len(text_model.classes_))


def test_linear_scores_only_for_a_multinomial_logistic_regression(past_and_requests):
    past, _ = past_and_requests
    two_categories = past[past["category"].isin(sorted(set(past["category"]))[:2])]
    binary = text_logistic_regression().fit(two_categories, two_categories["category"])
    assert not LinearScores.handles(binary[-1])
    scorer = UnionPipeline(binary)
    assert scorer.linear is None and scorer.text is not None
    np.testing.assert_array_equal(scorer.predict_proba(past.iloc[:200]), binary.predict_proba(past.iloc[:200]))
    np.testing.assert_array_equal(scorer.predict(past.iloc[:200]), binary.predict(past.iloc[:200]))


def old_answer(category_, confidence, alternatives, answered_from) -> pd.DataFrame:
    """The answer frame as it was built before `CategoryPredictor.answer`: four Series, confidence a Float64 array."""
    floats = pd.array([None] * len(category_), dtype="Float64")
    known = ~np.asarray(confidence.isna())
    floats[known] = confidence[known]
    return pd.DataFrame({"category": pd.Series(category_, dtype=object), "confidence": floats,
                         "alternatives": pd.Series(alternatives, dtype=object),
                         "answered_from": pd.Series(answered_from, dtype=object)})


def served_json(frame: pd.DataFrame) -> str:
    out = io.StringIO()
    predictions_to_json(frame, out)  # what `mlflow models serve` writes for a returned DataFrame
    return out.getvalue()


@pytest.mark.slow  # fits the category's text model in a merchant memory (seconds)
def test_category_predictor_answers_as_the_fitted_pipeline(past_and_requests, text_model, monkeypatch):
    """The served answers, lean and through scikit-learn, exactly: known and never-seen merchants, income rows,
    odd text, every top_k; the frame and the JSON MLflow makes of it as the previous way of building it made them."""
    past, requests = past_and_requests
    requests = requests[requests["description"].str.strip() != ""]  # the contract refuses an empty description
    odd = [text for text in ODD_DESCRIPTIONS if text.strip()]
    predictor = CategoryPredictor(category.MerchantMemory(text_logistic_regression()).fit(past, past["category"]))
    raw = request_rows(requests.assign(type=np.where(np.arange(len(requests)) % 7 == 3, "income", "expense")),
                       drop=("category",))
    requests_ = [raw, *(raw.iloc[[row]] for row in (0, 3, *range(len(raw) - len(odd), len(raw))))]
    lean_answers = {(index, top_k): predictor.serve(request, {"top_k": top_k})
                    for index, request in enumerate(requests_) for top_k in (1, 3, 20)}
    assert lean(predictor.pipeline.estimator_).text is not None
    monkeypatch.setattr(category, "lean", lambda fitted: fitted)  # the fitted scikit-learn pipeline itself
    for (index, top_k), answers in lean_answers.items():
        expected = predictor.serve(requests_[index], {"top_k": top_k})
        pd.testing.assert_frame_equal(answers, expected, check_exact=True)
        rebuilt = old_answer(*(answers[column].array for column in CategoryPredictor.answer_columns))
        pd.testing.assert_frame_equal(answers, rebuilt, check_exact=True)
        assert served_json(answers) == served_json(rebuilt)
    answered = lean_answers[(0, 3)]
    assert answered["category"].isna().any() and answered["category"].notna().any()  # income rows and expenses


@pytest.mark.slow  # the category's text model of `text_model` (seconds)
def test_lean_scorer_is_built_once_and_not_pickled(text_model):
    import pickle

    assert lean(text_model) is lean(text_model)
    assert b"LeanText" not in pickle.dumps(text_model)
