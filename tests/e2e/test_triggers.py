"""The trigger recipe of docs/sql.md, as an application account would set it up: an AFTER INSERT
trigger queues each new row into mlbridge.inbox under a CONTINUE handler, the bridge scores it,
and the application reads the scores through a DEFINER view of its stream."""

from __future__ import annotations

import time

import mysql.connector
import pytest

from mlbridge.db import connect

from ..accounts import create_account, drop_account
from ..procs import parse_tsv, sql_cli

STREAM = "bc_stream"


def trigger_sql(features: list[str]) -> str:
    pairs = ", ".join(f"'{f}', NEW.`{f}`" for f in features)
    return ("CREATE TRIGGER shop.patients_score AFTER INSERT ON shop.patients FOR EACH ROW\n"
            "BEGIN\n"
            "  DECLARE CONTINUE HANDLER FOR SQLEXCEPTION BEGIN END;\n"
            f"  INSERT INTO mlbridge.inbox (stream, row_key, features) VALUES ('{STREAM}', NEW.id, JSON_OBJECT({pairs}));\n"
            "END")


@pytest.fixture(scope="module")
def app(dsn, bc_model, bc_features, bridge):
    root = connect(dsn)
    cur = root.cursor()
    cur.execute("CREATE DATABASE IF NOT EXISTS shop")
    cur.execute("DROP TABLE IF EXISTS shop.patients")
    cur.execute("CREATE TABLE shop.patients LIKE demo.breast_cancer")
    cur.execute(f"CALL mlbridge.stream_create('{STREAM}', 'bc')")
    cur.fetchall()
    cur.execute("CREATE OR REPLACE SQL SECURITY DEFINER VIEW shop.patient_scores AS "
                "SELECT CAST(row_key AS SIGNED) AS id, score, output, error, model_version, scored_at "
                f"FROM mlbridge.stream_scores WHERE stream = '{STREAM}'")
    account = create_account(dsn, "shop_app", role=None,
                             grants=("SELECT, INSERT ON shop.patients", "TRIGGER ON shop.patients",
                                     "SELECT ON shop.patient_scores", "SELECT ON demo.breast_cancer",
                                     "INSERT ON mlbridge.inbox"))
    conn = mysql.connector.connect(host=dsn.host, port=dsn.port, user="shop_app", password="pw", autocommit=True)
    conn.cursor().execute(trigger_sql(bc_features))  # the trigger is the application's (DEFINER shop_app)
    yield conn
    conn.close()
    drop_account(dsn, account)
    cur.execute("DROP DATABASE IF EXISTS shop")
    cur.execute(f"CALL mlbridge.stream_drop('{STREAM}')")
    root.close()


def _scores(conn, ids) -> dict:
    cur = conn.cursor()
    deadline = time.monotonic() + 60
    found = {}
    while time.monotonic() < deadline:
        cur.execute(f"SELECT id, score, error FROM shop.patient_scores WHERE id BETWEEN {min(ids)} AND {max(ids)}")
        found = {row[0]: (row[1], row[2]) for row in cur.fetchall()}
        if len(found) == len(ids):
            break
        time.sleep(0.2)
    cur.close()
    return found


def test_rows_inserted_by_the_application_are_scored(dsn, app):
    cur = app.cursor()
    cur.execute("INSERT INTO shop.patients SELECT * FROM demo.breast_cancer WHERE id <= 20")
    scored = _scores(app, range(1, 21))
    assert len(scored) == 20 and all(error is None and 0 <= s <= 1 for s, error in scored.values()), scored
    direct = parse_tsv(sql_cli(dsn, "CALL mlbridge.predict_scores('bc', 'SELECT * FROM demo.breast_cancer "
                                    "WHERE id <= 20', NULL)").stdout)
    assert {int(r["row_key"]): float(r["score"]) for r in direct} == pytest.approx(
        {k: s for k, (s, _) in scored.items()}, abs=1e-6)


def test_the_application_insert_never_fails_because_of_scoring(dsn, db, app):
    cur = db.cursor()
    cur.execute("REVOKE INSERT ON mlbridge.inbox FROM 'shop_app'@'%'")
    try:
        app.cursor().execute("INSERT INTO shop.patients SELECT * FROM demo.breast_cancer WHERE id = 21")
        app_cur = app.cursor()
        app_cur.execute("SELECT COUNT(*) FROM shop.patients WHERE id = 21")
        assert app_cur.fetchone()[0] == 1  # the row is in; its score is not queued (documented)
    finally:
        cur.execute("GRANT INSERT ON mlbridge.inbox TO 'shop_app'@'%'")


def test_unscorable_inbox_rows_get_an_error_not_silence(db, app):
    cur = db.cursor()
    cur.execute(f"INSERT INTO inbox (stream, row_key, features) VALUES ('{STREAM}', '9001', '[1, 2]'), "
                f"('{STREAM}', '9002', '{{\"mean_radius\": 1}}'), ('no_stream', '9003', '{{}}')")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        cur.execute("SELECT row_key, error FROM stream_scores WHERE row_key IN ('9001', '9002', '9003') "
                    "ORDER BY row_key")
        found = cur.fetchall()
        if len(found) == 3:
            break
        time.sleep(0.2)
    errors = dict(found)
    assert "not a JSON object" in errors["9001"]
    assert "lack" in errors["9002"]
    assert "there is no stream 'no_stream'" in errors["9003"]
    cur.execute("SELECT COUNT(*) FROM inbox")
    assert cur.fetchone()[0] == 0
    cur.execute("DELETE FROM stream_scores WHERE stream = 'no_stream'")
