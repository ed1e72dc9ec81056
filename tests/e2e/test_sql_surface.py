"""The SQL surface on a real server, without the model server: install, validation, queueing,
ownership. Every bad input is refused with a mlbridge: message and queues nothing."""

from __future__ import annotations

import json
import uuid

import mysql.connector
import pytest

from mlbridge.db import connect
from mlbridge.db.install import install, routine_files, routine_roles

from .. import procs
from ..accounts import create_account, drop_account
from ..procs import parse_tsv

INPUTS = json.dumps([{"name": "f1", "dtype": "float32", "shape": [-1]},
                     {"name": "f2", "dtype": "float32", "shape": [-1]}])


def sql_cli(dsn, sql, **kwargs):
    """The SQL client on this module's schema: `mlbridge.` in the SQL names it."""
    return procs.sql_cli(dsn, sql.replace("mlbridge.", f"{dsn.database}."), **kwargs)


@pytest.fixture(scope="module")
def catalog(surface):
    """A catalog entry and a data table (no model server needed to queue rows)."""
    dsn = surface
    conn = connect(dsn)
    cur = conn.cursor()
    cur.execute("CREATE DATABASE IF NOT EXISTS sqltest")
    cur.execute("CREATE TABLE IF NOT EXISTS sqltest.t (id INT PRIMARY KEY, f1 DOUBLE, f2 DOUBLE, note VARCHAR(20))")
    cur.execute("DELETE FROM sqltest.t")
    cur.executemany("INSERT INTO sqltest.t VALUES (%s, %s, %s, %s)",
                    [(i, i * 0.5, i * 2.0, f"n{i}") for i in range(1, 2501)])
    cur.execute("CREATE TABLE IF NOT EXISTS sqltest.dups (k VARCHAR(10), f1 DOUBLE, f2 DOUBLE)")
    cur.execute("DELETE FROM sqltest.dups")
    cur.executemany("INSERT INTO sqltest.dups VALUES (%s, %s, %s)",
                    [("a", 1, 2), ("b", 1, 2), ("a", 3, 4), (None, 5, 6)])
    cur.execute("INSERT IGNORE INTO model_versions (name, version, inputs, outputs, source) VALUES "
                "('sqlfake', 1, %s, '[{\"name\": \"score\"}]', 'trainer'),"
                "('sqlfake', 2, %s, '[{\"name\": \"score\"}]', 'trainer')", (INPUTS, INPUTS))
    cur.execute("INSERT IGNORE INTO model_versions (name, version, state, inputs, outputs, source) VALUES "
                "('sqlbroken', 1, 'failed', %s, '[]', 'server')", (INPUTS,))
    cur.execute("INSERT IGNORE INTO model_labels (name, label, version) VALUES ('sqlfake', 'canary', 1)")
    conn.close()
    return dsn


def _count(dsn, table="requests") -> int:
    conn = connect(dsn)
    cur = conn.cursor()
    if table == "rows tables":
        cur.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (f"{dsn.database}_data",))
    else:
        cur.execute(f"SELECT COUNT(*) FROM {table}")
    n = cur.fetchone()[0]
    conn.close()
    return n


def test_install_twice_changes_nothing(surface):
    report = install(surface)
    assert not report.changed
    assert report.routines_unchanged == len(routine_files())
    assert report.migrations_applied == []


@pytest.mark.parametrize(
    "model, query, options, message",
    [
        ("nosuch", "SELECT id, f1, f2 FROM sqltest.t", "NULL", "no model named 'nosuch'"),
        ("sqlfake:9", "SELECT id, f1, f2 FROM sqltest.t", "NULL", "has no version 9"),
        ("sqlfake:x", "SELECT id, f1, f2 FROM sqltest.t", "NULL", "must be a number"),
        ("sqlfake@nolabel", "SELECT id, f1, f2 FROM sqltest.t", "NULL", "no version labelled 'nolabel'"),
        ("sqlbroken", "SELECT id, f1, f2 FROM sqltest.t", "NULL", "has no available version"),
        ("sqlbroken:1", "SELECT id, f1, f2 FROM sqltest.t", "NULL", "is failed, not available"),
        ("", "SELECT id, f1, f2 FROM sqltest.t", "NULL", "model is empty"),
        ("sqlfake", "SELECT f1, f2 FROM sqltest.t", "NULL", "no key column `id`"),
        ("sqlfake", "SELECT id, f1 FROM sqltest.t", "NULL", "no column `f2`, an input of model sqlfake:2"),
        ("sqlfake", "SELECT id, f1, f2 FROM sqltest.t", "'{\"key\": \"k\"}'", "no key column `k`"),
        ("sqlfake", "DELETE FROM sqltest.t", "NULL", "must be a SELECT statement"),
        ("sqlfake", "SELECT 1; DROP TABLE sqltest.t", "NULL", ""),  # MySQL's own syntax error
        ("sqlfake", "", "NULL", "must be a SELECT statement"),
        ("sqlfake", "SELECT id, f1, f2 FROM sqltest.t", "'{not json'", "options are not valid JSON"),
        ("sqlfake", "SELECT id, f1, f2 FROM sqltest.t", "'[1, 2]'", "options must be a JSON object"),
        ("sqlfake", "SELECT id, f1, f2 FROM sqltest.t", "'{\"asynch\": true}'", "unknown option \"asynch\""),
        ("sqlfake", "SELECT id, f1, f2 FROM sqltest.t", "'{\"async\": 1}'", "async must be true or false"),
        ("sqlfake", "SELECT id, f1, f2 FROM sqltest.t", "'{\"timeout\": -1}'", "timeout must be a number"),
        ("sqlfake", "SELECT id, f1, f2 FROM sqltest.t", "'{\"key\": 5}'", "key must name the key column"),
        # names from callers are quoted, never spliced into the statement
        ("sqlfake", "SELECT id, f1, f2 FROM sqltest.t", "'{\"key\": \"id`) FROM sqltest.t; -- \"}'",
         "no key column `id`) FROM sqltest.t; -- `"),
        ("sqlfake'; DROP TABLE sqltest.t; --", "SELECT id, f1, f2 FROM sqltest.t", "NULL", "no model named"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_queued(catalog, model, query, options, message):
    before = (_count(catalog), _count(catalog, "results"), _count(catalog, "predict_queue"),
              _count(catalog, "rows tables"))
    quoted = [text.replace(chr(39), chr(39) * 2) for text in (model, query)]
    sql = f"CALL mlbridge.predict_scores('{quoted[0]}', '{quoted[1]}', {options})"
    done = sql_cli(catalog, sql)
    assert done.returncode != 0, done.stdout
    if message:
        assert "(45000)" in done.stderr and "mlbridge: " in done.stderr, done.stderr
        assert message in done.stderr, done.stderr
    else:
        assert "ERROR 1064" in done.stderr, done.stderr  # passes through unchanged
    assert (_count(catalog), _count(catalog, "results"), _count(catalog, "predict_queue"),
            _count(catalog, "rows tables")) == before


def test_unknown_column_in_the_callers_own_query_passes_through(catalog):
    done = sql_cli(catalog, "CALL mlbridge.predict_scores('sqlfake', 'SELECT id, f1, f2 FROM sqltest.t WHERE nope = 1', NULL)")
    assert "ERROR 1054" in done.stderr and "nope" in done.stderr


def test_async_queues_typed_rows_in_chunks_and_reports_status(catalog):
    db = connect(catalog)
    done = sql_cli(catalog, "CALL mlbridge.predict_scores('sqlfake:1', "
                            "'SELECT id, f1, f2, note FROM sqltest.t WHERE id <= 2100;', '{\"async\": true}')")
    assert done.returncode == 0, done.stderr
    request = int(parse_tsv(done.stdout)[0]["request_id"])
    status = parse_tsv(sql_cli(catalog, f"CALL mlbridge.request_status({request})").stdout)[0]
    assert status["status"] == "pending" and status["rows_total"] == "2100" and status["model"] == "sqlfake:1"
    cur = db.cursor()
    with procs.setting(db, "chunk_rows", "1024"):
        done = sql_cli(catalog, "CALL mlbridge.predict_scores('sqlfake:1', "
                                "'SELECT id, f1, f2 FROM sqltest.t WHERE id <= 2100', '{\"async\": true}')")
    small = int(parse_tsv(done.stdout)[0]["request_id"])
    cur.execute("SELECT seq_from, seq_to, state, priority FROM predict_queue WHERE request_id = %s ORDER BY id",
                (small,))
    assert cur.fetchall() == [(1, 1024, "pending", 1), (1025, 2048, "pending", 1), (2049, 2100, "pending", 1)]
    # the rows keep the types the SELECT gave them: inputs only, in model order, the key whole
    cur.execute("SELECT rows_table FROM requests WHERE id = %s", (request,))
    table = cur.fetchone()[0]
    assert table == f"rows_{request}"
    cur.execute(f"SELECT seq, k, i1, i2 FROM {catalog.database}_data.{table} WHERE seq IN (1, 2100) ORDER BY seq")
    rows = cur.fetchall()
    assert rows[0] == (1, 1, 0.5, 2.0) and rows[1][:2] == (2100, 2100)
    cur.execute("SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
                "AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION", (f"{catalog.database}_data", table))
    assert cur.fetchall() == [("seq", "int"), ("k", "int"), ("i1", "double"), ("i2", "double")]
    for rid in (request, small):
        cancel = parse_tsv(sql_cli(catalog, f"CALL mlbridge.request_cancel({rid})").stdout)[0]
        assert cancel["status"] == "cancelled"
    cur.execute("SELECT COUNT(*) FROM predict_queue WHERE request_id = %s AND state <> 'cancelled'", (request,))
    assert cur.fetchone()[0] == 0


def test_label_resolves_to_its_version(catalog):
    db = connect(catalog)
    done = sql_cli(catalog, "CALL mlbridge.predict_scores('sqlfake@canary', 'SELECT id, f1, f2 FROM sqltest.t "
                            "WHERE id < 3', '{\"async\": true}')")
    request = int(parse_tsv(done.stdout)[0]["request_id"])
    cur = db.cursor()
    cur.execute("SELECT model_version FROM requests WHERE id = %s", (request,))
    assert cur.fetchone()[0] == 1


def test_null_and_repeated_keys_fail_at_queue_time(catalog):
    done = sql_cli(catalog, "CALL mlbridge.predict_scores('sqlfake', 'SELECT k, f1, f2 FROM sqltest.dups', "
                            "'{\"async\": true, \"key\": \"k\"}')")
    request = int(parse_tsv(done.stdout)[0]["request_id"])
    results = parse_tsv(sql_cli(catalog, f"CALL mlbridge.request_results({request})").stdout)
    errors = {(r["row_key"], r["error"]) for r in results}
    assert (None, "mlbridge: key column `k` is NULL in this row") in errors
    assert sum(1 for key, err in errors if key == "a" and "repeats" in err) == 1  # both rows, same text
    assert len(results) == 3
    status = parse_tsv(sql_cli(catalog, f"CALL mlbridge.request_status({request})").stdout)[0]
    assert (status["rows_total"], status["rows_failed"], status["status"]) == ("4", "3", "pending")


@pytest.mark.parametrize("options", ["NULL", "'{\"async\": true}'"], ids=["waiting", "async"])
def test_queueing_refuses_an_open_transaction(catalog, options):
    """Queueing is a transaction of its own: inside the caller's, its locks would be held for as
    long as the caller idles, and the rows table it creates would commit the caller's work."""
    before = _count(catalog)
    for prefix in ("SET autocommit = 0;", "START TRANSACTION;"):
        done = sql_cli(catalog, prefix + f"CALL mlbridge.predict_scores('sqlfake', 'SELECT id, f1, f2 FROM sqltest.t', "
                                         f"{options})")
        assert "predict_scores runs outside transactions" in done.stderr and "COMMIT first and SET autocommit = 1" in done.stderr
    conn = connect(catalog, autocommit=False)
    cur = conn.cursor()
    with pytest.raises(mysql.connector.Error, match="runs outside transactions"):
        cur.callproc("predict_scores", ("sqlfake", "SELECT id, f1, f2 FROM sqltest.t WHERE id <= 5", options.strip("'")))
    conn.close()
    assert _count(catalog) == before


def test_timeout_leaves_the_request_queued(catalog):
    done = sql_cli(catalog, "CALL mlbridge.predict_scores('sqlfake', 'SELECT id, f1, f2 FROM sqltest.t WHERE id < 3', "
                            "'{\"timeout\": 0.2}')")
    assert "is still pending after 0.2 s" in done.stderr and "request_wait" in done.stderr
    assert "ERROR 1644 (45000)" in done.stderr


@pytest.fixture(scope="module")
def alice(catalog):
    """A real account holding only the mlbridge_user role (as its default role) and SELECT on one table."""
    name = f"alice_{uuid.uuid4().hex[:6]}"
    conn = connect(catalog)
    conn.cursor().execute("CREATE TABLE IF NOT EXISTS sqltest.secret (id INT PRIMARY KEY, f1 DOUBLE, f2 DOUBLE)")
    conn.close()
    account = create_account(catalog, name, grants=("SELECT ON sqltest.t",))
    yield name
    drop_account(catalog, account)


def test_caller_with_only_the_role_queues_and_sees_only_their_own(catalog, alice):
    db = connect(catalog)
    done = sql_cli(catalog, "CALL mlbridge.predict_scores('sqlfake', 'SELECT id, f1, f2 FROM sqltest.t WHERE id <= 3', "
                            "'{\"async\": true}')", user=alice, password="pw")
    assert done.returncode == 0, done.stderr
    request = int(parse_tsv(done.stdout)[0]["request_id"])
    cur = db.cursor()
    cur.execute("SELECT owner FROM requests WHERE id = %s", (request,))
    assert cur.fetchone()[0] == f"{alice}@%"  # the authenticated account, user@host
    assert sql_cli(catalog, f"CALL mlbridge.request_status({request})", user=alice, password="pw").returncode == 0
    # root's requests are not alice's, and alice's are not root's
    cur.execute("SELECT MIN(id) FROM requests WHERE owner LIKE 'root@%'")
    rooted = cur.fetchone()[0]
    other = sql_cli(catalog, f"CALL mlbridge.request_results({rooted})", user=alice, password="pw")
    assert f"no request {rooted} of account {alice}@%" in other.stderr
    assert "no request" in sql_cli(catalog, f"CALL mlbridge.request_status({request})").stderr
    # alice reads the catalog, but not the queue
    assert sql_cli(catalog, "SELECT COUNT(*) FROM mlbridge.models", user=alice, password="pw").returncode == 0
    assert "denied" in sql_cli(catalog, "SELECT * FROM mlbridge.results", user=alice, password="pw").stderr


def test_caller_cannot_score_a_table_they_cannot_select(catalog, alice):
    before = _count(catalog)
    done = sql_cli(catalog, "CALL mlbridge.predict_scores('sqlfake', 'SELECT id, f1, f2 FROM sqltest.secret', "
                            "'{\"async\": true}')", user=alice, password="pw")
    assert "ERROR 1142" in done.stderr and "denied" in done.stderr  # MySQL's own error, unchanged
    assert _count(catalog) == before


def test_a_query_with_no_rows_is_done_at_once(catalog):
    done = sql_cli(catalog, "CALL mlbridge.predict_scores('sqlfake', 'SELECT id, f1, f2 FROM sqltest.t WHERE 1 = 0', NULL)")
    assert done.returncode == 0, done.stderr
    assert parse_tsv(done.stdout) == []
    listed = parse_tsv(sql_cli(catalog, "CALL mlbridge.request_list(1)").stdout)[0]
    assert (listed["status"], listed["rows_total"], listed["percent"]) == ("done", "0", "100.0")


def test_routines_are_defined_by_the_locked_account(catalog):
    conn = connect(catalog)
    cur = conn.cursor()
    cur.execute("SELECT ROUTINE_NAME, DEFINER, SECURITY_TYPE FROM information_schema.ROUTINES "
                "WHERE ROUTINE_SCHEMA = %s", (catalog.database,))
    routines = {name: (definer, security) for name, definer, security in cur.fetchall()}
    attesting = {name for name in routines if name.startswith("_as_")}  # one per registered account
    assert attesting and set(routines) - attesting == {path.stem for path in routine_files()}
    assert {definer for definer, _ in routines.values()} == {"mlbridge_definer@localhost"}
    # The public routines are INVOKER (they attest the caller's account: see _attest.sql), and so
    # are the inner ones that run the caller's own SELECT, write the caller's own tables, or only
    # look at their arguments and session; every other inner routine is DEFINER.
    invoker = {name for name, (_, security) in routines.items() if security == "INVOKER"}
    public = {path.stem for path in routine_files()
              if not path.stem.startswith("_") and "mlbridge_user" in routine_roles(path.read_text())}
    assert invoker == public | {"_stage_query", "_stage_rows", "_run_job", "_write_output", "_parse_options",
                                "_table_name", "_attest", "_no_transaction", "_select_text"}
    conn.close()
    locked = sql_cli(catalog, "SELECT 1", user="mlbridge_definer")
    assert locked.returncode != 0 and ("locked" in locked.stderr.lower() or "denied" in locked.stderr.lower())


def test_wide_rows_make_smaller_chunks(catalog):
    """A chunk's rows stay under max_chunk_bytes, so a bridge never holds more than that."""
    db = connect(catalog)
    cur = db.cursor()
    done = sql_cli(catalog, "CALL mlbridge.predict_scores('sqlfake', 'SELECT id, REPEAT(''x'', 200000) AS f1, f2 "
                            "FROM sqltest.t WHERE id <= 500', '{\"async\": true}')")
    request = int(parse_tsv(done.stdout)[0]["request_id"])
    cur.execute("SELECT MAX(seq_to - seq_from + 1), COUNT(*) FROM predict_queue WHERE request_id = %s", (request,))
    widest, chunks = cur.fetchone()
    cur.execute("SELECT value FROM settings WHERE name = 'max_chunk_bytes'")
    assert widest == int(cur.fetchone()[0]) // 200000 and chunks == -(-500 // widest)
    sql_cli(catalog, f"CALL mlbridge.request_cancel({request})")
    db.close()
