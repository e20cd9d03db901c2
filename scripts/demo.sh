#!/usr/bin/env bash
# The main job on the embedded default: a local store, sample data, the example pipeline.
set -euo pipefail
cd "$(dirname "$0")/.."
export PACH_AIRFLOW_STORE=${PACH_AIRFLOW_STORE:-file://$PWD/.pach-airflow/store}
PA=.venv/bin/pach-airflow
for spec in dags/examples/*.yaml dags/examples/*.json; do
  [ -e "$spec" ] && $PA validate "$spec"
done
echo "demo: store at $PACH_AIRFLOW_STORE"
