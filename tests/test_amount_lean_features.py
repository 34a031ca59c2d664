"""Issue 18, amount: `features.CompiledFeatures` scores the text branches through `LeanText` and the calendar through
numpy's datetime64 arithmetic; the matrix must be the fitted ColumnTransformer's, exactly (the same floating-point
operations in the same order), on generated rows, odd text and dates over centuries. Speed is measured elsewhere."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pyfunc_models.features import CompiledFeatures, DateParts, LeanText, _LeanDateParts, transaction_features
from pyfunc_models.generator import generate_ledger
from pyfunc_models.ledger import prepare_ledger
from tests.test_lean_text import ODD_DESCRIPTIONS, assert_close_matrix, random_descriptions, with_descriptions


@pytest.fixture(scope="module")
def past_and_requests():
    ledger = prepare_ledger(generate_ledger(rows=2000, seed=31))[0]
    odd = with_descriptions(ledger, ODD_DESCRIPTIONS).assign(reference=lambda rows: rows["description"].str[::-1])
    past = pd.concat([ledger.iloc[:1200], with_descriptions(ledger, random_descriptions(200, seed=3)), odd],
                     ignore_index=True)
    requests = pd.concat([ledger.iloc[1200:], with_descriptions(ledger.iloc[40:], random_descriptions(100, seed=4)),
                          odd.assign(reference=""), odd], ignore_index=True)
    return past, requests


@pytest.mark.parametrize("options", [{"use_amount": False, "use_category": True}, {}, {"max_text_features": 300}])
def test_compiled_features_are_the_column_transformer(past_and_requests, options):
    past, requests = past_and_requests
    fitted = transaction_features(**options).fit(past)
    compiled = CompiledFeatures(fitted)
    lean_text = [steps for steps, _ in compiled.branches if isinstance(getattr(steps[0], "__self__", None), LeanText)]
    assert len(lean_text) == 2  # words and characters, each through LeanText
    assert any(isinstance(steps[0], _LeanDateParts) for steps, _ in compiled.branches)
    assert_close_matrix(compiled.transform(requests), fitted.transform(requests), tolerance=0.0)
    for row in (*range(10), *range(len(requests) - 2 * len(ODD_DESCRIPTIONS), len(requests))):
        one = requests.iloc[[row]]
        assert_close_matrix(compiled.transform(one), fitted.transform(one), tolerance=0.0)


def test_lean_date_parts_are_date_parts():
    days = pd.date_range("1899-12-25", "2101-01-07", freq="D")
    moments = days + pd.to_timedelta(np.arange(len(days)) % 86_400, unit="s")  # times of day, not only midnights
    parts = DateParts()
    for dates in (days, moments, days.as_unit("s"), days[[0]], days[:0]):
        ledger = pd.DataFrame({"date": dates})
        np.testing.assert_array_equal(_LeanDateParts(parts)(ledger), parts.transform(ledger))
    # What numpy cannot read as plain datetime64 values goes through DateParts itself.
    for dates in (pd.Series([pd.Timestamp("2024-02-29"), pd.NaT]), days[:40].tz_localize("Europe/Paris"),
                  pd.Series(days[:40].astype(str))):
        ledger = pd.DataFrame({"date": dates})
        np.testing.assert_array_equal(_LeanDateParts(parts)(ledger), parts.transform(ledger))
