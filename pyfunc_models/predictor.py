"""What every served predictor shares: the columns it reads, and how a request becomes a canonical ledger.

A predictor is the fitted object inside a logged model (see serving.LedgerModel); each model module subclasses
this and adds `predict`. Training sets `date_order` to the order the training ledger's dates were read in, so
requests are read the same way unless they say otherwise (the `date_order` param).
"""

from __future__ import annotations

import pandas as pd

from pyfunc_models import config
from pyfunc_models.ledger import prepare_ledger


class LedgerPredictor:
    input_columns: tuple = config.COLUMNS
    required_columns: tuple = ("date", "description", "amount")
    nonempty_columns: tuple = ("description",)
    read_columns: tuple | None = None  # None: every column is checked; else only these are parsed
    missing_amount_ok: bool = False
    date_order: str = "auto"  # 'dmy' or 'mdy' when the training ledger decided it

    def prepare(self, raw: pd.DataFrame, date_order: str | None = None) -> pd.DataFrame:
        return prepare_ledger(raw, required=self.required_columns, nonempty=self.nonempty_columns,
                              columns=self.read_columns, missing_amount_ok=self.missing_amount_ok,
                              date_order=date_order or self.date_order)[0]


def learned_date_order(report) -> str:
    """The order a model keeps for its requests: the training ledger's, when its dates decided it (a guess made
    for an ambiguous column, or ISO dates, leave requests to decide for themselves)."""
    return report.date_order if report.date_order in ("dmy", "mdy") and not report.date_order_ambiguous else "auto"
