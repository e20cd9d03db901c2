#!/usr/bin/env bash
# `make demo`: Airflow with the example pipelines on the embedded default (a local store and the
# local runner). Starts Airflow (standalone: SQLite, LocalExecutor), puts sample data into the input
# repos, lets the commit watcher run the pipelines, and prints the UI address and login.
# Run again: reuses the running Airflow and the data. `make demo-stop` stops Airflow; data stays in .demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEMO=${PACH_AIRFLOW_DEMO_DIR:-$ROOT/.demo}
PORT=${PORT:-8080}
mkdir -p "$DEMO"

export PATH=$ROOT/.venv/bin:$PATH
export PACH_AIRFLOW_HOME=$DEMO
export PACH_AIRFLOW_STORE=file://$DEMO/store
export AIRFLOW_HOME=$DEMO/airflow
export AIRFLOW__CORE__DAGS_FOLDER=$ROOT/dags
export AIRFLOW__CORE__PLUGINS_FOLDER=$ROOT/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__PARALLELISM=4
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
export AIRFLOW__API__PORT=$PORT
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://localhost:$PORT/execution/
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=30
export AIRFLOW__PACH_AIRFLOW__STORE=$PACH_AIRFLOW_STORE
export AIRFLOW__PACH_AIRFLOW__RUNNER=local

t0=$(date +%s)
step() { printf '\n\033[1m[%3ds] %s\033[0m\n' "$(( $(date +%s) - t0 ))" "$*"; }

step "Validating the example pipeline specs"
find dags/examples -name '*.yaml' -o -name '*.json' | sort | xargs pach-airflow validate

step "Starting Airflow (logs: $DEMO/airflow.log)"
if [ -f "$DEMO/airflow.pid" ] && kill -0 "$(cat "$DEMO/airflow.pid")" 2>/dev/null; then
  echo "Airflow is already running (pid $(cat "$DEMO/airflow.pid"))"
else
  setsid airflow standalone >"$DEMO/airflow.log" 2>&1 < /dev/null &
  echo $! > "$DEMO/airflow.pid"
fi
for i in $(seq 1 120); do
  curl -fsS "http://127.0.0.1:$PORT/api/v2/monitor/health" >/dev/null 2>&1 && break
  [ "$i" = 120 ] && { echo "Airflow did not answer in 120 s; see $DEMO/airflow.log" >&2; exit 1; }
  sleep 1
done
echo "Airflow answers on port $PORT"

step "Waiting for the example DAGs to be parsed"
for i in $(seq 1 90); do
  n=$(airflow dags list -o plain 2>/dev/null | grep -cE '^(edges|montage|my-pipeline|station-report|store-totals|edge-census)\b' || true)
  [ "$n" -ge 6 ] && break
  [ "$i" = 30 ] && airflow dags reserialize >/dev/null 2>&1 || true
  sleep 2
done
airflow dags list -o plain 2>/dev/null | grep -E '^(edges|montage|my-pipeline|station-report|store-totals|edge-census)\b' | awk '{print "  DAG", $1}'

step "Putting sample data into the input repos"
python examples/sample_data.py "$DEMO/sample"
for repo in images data readings stations sales; do
  if pach-airflow inspect repo "$repo" >/dev/null 2>&1 && [ -n "$(pach-airflow list commit "$repo" -o json | head -1)" ]; then
    echo "  $repo: has data already"
  else
    pach-airflow create repo "$repo" 2>/dev/null || true
    pach-airflow put file "$repo@master:/" -r -f "$DEMO/sample/$repo"
    echo "  $repo: $(ls "$DEMO/sample/$repo" | wc -l) files committed"
  fi
done

step "Waiting for the commit watcher to run the pipelines"
want="edges montage my-pipeline station-report store-totals"
for i in $(seq 1 150); do
  done_n=0
  for p in $want; do
    pach-airflow list job -p "$p" -o json 2>/dev/null | grep -q '"JOB_SUCCESS"' && done_n=$((done_n + 1))
  done
  [ "$done_n" != "${last_n:-}" ] && echo "  $done_n of 5 pipelines have a finished job" && last_n=$done_n
  [ "$done_n" -ge 5 ] && break
  sleep 4
done
echo
pach-airflow list job

pw=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['admin'])" \
  "$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated" 2>/dev/null || echo '(see the log)')
step "Ready in $(( $(date +%s) - t0 )) s"
cat <<MSG
  Airflow UI:      http://localhost:$PORT   (login: admin / $pw)
  Repos & lineage: http://localhost:$PORT/pach/
  The montage:     pach-airflow get file montage@master:/montage.png -o montage.png
  The store:       $PACH_AIRFLOW_STORE    (export PACH_AIRFLOW_STORE=$PACH_AIRFLOW_STORE to use the CLI)
  Stop Airflow:    make demo-stop        (the data stays in $DEMO)
MSG
