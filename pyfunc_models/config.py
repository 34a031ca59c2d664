"""Names and numbers defined once: columns, enumerations, model names, experiment.

Training, the served pyfunc, the registry logic and the tests all import from here.
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

TRANSACTION_TYPES = ("income", "expense")
TYPE_ALIASES = {
    "credit": "income",
    "cr": "income",
    "deposit": "income",
    "inflow": "income",
    "debit": "expense",
    "dr": "expense",
    "withdrawal": "expense",
    "payment": "expense",
    "outflow": "expense",
}
PAYMENT_METHODS = (
    "cash",
    "credit_card",
    "debit_card",
    "bank_transfer",
    "check",
    "digital_wallet",
)
PAYMENT_METHOD_ALIASES = {
    "card": "credit_card",
    "visa": "credit_card",
    "mastercard": "credit_card",
    "amex": "credit_card",
    "cheque": "check",
    "ach": "bank_transfer",
    "wire": "bank_transfer",
    "transfer": "bank_transfer",
    "paypal": "digital_wallet",
    "apple_pay": "digital_wallet",
    "google_pay": "digital_wallet",
}
STATUSES = ("completed", "pending", "failed", "cancelled")
STATUS_ALIASES = {
    "complete": "completed",
    "cleared": "completed",
    "posted": "completed",
    "settled": "completed",
    "canceled": "cancelled",
    "declined": "failed",
}
UNKNOWN = "unknown"

# Registered model names, one per model type.
MODEL_NAMES = {
    "category": "titans-finance-category-prediction",
    "amount": "titans-finance-amount-prediction",
    "anomaly": "titans-finance-anomaly-detection",
    "cashflow": "titans-finance-cashflow-forecasting",
}
CHAMPION = "champion"
CHALLENGER = "challenger"
MODEL_ARTIFACT_NAME = "model"
MODEL_TYPE_TAG = "model_type"

# The registry gate, per model type: what a candidate must reach on the evaluation data
# (metric: (threshold, greater_is_better)), the logged baseline it must beat, the metric
# it is compared with the champion on, and how much worse than the champion it may be
# (absolute for scores in 0..1, relative for errors).
GATES = {
    "category": {"thresholds": {"macro_f1": (0.80, True)}, "beat_baseline": "baseline_majority_test_macro_f1",
                 "key_metric": "macro_f1", "greater_is_better": True, "tolerance": 0.01, "relative": False},
    "amount": {"thresholds": {}, "beat_baseline": "baseline_category_median_test_mae",
               "key_metric": "mae", "greater_is_better": False, "tolerance": 0.05, "relative": True},
    "anomaly": {"thresholds": {"recall": (0.70, True), "precision": (0.50, True)}, "beat_baseline": None,
                "key_metric": "f1", "greater_is_better": True, "tolerance": 0.02, "relative": False},
    "cashflow": {"thresholds": {"mase": (1.0, False)}, "beat_baseline": None,
                 "key_metric": "mase", "greater_is_better": False, "tolerance": 0.05, "relative": True},
}
