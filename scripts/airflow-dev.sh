#!/usr/bin/env bash
# Try the synthgen DAGs locally, without Docker: `airflow standalone` (SQLite metadata DB,
# api-server + scheduler + dag-processor + triggerer in one process tree) on
# http://127.0.0.1:${AIRFLOW_PORT:-8080}, reading specs from pipelines/. State lives in
# .airflow/ (Airflow) and .synthgen/ (zones, catalog, keys). Ctrl-C stops everything.
#
#   bash scripts/airflow-dev.sh            # then trigger synthgen__demo-patients in the UI
#
# For a multi-machine deployment see docs/deploy.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
BIN="$ROOT/.venv/bin"
# standalone starts its components as `airflow ...` subprocesses: the venv must come first.
export PATH="$BIN:$PATH"

export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/.airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="${AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL:-30}"
export AIRFLOW__API__PORT="${AIRFLOW_PORT:-8080}"
export SYNTHGEN_PIPELINES="${SYNTHGEN_PIPELINES:-$ROOT/pipelines}"
export SYNTHGEN_HOME="${SYNTHGEN_HOME:-$ROOT/.synthgen}"
export TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS=""

# The demo spec reads ${SYNTHGEN_HOME}/demo/patients.csv and publishes for the policy's
# roles: create the sample data and the role keys once (as the default policy's steward).
if [ ! -f "$SYNTHGEN_HOME/demo/patients.csv" ]; then
  "$BIN/python" -c "from synthgen.demo import write_demo_csv; import os; \
write_demo_csv(os.path.join(os.environ['SYNTHGEN_HOME'], 'demo', 'patients.csv'))"
fi
"$BIN/synthgen" keys init --user "${SYNTHGEN_STEWARD:-alice}" >/dev/null

echo "AIRFLOW_HOME=$AIRFLOW_HOME  SYNTHGEN_HOME=$SYNTHGEN_HOME  specs: $SYNTHGEN_PIPELINES"
echo "login: admin, password in $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
exec "$BIN/airflow" standalone
