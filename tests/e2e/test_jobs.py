"""train_model, score_model and explain_model from SQL, run by a real trainer worker process, as
an account that holds only mlbridge_user and SELECT on the data: versions appear in the catalog
and are served, progress and cancel work, a worker that dies does not leave its job running."""

from __future__ import annotations

import json
import signal
import sys
import time

import mysql.connector
import pytest

from mlbridge.db import connect

from ..accounts import create_account, drop_account
from ..procs import parse_tsv, spawn, sql_cli, start_trainer
from .conftest import wait_served


@pytest.fixture(scope="module")
def trainer(dsn, model_base, tmp_path_factory):
    with start_trainer(dsn, model_base, tmp_path_factory.mktemp("trainer"), "--lease", "6") as proc:
        yield proc


@pytest.fixture(scope="module")
def analyst(dsn, bc_table):
    conn = connect(dsn)
    cur = conn.cursor()
    # 40,000 rows whose label depends on two of four noisy columns: a network trains for many
    # seconds on them, long enough to watch its progress and cancel it.
    cur.execute("CREATE TABLE IF NOT EXISTS demo.slow (id INT PRIMARY KEY, a DOUBLE, b DOUBLE, c DOUBLE, d DOUBLE, "
                "y INT)")
    try:  # the recursion limit: MariaDB's name, else MySQL's
        cur.execute("SET SESSION max_recursive_iterations = 100000")
    except mysql.connector.Error:
        cur.execute("SET SESSION cte_max_recursion_depth = 100000")
    cur.execute("INSERT IGNORE INTO demo.slow WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                "WHERE i < 40000) SELECT i, RAND(i), RAND(i + 1e6), RAND(i + 2e6), RAND(i + 3e6), "
                "RAND(i) + RAND(i + 1e6) + 0.3 * RAND(i + 4e6) > 1.15 FROM n")
    conn.close()
    account = create_account(dsn, "analyst", grants=("SELECT ON demo.breast_cancer", "SELECT ON demo.slow"))
    other = create_account(dsn, "bystander")
    yield "analyst"
    drop_account(dsn, account)
    drop_account(dsn, other)


def as_analyst(dsn, sql: str):
    return sql_cli(dsn, sql, user="analyst", password="pw", timeout=900)


def rows(done) -> list[dict]:
    assert done.returncode == 0, done.stderr
    return parse_tsv(done.stdout)


def _count(db, table: str) -> int:
    cur = db.cursor()
    cur.execute(f"SELECT COUNT(*) FROM {table}")
    return cur.fetchone()[0]


def test_train_model_from_sql_makes_a_version_that_is_served(dsn, db, analyst, trainer, model_server, bridge):
    queued = rows(as_analyst(dsn, "CALL mlbridge.train_model('sqltrained', 'SELECT * FROM demo.breast_cancer', "
                                  "'benign', '{\"model_type\": \"linear\", \"epochs\": 20}')"))
    request = int(queued[0]["request_id"])
    status = rows(as_analyst(dsn, f"CALL mlbridge.request_wait({request}, 600)"))[0]
    assert status["status"] == "done", (status, trainer.output()[-3000:])
    assert json.loads(status["progress"]) == {"phase": "done"}
    metrics = {r["metric"]: float(r["value"]) for r in rows(as_analyst(dsn, f"CALL mlbridge.request_results({request})"))}
    assert {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"} <= set(metrics)
    assert metrics["roc_auc"] > 0.9

    cur = db.cursor()
    cur.execute("SELECT model_version FROM requests WHERE id = %s", (request,))
    version = cur.fetchone()[0]
    catalog = rows(as_analyst(dsn, f"SELECT name, version, state, task, model_type, trained_by, labels "
                                   f"FROM mlbridge.models WHERE name = 'sqltrained' AND version = {version}"))[0]
    assert (catalog["state"], catalog["task"], catalog["model_type"], catalog["trained_by"]) == (
        "available", "binary", "linear", "analyst@%")
    assert "trained_on" not in catalog
    # the training query is the analyst's and the admins' to see, nobody else's
    mine = rows(as_analyst(dsn, "CALL mlbridge.model_queries('sqltrained')"))
    assert [r["trained_on"] for r in mine] == ["SELECT * FROM demo.breast_cancer"]
    theirs = sql_cli(dsn, "CALL mlbridge.model_queries('sqltrained')", user="bystander", password="pw")
    assert theirs.returncode == 0 and parse_tsv(theirs.stdout) == []
    assert len(rows(sql_cli(dsn, "CALL mlbridge.model_queries('sqltrained')"))) >= 1  # root is an admin

    # served without a restart, and scored from SQL
    wait_served(model_server.target, "sqltrained", version)
    scored = rows(as_analyst(dsn, "CALL mlbridge.predict_scores('sqltrained', "
                                  "'SELECT * FROM demo.breast_cancer WHERE id <= 5', NULL)"))
    assert len(scored) == 5 and all(r["score"] is not None for r in scored)


def test_score_model_and_explain_model_answer_with_rows(dsn, analyst, trainer, bc_model, bc_features):
    metrics = {r["metric"]: float(r["value"]) for r in rows(as_analyst(
        dsn, "CALL mlbridge.score_model('bc', 'SELECT * FROM demo.breast_cancer', 'benign', NULL)"))}
    assert {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "rows"} <= set(metrics)
    assert metrics["rows"] == 569 and metrics["accuracy"] > 0.9 and 0 <= metrics["f1"] <= 1

    explained = rows(as_analyst(dsn, "CALL mlbridge.explain_model('bc', 'SELECT * FROM demo.breast_cancer', 'benign', "
                                     "'{\"seed\": 1}')"))
    assert sorted(r["column"] for r in explained) == sorted(bc_features)
    importance = [float(r["importance"]) for r in explained]
    assert importance == sorted(importance, reverse=True) and importance[0] > 0

    # async: a request id, then the same rows through request_wait and request_results
    request = int(rows(as_analyst(dsn, "CALL mlbridge.score_model('bc', 'SELECT * FROM demo.breast_cancer', "
                                       "'benign', '{\"async\": true, \"test_only\": true}')"))[0]["request_id"])
    assert rows(as_analyst(dsn, f"CALL mlbridge.request_wait({request}, 600)"))[0]["status"] == "done"
    tested = {r["metric"]: float(r["value"]) for r in rows(as_analyst(dsn, f"CALL mlbridge.request_results({request})"))}
    assert 0 < tested["rows"] < 569  # only the rows the split kept for testing


def test_progress_shows_and_cancel_stops_a_training(dsn, db, analyst, trainer, model_base):
    versions_before = sorted(p.name for p in (model_base / "slowmodel").glob("*")) \
        if (model_base / "slowmodel").exists() else []
    request = int(rows(as_analyst(dsn, "CALL mlbridge.train_model('slowmodel', 'SELECT * FROM demo.slow', 'y', "
                                       "'{\"model_type\": \"mlp\", \"epochs\": 500}')"))[0]["request_id"])
    deadline = time.monotonic() + 300
    progress = {}
    while time.monotonic() < deadline:
        status = rows(as_analyst(dsn, f"CALL mlbridge.request_status({request})"))[0]
        progress = json.loads(status["progress"] or "{}")
        if progress.get("epoch", 0) >= 1:
            break
        assert status["status"] in ("pending", "running"), (status, trainer.output()[-3000:])
        time.sleep(0.2)
    assert progress["phase"] == "fitting" and progress["model_type"] == "mlp" and "loss" in progress, progress
    cancelled = rows(as_analyst(dsn, f"CALL mlbridge.request_cancel({request})"))[0]
    assert cancelled["status"] == "cancelled"
    cur = db.cursor()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the worker notices at its next beat and epoch's end
        if f"request {request} was cancelled" in trainer.output():
            break
        time.sleep(0.5)
    assert f"request {request} was cancelled" in trainer.output()
    cur.execute("SELECT state FROM jobs WHERE request_id = %s", (request,))
    assert cur.fetchone()[0] == "cancelled"
    cur.execute("SELECT COUNT(*) FROM model_versions WHERE name = 'slowmodel'")
    assert cur.fetchone()[0] == 0
    after = sorted(p.name for p in (model_base / "slowmodel").glob("*")) if (model_base / "slowmodel").exists() else []
    assert [v for v in after if not v.startswith(".")] == [v for v in versions_before if not v.startswith(".")]


def test_a_job_whose_worker_dies_is_taken_over(dsn, db, analyst, trainer, model_base, tmp_path):
    with trainer.paused():  # the session's worker claims nothing while the doomed one takes the job
        doomed = spawn([sys.executable, "-m", "mlbridge", "trainer", "--dsn", str(dsn), "--model-base", str(model_base),
                        "--poll", "0.2", "--lease", "3"], tmp_path / "doomed.log")
        try:
            request = int(rows(as_analyst(dsn, "CALL mlbridge.train_model('takeover', 'SELECT * FROM demo.breast_cancer', "
                                               "'benign', '{\"model_type\": \"linear\", \"epochs\": 20}')"))[0]["request_id"])
            cur = db.cursor()
            deadline = time.monotonic() + 120
            state = None
            while time.monotonic() < deadline:
                cur.execute("SELECT state, worker FROM jobs WHERE request_id = %s", (request,))
                state, worker = cur.fetchone()
                if state == "running":
                    break
                time.sleep(0.05)
            assert state == "running", doomed.output()[-3000:]
            doomed.proc.send_signal(signal.SIGKILL)
            doomed.proc.wait()
        finally:
            doomed.stop()
    status = rows(as_analyst(dsn, f"CALL mlbridge.request_wait({request}, 600)"))[0]
    assert status["status"] == "done", trainer.output()[-3000:]
    cur.execute("SELECT attempts, JSON_LENGTH(errors) FROM jobs WHERE request_id = %s", (request,))
    assert cur.fetchone() == (2, 1)


@pytest.mark.parametrize("call, message", [
    ("train_model('m1', 'SELECT * FROM demo.breast_cancer', 'no_such_column', NULL)",
     "the label column `no_such_column` is not among the query's columns"),
    ("train_model('../escape', 'SELECT * FROM demo.breast_cancer', 'benign', NULL)", "model name '../escape' must be"),
    ("train_model('m1', 'SELECT * FROM demo.breast_cancer', 'benign', '{\"priority\": 0}')", 'unknown option "priority"'),
    ("train_model('m1', 'SELECT * FROM demo.breast_cancer', 'benign', '{\"epochs\": 0}')", "option epochs must be"),
    ("train_model('m1', 'DELETE FROM demo.breast_cancer', 'benign', NULL)", "the query must be a SELECT"),
    ("train_model('m1', 'SELECT * FROM demo.breast_cancer WHERE 1 = 0', 'benign', NULL)", "the query returned no rows"),
    ("score_model('no_model', 'SELECT * FROM demo.breast_cancer', 'benign', NULL)", "no model named 'no_model'"),
    ("score_model('bc', 'SELECT * FROM demo.breast_cancer', 'benign', '{\"timeout\": 1e308}')", "option timeout must"),
    ("train_model('m1', 'SELECT * FROM demo.slow JOIN mysql.user', 'y', NULL)", "denied"),
])
def test_bad_jobs_are_refused_and_nothing_is_queued(dsn, db, analyst, bc_model, call, message):
    before = (_count(db, "requests"), _count(db, "jobs"))
    done = as_analyst(dsn, f"CALL mlbridge.{call}")
    assert done.returncode != 0 and message in done.stderr, done.stderr
    assert (_count(db, "requests"), _count(db, "jobs")) == before
    cur = db.cursor()
    cur.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'mlbridge_data' "
                "AND TABLE_NAME NOT IN (SELECT rows_table FROM mlbridge.requests WHERE rows_table IS NOT NULL)")
    assert cur.fetchone()[0] == 0  # no rows table left behind


def test_the_job_helpers_cannot_be_called_directly(dsn, analyst):
    done = as_analyst(dsn, "CALL mlbridge._enqueue_job('train', 'm1', 'benign', 'SELECT 1', NULL, @r)")
    assert "inner routine" in done.stderr
