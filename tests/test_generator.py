"""The sample-ledger generator: deterministic, realistic enough to be worth modelling, labels apart."""

import pandas as pd
import pytest

from pyfunc_models import config
from pyfunc_models.generator import generate_ledger
from pyfunc_models.ledger import prepare_ledger


@pytest.fixture(scope="module")
def sample():
    return generate_ledger(rows=5000, seed=3)


def test_same_seed_same_ledger_other_seed_other_ledger(sample):
    pd.testing.assert_frame_equal(sample, generate_ledger(rows=5000, seed=3))
    assert not sample.equals(generate_ledger(rows=5000, seed=4))


def test_titans_header_exact_row_count_and_date_order(sample):
    assert list(sample.columns) == list(config.TITANS_HEADER) + [config.ANOMALY_LABEL_HEADER]
    assert len(sample) == 5000
    assert sample["Date"].is_monotonic_increasing


def test_it_meets_the_ledger_contract_with_typos_corrected(sample):
    ledger, report = prepare_ledger(sample)
    assert report.corrected.get("payment_method")  # a few enum typos are there on purpose
    assert not report.unknown.get("payment_method")


def test_categories_merchants_and_income(sample):
    ledger, _ = prepare_ledger(sample)
    expenses = ledger[ledger["type"] == "expense"]
    assert expenses["category"].nunique() >= 20
    income = ledger[ledger["type"] == "income"]
    assert len(income) > 0 and (income["category"] == "").all()
    assert (expenses["amount"] < 0).all() and (income["amount"] > 0).all()
    assert expenses["description"].str.contains("#").any()  # store numbers
    assert expenses["description"].str.islower().any()  # case noise


def test_monthly_rent_and_payroll_rhythm(sample):
    ledger, _ = prepare_ledger(sample)
    rent = ledger[ledger["category"] == "rent"]
    assert (rent["date"].dt.day == 1).all() and len(rent) >= 6
    assert rent["amount"].nunique() == 1


def test_anomalies_are_labelled_in_their_own_column(sample):
    labels = sample[config.ANOMALY_LABEL_HEADER]
    counts = labels[labels != ""].value_counts()
    assert set(counts.index) == {"spike", "duplicate", "unusual_merchant"}
    assert counts.sum() == 50  # 1% of 5000
    duplicates = sample[labels == "duplicate"]
    for _, row in duplicates.head(5).iterrows():
        same = sample[(sample["Date"] == row["Date"]) & (sample["Description"] == row["Description"])
                      & (sample["Amount"] == row["Amount"])]
        assert len(same) >= 2


def test_too_few_rows_are_refused():
    with pytest.raises(ValueError, match="at least"):
        generate_ledger(rows=50)
    with pytest.raises(ValueError, match="too few"):
        generate_ledger(rows=300, days=3000)
