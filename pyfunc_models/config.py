"""Names and numbers defined once: columns, enumerations, aliases, experiment.

Training, the served pyfunc, the registry logic and the tests all import from here. What makes up each model type
(its registered name, gate, ...) is its own class: see `task.py` and `model_types.py`.
"""

EXPERIMENT_NAME = "titans-finance-ml-models"

# The canonical transaction, snake_case, in the order of the Titans CSV export.
COLUMNS = (
    "date",
    "type",
    "description",
    "amount",
    "category",
    "payment_method",
    "status",
    "reference",
    "receipt_url",
)
# The Titans CSV export header, as the generator writes it.
TITANS_HEADER = (
    "Date",
    "Type",
    "Description",
    "Amount",
    "Category",
    "Payment Method",
    "Status",
    "Reference",
    "Receipt URL",
)
# Generator-only label column: injected anomaly kind, empty for normal rows.
# It is never a model feature and never part of a served signature.
ANOMALY_LABEL = "anomaly_label"
ANOMALY_LABEL_HEADER = "Anomaly Label"

# Other spellings seen in bank exports, mapped onto canonical columns
# (keys are already normalised: lower case, words joined by "_").
COLUMN_ALIASES = {
    "transaction_date": "date",
    "posted_date": "date",
    "posting_date": "date",
    "booking_date": "date",
    "transaction_type": "type",
    "debit_credit": "type",
    "memo": "description",
    "details": "description",
    "narrative": "description",
    "payee": "description",
    "value": "amount",
    "transaction_amount": "amount",
    "method": "payment_method",
    "payment_type": "payment_method",
    "ref": "reference",
    "reference_number": "reference",
    "receipt": "receipt_url",
    "anomaly": ANOMALY_LABEL,
}
# European banks' exports (German, French, Spanish, Italian, Dutch): the booking date, never the value date. A column
# named so gives way to one named in English (`Date` beside `Datum`: the English one is read).
OTHER_LANGUAGE_COLUMN_ALIASES = {
    "datum": "date",
    "buchungstag": "date",
    "buchungsdatum": "date",
    "date_operation": "date",
    "fecha": "date",
    "verwendungszweck": "description",
    "beschreibung": "description",
    "libelle": "description",
    "concepto": "description",
    "descrizione": "description",
    "omschrijving": "description",
    "naam_omschrijving": "description",
    "betrag": "amount",
    "montant": "amount",
    "importe": "amount",
    "importo": "amount",
    "bedrag": "amount",
    "kategorie": "category",
    "categorie": "category",
    "categoria": "category",
    "af_bij": "type",  # a Dutch bank's Af (money out) / Bij (money in) beside an unsigned amount
}

# An export without an amount column may write each amount in one of two columns, money out and money in (Debit
# and Credit, Paid out and Paid in, YNAB's Outflow and Inflow); the contract reads the pair as one signed amount.
# Names normalised as above; a currency code may follow ("Debit (EUR)": debit_eur).
MONEY_OUT_COLUMNS = ("debit", "debits", "debit_amount", "withdrawal", "withdrawals", "withdrawal_amount", "paid_out",
                     "money_out", "outflow", "amount_out", "soll")
MONEY_IN_COLUMNS = ("credit", "credits", "credit_amount", "deposit", "deposits", "deposit_amount", "paid_in",
                    "money_in", "inflow", "amount_in", "haben")
BALANCE_COLUMNS = ("balance", "running_balance", "account_balance")  # what such an export's amounts must add up to

# The enumerated columns: each has its canonical values and one table mapping every other spelling seen in
# exports (the Titans export and its sample, bank exports) onto one of them. Keys are normalised like column
# names (accents folded, lower case, words joined by "_"). A value that is none of these, nor a close typo,
# becomes UNKNOWN and is counted in the ledger report: an enumerated column never refuses a row.
TRANSACTION_TYPES = ("income", "expense")
TYPE_ALIASES = {
    # money in
    "credit": "income",
    "cr": "income",
    "deposit": "income",
    "inflow": "income",
    "incoming": "income",
    "money_in": "income",
    "paid_in": "income",
    "received": "income",
    "refund": "income",
    "reimbursement": "income",
    "revenue": "income",
    "transfer_in": "income",
    "bij": "income",  # Dutch: on (the account)
    # money out
    "debit": "expense",
    "af": "expense",  # Dutch: off (the account)
    "dr": "expense",
    "withdrawal": "expense",
    # Not "payment": on a card statement (Chase: Type Payment, +1500.00) it is money in, on a bank statement money
    # out; left unknown, the amount's sign says which.
    "sale": "expense",  # a card purchase (Chase)
    "pos": "expense",  # point of sale
    "direct_debit": "expense",
    "standing_order": "expense",
    "transfer_out": "expense",
    "outflow": "expense",
    "outgoing": "expense",
    "money_out": "expense",
    "paid_out": "expense",
    "purchase": "expense",
    "charge": "expense",
    "fee": "expense",
    "spending": "expense",
    "expenditure": "expense",
}
PAYMENT_METHODS = (
    "cash",
    "credit_card",
    "debit_card",
    "bank_transfer",
    "check",
    "digital_wallet",
    "other",
)
PAYMENT_METHOD_ALIASES = {
    "card": "credit_card",
    "credit": "credit_card",
    "cc": "credit_card",
    "visa": "credit_card",
    "mastercard": "credit_card",
    "amex": "credit_card",
    "american_express": "credit_card",
    "discover": "credit_card",
    "debit": "debit_card",
    "pos": "debit_card",  # point of sale: a card paid at the till
    "point_of_sale": "debit_card",
    "maestro": "debit_card",
    "atm": "cash",
    "atm_withdrawal": "cash",
    "cash_withdrawal": "cash",
    "cash_deposit": "cash",
    "transfer": "bank_transfer",
    "bank": "bank_transfer",
    "ach": "bank_transfer",
    "eft": "bank_transfer",
    "wire": "bank_transfer",
    "wire_transfer": "bank_transfer",
    "direct_deposit": "bank_transfer",
    "direct_debit": "bank_transfer",
    "standing_order": "bank_transfer",
    "sepa": "bank_transfer",
    "sepa_transfer": "bank_transfer",
    "sepa_direct_debit": "bank_transfer",
    "bacs": "bank_transfer",
    "faster_payment": "bank_transfer",
    "giro": "bank_transfer",
    "online_banking": "bank_transfer",
    "bill_pay": "bank_transfer",
    "autopay": "bank_transfer",
    "cheque": "check",
    "paypal": "digital_wallet",
    "venmo": "digital_wallet",
    "zelle": "digital_wallet",
    "cash_app": "digital_wallet",
    "apple_pay": "digital_wallet",
    "google_pay": "digital_wallet",
    "samsung_pay": "digital_wallet",
    "wallet": "digital_wallet",
    "mobile_payment": "digital_wallet",
    "misc": "other",
    "miscellaneous": "other",
    "others": "other",
}
# written_off: a payment that was expected and will never arrive (the Titans export's bad debts).
STATUSES = ("completed", "pending", "unpaid", "failed", "cancelled", "written_off")
STATUS_ALIASES = {
    "complete": "completed",
    "paid": "completed",
    "received": "completed",
    "cleared": "completed",
    "posted": "completed",
    "settled": "completed",
    "booked": "completed",
    "processed": "completed",
    "reconciled": "completed",
    "executed": "completed",
    "approved": "completed",
    "confirmed": "completed",
    "success": "completed",
    "successful": "completed",
    "succeeded": "completed",
    "done": "completed",
    # expected to move: counted as money that moved
    "authorized": "pending",
    "authorised": "pending",
    "processing": "pending",
    "in_progress": "pending",
    "scheduled": "pending",
    "submitted": "pending",
    "initiated": "pending",
    "queued": "pending",
    "on_hold": "pending",
    "held": "pending",
    "uncleared": "pending",
    "not_cleared": "pending",
    "unposted": "pending",
    # An invoice not paid yet is money owed, not money on its way: cash flow leaves it out until it is paid.
    "outstanding": "unpaid",
    "awaiting_payment": "unpaid",
    "overdue": "unpaid",
    "invoiced": "unpaid",
    "declined": "failed",
    "rejected": "failed",
    "denied": "failed",
    "error": "failed",
    "bounced": "failed",
    "nsf": "failed",
    "insufficient_funds": "failed",
    "unsuccessful": "failed",
    "failure": "failed",
    "canceled": "cancelled",
    "cancel": "cancelled",
    "reversed": "cancelled",
    "reversal": "cancelled",
    "returned": "cancelled",
    "void": "cancelled",
    "voided": "cancelled",
    "expired": "cancelled",
    "write_off": "written_off",
    "writeoff": "written_off",
    "bad_debt": "written_off",
    "uncollectible": "written_off",
    "charged_off": "written_off",
    "charge_off": "written_off",
}
# Statuses whose amount never moved: left out of cash flow. Pending and unknown ones count as moved.
NO_MONEY_MOVED_STATUSES = ("unpaid", "failed", "cancelled", "written_off")
UNKNOWN = "unknown"

FIRST_SERVE_PORT = 5001  # the summary's serve lines: category 5001, amount 5002, anomaly 5003, cash flow 5004
CHAMPION = "champion"
CHALLENGER = "challenger"
# An online A/B test (register -P action=ab_split): one registered version that holds champion and challenger,
# served under its own alias; each answer says which variant and which version answered it.
AB_ALIAS = "ab_test"
AB_SPLIT_TAG = "ab_split"  # version tag "true" on such a version, beside ab_champion_version, ab_challenger_version
AB_VARIANT_COLUMN = "variant"  # "champion" or "challenger"
AB_VERSION_COLUMN = "model_version"  # the registered version that answered the row
# Environments (register -P action=promote_env): dev is where training registers; the others are promoted into.
ENVIRONMENTS = ("dev", "staging", "production")
MODEL_ARTIFACT_NAME = "model"
MODEL_TYPE_TAG = "model_type"


class MonitoringThresholds:
    """When monitoring (pyfunc_models/monitoring, `mlflow run . -e monitor`) calls a champion's new period OK, WARN
    or RETRAIN. Generic rules, none fitted to a ledger; the README's "Keeping models healthy" lists them.

    A distribution (of an input the model reads, of a label, of an output) has drifted when its PSI is above the
    level AND the two-sample chi-square test on the same bins rejects "same distribution" at FAMILY_ALPHA shared
    (Bonferroni) among all the model's distribution and rate tests: PSI says how much, the test says it is not the
    noise of a small period (PSI of two samples of one distribution grows as the bins outnumber the rows).
    A rate (missing or unknown values, new merchants, flagged rows) has drifted when it rose by more than the level
    above the reference's own rate, with the same test. A metric has dropped when the bootstrap interval of its drop
    from the champion's held-out value (both resampled) excludes zero at CONFIDENCE: a RETRAIN when the drop is
    also larger than the stated size, a WARN when it is real but smaller.
    """

    EXPERIMENT = "titans-finance-ml-monitoring"  # monitoring runs, apart from the training runs the registry reads
    PSI_WARN = 0.1  # the field's convention: below 0.1 no real change, 0.1-0.2 a moderate shift...
    PSI_RETRAIN = 0.2  # ...above 0.2 a significant shift
    FAMILY_ALPHA = 0.01  # chance that a period drawn like the reference trips any one of a model's tests
    NEW_MERCHANT_WARN = 0.05  # share of rows from merchants never seen in training, above the held-out rows' own
    NEW_MERCHANT_RETRAIN = 0.15  # ...a sixth of a period from merchants the model only knows by the text's shape
    RATE_WARN = 0.03  # a missing, unknown or flagged share, risen by this much (absolute) over the reference
    RATE_RETRAIN = 0.10
    SCORE_DROP = 0.05  # a score in 0..1 (accuracy, recall, interval coverage) fallen by more than this...
    ERROR_RISE = 0.20  # ...or an error (MAE, MASE) risen by more than this share of its held-out value: RETRAIN
    CONFIDENCE = 0.99  # two-sided bootstrap interval of a metric's drop
    BOOTSTRAP_RESAMPLES = 400
    MIN_UNITS = 30  # a metric on fewer rows (days, for cash flow) is reported, never a reason (as training warns)
    NUMERIC_BINS = 10  # deciles of the reference, for log |amount|, confidences, scores, forecasts
    DAY_BINS = 5  # quintiles of the reference's rows per day (a month has only 30 days)
    MIN_BIN_SHARE = 0.01  # categories rarer than this in the reference are pooled into one bin ("other")
    TOP_MERCHANTS = 20  # merchant shares: the reference's most frequent keys, the rest pooled
    MIN_MERCHANT_ROWS = 5  # a merchant's usual amount (for amounts relative to it) from at least this many rows


MONITORING = MonitoringThresholds()
