#!/usr/bin/env bash
# The README's example requests (examples/requests/*.json), sent to the four champions served on ports 5001-5004
# as the quick start's summary says:
#   mlflow models serve -m models:/titans-finance-category-prediction@champion --env-manager local -p 5001
#   mlflow models serve -m models:/titans-finance-amount-prediction@champion --env-manager local -p 5002
#   mlflow models serve -m models:/titans-finance-anomaly-detection@champion --env-manager local -p 5003
#   mlflow models serve -m models:/titans-finance-cashflow-forecasting@champion --env-manager local -p 5004
# Run from anywhere: bash examples/requests.sh (HOST=... to ask another machine, PORTS="p1 p2 p3 p4" for others).
# The README shows what the quick start's champions answered (tools/readme_figures.py writes it); cashflow.json
# holds 1,200 transactions over 120 days from `python -m entrypoints.generate_data --rows 1200 --days 120 --seed 1`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)/requests"
models=(category amount anomaly cashflow)
read -r -a ports <<< "${PORTS:-5001 5002 5003 5004}"
for i in "${!models[@]}"; do
    echo "# ${models[$i]}: $here/${models[$i]}.json -> ${HOST:-localhost}:${ports[$i]}"
    curl -s -X POST "${HOST:-localhost}:${ports[$i]}/invocations" -H 'Content-Type: application/json' \
        -d "@$here/${models[$i]}.json"
    echo
done
