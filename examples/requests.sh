#!/usr/bin/env bash
# The README's requests, sent to the four champions served on ports 5001-5004:
#   mlflow models serve -m models:/titans-finance-category-prediction@champion --env-manager local -p 5001
#   mlflow models serve -m models:/titans-finance-amount-prediction@champion --env-manager local -p 5002
#   mlflow models serve -m models:/titans-finance-anomaly-detection@champion --env-manager local -p 5003
#   mlflow models serve -m models:/titans-finance-cashflow-forecasting@champion --env-manager local -p 5004
# Run from the repository root: bash examples/requests.sh
set -euo pipefail
ask() { curl -s -X POST "localhost:$1/invocations" -H 'Content-Type: application/json' -d "$2"; echo; }

echo "# category"
ask 5001 '{"dataframe_records": [{"date": "2025-03-11", "description": "POS PURCHASE SHELL OIL #4410 SAN JOSE CA", "amount": -52.30, "payment_method": "credit_card"}], "params": {"top_k": 2}}'

echo "# amount"
ask 5002 '{"dataframe_records": [{"date": "2025-03-11", "type": "Expense", "description": "POS PURCHASE SHELL OIL 36205 PALO ALTO CA", "category": "fuel", "amount": -74.60}, {"date": "2025-03-11", "type": "Expense", "description": "POS PURCHASE SHELL OIL 36205 PALO ALTO CA", "category": "fuel", "amount": -746.00}, {"date": "2025-03-11", "type": "Expense", "description": "POS PURCHASE SHELL OIL 36205 PALO ALTO CA", "category": "fuel"}]}'

echo "# anomaly"
ask 5003 '{"dataframe_records": [{"date": "2025-03-11", "description": "POS PURCHASE STARBUCKS 66432 OAKLAND CA", "amount": -26.20, "category": "meals_entertainment"}, {"date": "2025-03-11", "description": "POS PURCHASE STARBUCKS 66432 OAKLAND CA", "amount": -262.00, "category": "meals_entertainment"}, {"date": "2025-03-11", "description": "POS PURCHASE STARBUCKS 66432 OAKLAND CA", "amount": -26.20, "category": "meals_entertainment"}, {"date": "2025-03-11", "description": "VOXTREJIN YACHT CHARTER MONACO", "amount": -2400.00, "category": "travel"}]}'

echo "# cash flow: 120 days of history (a generated ledger), the next 7 days"
python -m entrypoints.generate_data --rows 3000 --days 120 --seed 1 --output history.csv >/dev/null
python -c "import json, pandas as pd; h = pd.read_csv('history.csv', usecols=['Date', 'Type', 'Amount', 'Status']).rename(columns=str.lower); print(json.dumps({'dataframe_split': {'columns': list(h.columns), 'data': h.values.tolist()}, 'params': {'horizon': 7}}))" > history.json
curl -s -X POST localhost:5004/invocations -H 'Content-Type: application/json' -d @history.json; echo
