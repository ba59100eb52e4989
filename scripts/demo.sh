#!/usr/bin/env bash
# `make demo`: demo data -> train -> register in MLflow -> promote -> score -> MQL policy ->
# monitor -> serve the API and pages.
set -euo pipefail
cd "$(dirname "$0")/.."
LEADML=.venv/bin/leadml
DATA=${DEMO_DIR:-demo}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
mkdir -p "$DATA"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. Demo leads with a known ground truth (see src/leadml/demo.py)"
$LEADML demo-data --rows 20000 --seed 42 -o "$DATA/leads.csv"
$LEADML demo-data --rows 2000 --seed 7 -o "$DATA/new_leads.csv"

step "2. Train: schema, leakage guard, CV, calibration, holdout; logged to MLflow (mlflow.db)"
$LEADML train --data "$DATA/leads.csv" --target converted --id-column lead_id \
  --time-column created_at --report-json "$DATA/report.json"

step "3. Promote the challenger to champion and export it to models/"
$LEADML promote

step "4. The MQL line: sales can work 200 of 1,500 leads a week"
$LEADML threshold --policy capacity --per-week 200 --leads-per-week 1500 --apply \
  --reason "make demo: sales capacity"

step "5. Score new leads: a ranked list for sales, with grades, MQL decisions and reasons"
$LEADML score "$DATA/new_leads.csv" -o "$DATA/ranked_leads.csv" --reasons
head -n 4 "$DATA/ranked_leads.csv"

step "6. Outcomes came back for the new leads: is the model still healthy?"
# Exit code 4 means the verdict is "act": worth reading, not a reason to stop the demo.
$LEADML monitor --data "$DATA/new_leads.csv" --target converted --report-json "$DATA/health.json" \
  || [ $? -eq 4 ]

step "7. Serving the API and pages (Ctrl-C to stop)"
echo "  Ranked leads: http://$HOST:$PORT/"
echo "  One lead:     http://$HOST:$PORT/lead"
echo "  MQL line:     http://$HOST:$PORT/policy"
echo "  The model:    http://$HOST:$PORT/model"
echo "  Monitoring:   http://$HOST:$PORT/monitoring"
echo "  API docs:     http://$HOST:$PORT/docs"
echo "  MLflow UI:    .venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db"
# Anonymous access, for this machine only (serve refuses another --host), with the admin role so
# the policy page can set the MQL line without a key. A real server uses LEADML_API_KEYS instead.
echo "  Model signing key: ${LEADML_MODEL_SIGNING_KEY_FILE:-~/.config/leadml/model-signing.key}"
LEADML_ALLOW_ANONYMOUS=true LEADML_ANONYMOUS_ROLE=admin exec $LEADML serve --host "$HOST" --port "$PORT"
