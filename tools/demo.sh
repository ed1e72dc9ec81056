#!/usr/bin/env bash
# make demo: the main job end to end on a private database.
#   1. start a private MariaDB/MySQL under .run/demo and install schema mlbridge
#   2. load scikit-learn's breast cancer data into demo.breast_cancer
#   3. train a model on it, streamed from MySQL into TensorFlow (mlbridge train)
#   4. start the model server, the bridge and the trainer worker (mlbridge up)
#   5. score every row with CALL mlbridge.predict_scores from the command-line SQL client
#   6. print a sample of the scores and the accuracy; a table of scores; one row online
#   7. train, score and explain from SQL (train_model, score_model, explain_model)
#   8. stop everything that was started
set -euo pipefail
cd "$(dirname "$0")/.."
export MLBRIDGE_RUN_DIR="$PWD/.run/demo"
export MLBRIDGE_MODEL_BASE="$MLBRIDGE_RUN_DIR/models"
export TF_CPP_MIN_LOG_LEVEL=2
mkdir -p "$MLBRIDGE_RUN_DIR"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

up_pid=""
cleanup() {
    if [ -n "$up_pid" ] && kill -0 "$up_pid" 2>/dev/null; then
        kill -TERM "$up_pid"; wait "$up_pid" 2>/dev/null || true
    fi
    mlbridge db local stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

step "private database"
dsn=$(mlbridge db local start)
export MLBRIDGE_DSN="$dsn"
echo "$dsn"
mlbridge db install
port=$(python -c "import sys; from mlbridge.config import Dsn; print(Dsn.parse(sys.argv[1]).port)" "$dsn")
SQL=(mariadb --protocol=TCP -h 127.0.0.1 -P "$port" -u root)
command -v mariadb >/dev/null || SQL=(mysql --protocol=TCP -h 127.0.0.1 -P "$port" -u root)

step "load data: scikit-learn's breast cancer set"
python examples/breast_cancer.py load

step "train: mlbridge train"
rm -rf "$MLBRIDGE_MODEL_BASE/breast_cancer"
# --quiet: no line per epoch here; the summary names every model tried and the test metrics.
mlbridge train --query "SELECT * FROM demo.breast_cancer" --label benign --model breast_cancer --quiet
"${SQL[@]}" --table -e "SELECT name, version, task, model_type, JSON_LENGTH(inputs) AS inputs,
  ROUND(JSON_VALUE(metrics, '$.auc'), 4) AS test_auc, ROUND(JSON_VALUE(metrics, '$.accuracy'), 4) AS test_accuracy
  FROM mlbridge.models"

step "serve: mlbridge up (model server + bridge + trainer worker)"
server_port=$(python -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
ready="$MLBRIDGE_RUN_DIR/up.ready"
rm -f "$ready"
mlbridge up --port "$server_port" --ready-file "$ready" 2>"$MLBRIDGE_RUN_DIR/up.log" &
up_pid=$!
for _ in $(seq 1 600); do
    [ -f "$ready" ] && break
    kill -0 "$up_pid" 2>/dev/null || { cat "$MLBRIDGE_RUN_DIR/up.log"; exit 1; }
    sleep 0.2
done
[ -f "$ready" ] || { echo "mlbridge up did not start"; cat "$MLBRIDGE_RUN_DIR/up.log"; exit 1; }

step "score from SQL"
query="CALL mlbridge.predict_scores('breast_cancer', 'SELECT * FROM demo.breast_cancer', NULL)"
echo "mariadb> $query;"
"${SQL[@]}" --batch -e "$query" > "$MLBRIDGE_RUN_DIR/scores.tsv"
if command -v column >/dev/null; then
    head -n 11 "$MLBRIDGE_RUN_DIR/scores.tsv" | column -t -s $'\t'
else
    head -n 11 "$MLBRIDGE_RUN_DIR/scores.tsv"
fi
echo "..."
python examples/breast_cancer.py report "$MLBRIDGE_RUN_DIR/scores.tsv"

step "a whole table into a table of scores: predict_table"
query="CALL mlbridge.predict_table('breast_cancer', 'demo.breast_cancer', 'demo.breast_cancer_scores', '{\"mode\": \"replace\"}')"
echo "mariadb> $query;"
"${SQL[@]}" --vertical -e "$query" | grep -E '^ *(status|rows_done|rows_failed|output|seconds):'
query="SELECT b.id, b.benign, s.score FROM demo.breast_cancer AS b JOIN demo.breast_cancer_scores AS s USING (id) ORDER BY b.id LIMIT 3"
echo "mariadb> $query;"
"${SQL[@]}" --table -e "$query"

step "one row, online: predict_row"
features=$(python examples/breast_cancer.py features)
echo "mariadb> CALL mlbridge.predict_row('breast_cancer', (SELECT JSON_OBJECT('mean_radius', mean_radius, ...) FROM demo.breast_cancer WHERE id = 1));"
"${SQL[@]}" --table -e "CALL mlbridge.predict_row('breast_cancer', (SELECT $features FROM demo.breast_cancer WHERE id = 1))"

step "the model life cycle from SQL: train_model, score_model, explain_model"
query="CALL mlbridge.train_model('breast_cancer_sql', 'SELECT * FROM demo.breast_cancer', 'benign', '{\"model_type\": \"linear\"}')"
echo "mariadb> $query;"
request=$("${SQL[@]}" --batch --skip-column-names -e "$query")
echo "request $request: the trainer worker trains it; request_status shows the epoch and loss"
"${SQL[@]}" --vertical -e "CALL mlbridge.request_wait($request, 600)" | grep -E '^ *(status|model|progress|seconds):'
"${SQL[@]}" --table -e "SELECT name, version, state, model_type, trained_by FROM mlbridge.models WHERE name = 'breast_cancer_sql'"
query="CALL mlbridge.score_model('breast_cancer', 'SELECT * FROM demo.breast_cancer', 'benign', '{\"test_only\": true}')"
echo "mariadb> $query;"
"${SQL[@]}" --table -e "$query"
query="CALL mlbridge.explain_model('breast_cancer', 'SELECT * FROM demo.breast_cancer', 'benign', NULL)"
echo "mariadb> $query;  (the five most important columns)"
"${SQL[@]}" --batch -e "$query" | head -n 6 | (command -v column >/dev/null && column -t -s $'\t' || cat)

step "done: stopping the bridge, the model server and the database"
