"""predict_table, predict_row and typed rows, end to end: the mariadb client, the real bridge and
model server, real SavedModels; and what a hostile caller tries."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time

import numpy as np
import pytest

from mlbridge.db import connect

from ..accounts import create_account, drop_account
from ..procs import parse_tsv, sql_cli
from ..server.models import call_directly
from .conftest import wait_served


def _rows(done) -> list[dict]:
    assert done.returncode == 0, done.stderr
    return parse_tsv(done.stdout)


def _scores_by_key(dsn, query: str) -> dict[str, float]:
    rows = _rows(sql_cli(dsn, f"CALL mlbridge.predict_scores('bc', '{query}', NULL)"))
    return {r["row_key"]: float(r["score"]) for r in rows}


@pytest.fixture(scope="module")
def bc_scores(dsn, bc_model):
    return _scores_by_key(dsn, "SELECT * FROM demo.breast_cancer")


# -- predict_table -------------------------------------------------------------------------------

def _table(db, sql: str) -> list[tuple]:
    cur = db.cursor()
    cur.execute(sql)
    return cur.fetchall()


def test_predict_table_writes_an_output_keyed_like_the_input(dsn, db, bc_model, bc_scores):
    _table(db, "DROP TABLE IF EXISTS demo.bc_out")
    status = _rows(sql_cli(dsn, "CALL mlbridge.predict_table('bc', 'demo.breast_cancer', 'demo.bc_out', NULL)"))[0]
    assert (status["status"], status["rows_done"], status["output"]) == ("done", "569", "`demo`.`bc_out`")
    assert status["output_written_at"] is not None
    columns = _table(db, "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'demo' "
                         "AND TABLE_NAME = 'bc_out' ORDER BY ORDINAL_POSITION")
    assert [c[0] for c in columns] == ["id", "score", "output", "error", "model_version"]
    assert columns[0][1].startswith("int")
    out = _table(db, "SELECT id, score, output, error, model_version FROM demo.bc_out ORDER BY id")
    assert [r[0] for r in out] == list(range(1, 570))
    assert all(r[3] is None and r[4] == bc_model["version"] for r in out)
    # float32 scores: rows batched otherwise (here, or in the server's dynamic batching) may differ in
    # the last bits
    np.testing.assert_allclose([r[1] for r in out], [bc_scores[str(r[0])] for r in out], atol=1e-6)
    assert json.loads(out[0][2])["score"] == pytest.approx(out[0][1])


def test_predict_table_refuses_an_existing_output_unless_told(dsn, db, bc_model):
    _table(db, "DROP TABLE IF EXISTS demo.bc_modes")
    sql = "CALL mlbridge.predict_table('bc', 'demo.breast_cancer', 'demo.bc_modes', {})"
    _rows(sql_cli(dsn, sql.format("NULL")))
    again = sql_cli(dsn, sql.format("NULL"))
    assert "mlbridge: output `demo`.`bc_modes` exists" in again.stderr and '"mode": "replace"' in again.stderr
    _rows(sql_cli(dsn, sql.format("'{\"mode\": \"append\"}'")))
    assert _table(db, "SELECT COUNT(*), COUNT(DISTINCT id) FROM demo.bc_modes")[0] == (1138, 569)
    _rows(sql_cli(dsn, sql.format("'{\"mode\": \"replace\"}'")))
    assert _table(db, "SELECT COUNT(*) FROM demo.bc_modes")[0][0] == 569
    bad = sql_cli(dsn, sql.format("'{\"mode\": \"merge\"}'"))
    assert 'option mode must be "error"' in bad.stderr


def test_predict_table_needs_a_key(dsn, db, bc_model):
    _table(db, "CREATE OR REPLACE VIEW demo.bc_view AS SELECT * FROM demo.breast_cancer WHERE id <= 30")
    _table(db, "DROP TABLE IF EXISTS demo.bc_view_out")
    refused = sql_cli(dsn, "CALL mlbridge.predict_table('bc', 'demo.bc_view', 'demo.bc_view_out', NULL)")
    assert "mlbridge: input `demo`.`bc_view` has no primary key" in refused.stderr
    assert '{"key": "column"}' in refused.stderr
    _rows(sql_cli(dsn, "CALL mlbridge.predict_table('bc', '`demo`.`bc_view`', 'demo.bc_view_out', '{\"key\": \"id\"}')"))
    assert _table(db, "SELECT COUNT(*) FROM demo.bc_view_out")[0][0] == 30
    missing = sql_cli(dsn, "CALL mlbridge.predict_table('bc', 'demo.bc_view', 'demo.x', '{\"key\": \"nope\"}')")
    assert "has no column `nope` to use as the key" in missing.stderr
    for name, fragment in (("demo.bc view", "is not a table name"), ("a.b.c", "is not a table name"),
                           ("demo.`x`y`", "is not a table name")):
        bad = sql_cli(dsn, f"CALL mlbridge.predict_table('bc', '{name}', 'demo.o', NULL)")
        assert fragment in bad.stderr, bad.stderr


def test_async_predict_table_output_is_written_by_request_wait_once(dsn, db, bc_model):
    _table(db, "DROP TABLE IF EXISTS demo.bc_async")
    done = _rows(sql_cli(dsn, "CALL mlbridge.predict_table('bc', 'demo.breast_cancer', 'demo.bc_async', "
                              "'{\"async\": true}')"))
    request = int(done[0]["request_id"])
    assert _table(db, "SELECT COUNT(*) FROM demo.bc_async")[0][0] == 0  # created, written by the owner's wait
    for _ in range(2):
        status = _rows(sql_cli(dsn, f"CALL mlbridge.request_wait({request}, 60)"))[0]
        assert status["status"] == "done" and status["output_written_at"] is not None
    assert _table(db, "SELECT COUNT(*), COUNT(DISTINCT id) FROM demo.bc_async")[0] == (569, 569)


@pytest.fixture(scope="module")
def alice(dsn):
    conn = connect(dsn)
    cur = conn.cursor()
    cur.execute("CREATE DATABASE IF NOT EXISTS alice_db")
    account = create_account(dsn, "tab_alice", grants=("SELECT ON demo.breast_cancer", "ALL ON alice_db.*"))
    yield "tab_alice"
    drop_account(dsn, account)
    cur.execute("DROP DATABASE IF EXISTS alice_db")
    conn.close()


def test_predict_table_runs_with_the_callers_privileges(dsn, db, bc_model, alice):
    before = _table(db, "SELECT COUNT(*) FROM requests")[0][0]
    # may read the input but not create in demo: MySQL's own error, nothing queued
    denied = sql_cli(dsn, "CALL mlbridge.predict_table('bc', 'demo.breast_cancer', 'demo.alice_out', NULL)",
                     user=alice, password="pw")
    assert "ERROR 1142" in denied.stderr and "denied" in denied.stderr
    # may not read the input
    unread = sql_cli(dsn, "CALL mlbridge.predict_table('bc', 'demo.bc_big', 'alice_db.out', NULL)",
                     user=alice, password="pw")
    assert ("ERROR 1142" in unread.stderr or "ERROR 1146" in unread.stderr), unread.stderr
    assert _table(db, "SELECT COUNT(*) FROM requests")[0][0] == before
    # her own schema: allowed, and the output is hers
    status = _rows(sql_cli(dsn, "CALL mlbridge.predict_table('bc', 'demo.breast_cancer', 'alice_db.out', NULL)",
                           user=alice, password="pw"))[0]
    assert status["status"] == "done"
    assert _table(db, "SELECT COUNT(*) FROM alice_db.out")[0][0] == 569


def test_predict_table_refuses_an_open_transaction(dsn, bc_model):
    done = sql_cli(dsn, "START TRANSACTION; CALL mlbridge.predict_table('bc', 'demo.breast_cancer', 'demo.tx', NULL)")
    assert "predict_table runs outside transactions" in done.stderr


# -- predict_row ----------------------------------------------------------------------------------

def _row_object(db, features: list[str], row_id: int) -> str:
    values = _table(db, f"SELECT {', '.join(features)} FROM demo.breast_cancer WHERE id = {row_id}")[0]
    return "JSON_OBJECT(" + ", ".join(f"'{f}', {v!r}" for f, v in zip(features, values)) + ")"


def test_predict_row_scores_one_row_like_predict_scores(dsn, db, bc_model, bc_features, bc_scores):
    rows = _rows(sql_cli(dsn, f"CALL mlbridge.predict_row('bc', {_row_object(db, bc_features, 7)})"))
    assert len(rows) == 1 and rows[0]["error"] is None
    assert float(rows[0]["score"]) == pytest.approx(bc_scores["7"], abs=1e-6)  # float32, batch of 1 vs 569
    assert json.loads(rows[0]["output"])["score"] == pytest.approx(float(rows[0]["score"]))
    cur = db.cursor()
    cur.execute("SELECT kind, status, rows_done FROM requests ORDER BY id DESC LIMIT 1")
    assert cur.fetchone() == ("predict_row", "done", 1)


def test_predict_row_refuses_what_the_model_cannot_take(dsn, db, bc_model, bc_features):
    good = _row_object(db, bc_features, 1)
    first = bc_features[0]
    cases = [
        (good.replace(f"'{first}', ", "'typo', ", 1), f'feature "{first}" is missing'),
        (good[:-1] + ", 'extra', 1)", 'has no input "extra"'),
        (good.replace(f"'{first}', ", f"'{first}', 'abc', 'x', ", 1), 'not a number'),
        (good.replace(f"'{first}', ", f"'{first}', JSON_ARRAY(1, 2), 'x', ", 1), "is a JSON array"),
        ("'[1, 2]'", "takes the features as a JSON object"),
        ("'{nope'", "takes the features as a JSON object"),
    ]
    cur = db.cursor()
    cur.execute("SELECT COUNT(*) FROM requests")
    before = cur.fetchone()[0]
    for features, fragment in cases:
        done = sql_cli(dsn, f"CALL mlbridge.predict_row('bc', {features})")
        assert "ERROR 1644 (45000)" in done.stderr and fragment in done.stderr, (fragment, done.stderr)
    unknown = sql_cli(dsn, f"CALL mlbridge.predict_row('nosuch', {good})")
    assert "no model named 'nosuch'" in unknown.stderr
    cur.execute("SELECT COUNT(*) FROM requests")
    assert cur.fetchone()[0] == before


def test_predict_row_is_claimed_ahead_of_bulk_work(dsn, db, bc_model, bc_features):
    """A big request is being scored; an online row still comes back in well under its time."""
    cur = db.cursor()
    cur.execute("DROP TABLE IF EXISTS demo.bc_online_big")
    cur.execute("CREATE TABLE demo.bc_online_big LIKE demo.breast_cancer")
    cur.execute("INSERT INTO demo.bc_online_big SELECT * FROM demo.breast_cancer")
    for shift in (1000, 2000, 4000, 8000, 16000, 32000):
        cur.execute(f"INSERT INTO demo.bc_online_big SELECT id + {shift}, "
                    + ", ".join(f"`{f}`" for f in bc_features) + ", benign FROM demo.bc_online_big")
    big = _rows(sql_cli(dsn, "CALL mlbridge.predict_scores('bc', 'SELECT * FROM demo.bc_online_big', '{\"async\": true}')"))
    request = int(big[0]["request_id"])
    row = _row_object(db, bc_features, 3)
    latencies = []
    for _ in range(5):
        started = time.perf_counter()
        rows = _rows(sql_cli(dsn, f"CALL mlbridge.predict_row('bc', {row})"))
        latencies.append(time.perf_counter() - started)
        assert rows[0]["error"] is None
    cur.execute("SELECT status FROM requests WHERE id = %s", (request,))
    assert cur.fetchone()[0] in ("pending", "running", "done")
    _rows(sql_cli(dsn, f"CALL mlbridge.request_wait({request}, 300)"))


# -- typed values ---------------------------------------------------------------------------------

def build_mixed(path):
    """A model over a string, a date as text, a float that may be missing and an int64:
    score = (x, or -1 where missing) + n + length(color) + 100 * (day = '2024-05-01')."""
    import tensorflow as tf

    class Mixed(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="color"),
                                      tf.TensorSpec([None], tf.string, name="day"),
                                      tf.TensorSpec([None], tf.float32, name="x"),
                                      tf.TensorSpec([None], tf.int64, name="n")])
        def serve(self, color, day, x, n):
            x = tf.where(tf.math.is_nan(x), -1.0, x)
            score = (tf.cast(x, tf.float64) + tf.cast(n, tf.float64) + tf.cast(tf.strings.length(color), tf.float64)
                     + 100.0 * tf.cast(tf.equal(day, "2024-05-01"), tf.float64))
            return {"score": score, "day_seen": day}

    module = Mixed()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


@pytest.fixture(scope="module")
def mixed_model(dsn, model_base, model_server, bridge):
    path = build_mixed(model_base / "mixed" / "1")
    inputs = [{"name": "color", "dtype": "string", "shape": [-1]}, {"name": "day", "dtype": "string", "shape": [-1]},
              {"name": "x", "dtype": "float32", "shape": [-1], "missing": True},
              {"name": "n", "dtype": "int64", "shape": [-1]}]
    db = connect(dsn)
    cur = db.cursor()
    cur.execute("REPLACE INTO model_versions (name, version, inputs, outputs, score_output, source) "
                "VALUES ('mixed', 1, %s, '[]', 'score', 'trainer')", (json.dumps(inputs),))
    wait_served(model_server.target, "mixed", 1)
    cur.execute("CREATE DATABASE IF NOT EXISTS demo")
    cur.execute("DROP TABLE IF EXISTS demo.mixed")
    cur.execute("CREATE TABLE demo.mixed (k VARCHAR(400) PRIMARY KEY, color VARCHAR(20), day DATE, x DOUBLE, "
                "nt VARCHAR(20), big LONGTEXT)")
    long_a, long_b = "k" * 300 + "a", "k" * 300 + "b"
    cur.executemany("INSERT INTO demo.mixed VALUES (%s, %s, %s, %s, %s, %s)", [
        ("r1", "red", "2024-05-01", 1.5, "7", None),
        ("r2", "green", "2024-05-02", None, "3", None),      # x missing: the model takes it
        ("r3", "blue", "2024-05-01", 2.0, "1_000", None),    # not a complete number
        ("r4", None, "2024-05-01", 2.0, "1", None),          # color NULL: the model needs a value
        ("r5", "red", "2024-05-03", 2.0, "nan", None),       # n is no number
        (long_a, "red", "2024-05-01", 0.0, "1", None),      # keys alike in their first 255 characters
        (long_b, "red", "2024-05-01", 0.0, "2", None),
        ("r8", "red", "2024-05-01", 0.0, "1", "x" * 2_000_000),  # over max_row_bytes
    ])
    db.close()
    return path


def test_typed_values_travel_and_bad_ones_fail_alone(dsn, mixed_model):
    rows = _rows(sql_cli(dsn, "CALL mlbridge.predict_scores('mixed', 'SELECT k, color, day, x, nt AS n FROM demo.mixed "
                              "WHERE big IS NULL', '{\"key\": \"k\"}')"))
    by_key = {r["row_key"]: r for r in rows}
    assert len(rows) == 7 and len(by_key) == 7  # long keys kept whole: no collision
    expected = call_directly(mixed_model, color=[b"red", b"green"], day=[b"2024-05-01", b"2024-05-02"],
                             x=np.array([1.5, np.nan], np.float32), n=np.array([7, 3], np.int64))["score"]
    assert float(by_key["r1"]["score"]) == pytest.approx(expected[0]) == 7 + 1.5 + 3 + 100
    assert float(by_key["r2"]["score"]) == pytest.approx(expected[1]) == 3 - 1 + 5
    assert json.loads(by_key["r1"]["output"])["day_seen"] == "2024-05-01"  # dates as ISO-8601 text
    assert "column n: \"1_000\" is not a number (int64)" in by_key["r3"]["error"]
    assert by_key["r4"]["error"] == "mlbridge: column color: NULL, but the model needs a value (string)"
    assert "column n: \"nan\" is not a number" in by_key["r5"]["error"]
    assert float(by_key["k" * 300 + "a"]["score"]) == pytest.approx(104)
    assert float(by_key["k" * 300 + "b"]["score"]) == pytest.approx(105)


def test_predict_row_refuses_a_null_the_model_cannot_take(dsn, mixed_model):
    """`color` takes no missing value (a model trained by mlbridge takes NULL anywhere)."""
    done = sql_cli(dsn, "CALL mlbridge.predict_row('mixed', JSON_OBJECT('color', NULL, 'day', '2024-05-01', "
                        "'x', 1, 'n', 1))")
    assert "ERROR 1644 (45000)" in done.stderr and "is null, but model mixed" in done.stderr, done.stderr


def test_a_row_over_the_size_limit_fails_alone(dsn, db, mixed_model):
    rows = _rows(sql_cli(dsn, "CALL mlbridge.predict_scores('mixed', 'SELECT k, big AS color, day, x, nt AS n "
                              "FROM demo.mixed WHERE k IN (''r1'', ''r8'')', '{\"key\": \"k\"}')"))
    by_key = {r["row_key"]: r for r in rows}
    # 2,000,000 bytes of `big` and the 1 of `nt`: text counts, numbers and dates do not
    assert "this row holds 2000001 bytes" in by_key["r8"]["error"] and "max_row_bytes" in by_key["r8"]["error"]
    assert "column color: NULL" in by_key["r1"]["error"]  # the other row went on to the bridge


# -- hostile callers ---------------------------------------------------------------------------------

def test_a_400_digit_number_fails_its_row_and_stalls_nobody(dsn, db, bc_model, bc_features):
    """It used to raise OverflowError in the bridge and strand every chunk claimed with it."""
    columns = ", ".join(f"JSON_EXTRACT(CONCAT(''['', REPEAT(''9'', 400), '']''), ''$[0]'') AS `{f}`" if i == 0
                        else f"`{f}`" for i, f in enumerate(bc_features))
    hostile = _rows(sql_cli(dsn, "CALL mlbridge.predict_scores('bc', 'SELECT id, " + columns
                                 + " FROM demo.breast_cancer WHERE id <= 3', '{\"async\": true}')"))
    request = int(hostile[0]["request_id"])
    started = time.monotonic()
    other = _rows(sql_cli(dsn, "CALL mlbridge.predict_scores('bc', 'SELECT * FROM demo.breast_cancer WHERE id <= 50', "
                               "'{\"timeout\": 30}')"))
    assert len(other) == 50 and all(r["error"] is None for r in other)
    assert time.monotonic() - started < 30
    status = _rows(sql_cli(dsn, f"CALL mlbridge.request_wait({request}, 30)"))[0]
    assert (status["status"], status["rows_failed"]) == ("done", "3")
    results = _rows(sql_cli(dsn, f"CALL mlbridge.request_results({request})"))
    assert all(f"column {bc_features[0]}" in r["error"] and "out of range for float32" in r["error"] for r in results)


def test_text_features_are_taken_only_as_complete_numbers(dsn, bc_model, bc_features, bc_scores):
    """A VARCHAR feature: '1_000' (Python's float() reads 1000), ' 12', 'nan' and Arabic-Indic
    digits fail their own rows; plain decimal text scores as the number itself."""
    first = bc_features[0]
    texts = {1: "1_000", 2: " 12", 3: "nan", 4: "\u0661\u0662"}
    case = " ".join(f"WHEN {i} THEN ''{t}''" for i, t in texts.items())
    columns = ", ".join([f"CASE id {case} ELSE CAST(`{first}` AS CHAR) END AS `{first}`"]
                        + [f"`{f}`" for f in bc_features[1:]])
    rows = _rows(sql_cli(dsn, f"CALL mlbridge.predict_scores('bc', 'SELECT id, {columns} FROM demo.breast_cancer "
                              "WHERE id <= 6', NULL)"))
    by_key = {r["row_key"]: r for r in rows}
    assert sorted(by_key) == ["1", "2", "3", "4", "5", "6"]
    for i, text in texts.items():
        error = by_key[str(i)]["error"] or ""
        assert error.startswith(f"mlbridge: column {first}: {json.dumps(text)} is not a number (float32): "), error
        assert by_key[str(i)]["score"] is None
    assert "TRIM()" in by_key["2"]["error"] and "plain decimal number" in by_key["1"]["error"]
    for key in ("5", "6"):
        assert by_key[key]["error"] is None and float(by_key[key]["score"]) == pytest.approx(bc_scores[key], abs=1e-6)


def test_an_idle_transaction_holding_catalog_locks_stalls_no_scoring(dsn, db, bc_model, alice):
    """A session that locks the catalog and idles blocks the bridge's catalog sync; scoring and
    queueing go on (housekeeping runs on a thread and connection of its own)."""
    locker = connect(dsn.__class__(**{**dsn.__dict__, "user": alice, "password": "pw"}), autocommit=False)
    cur = locker.cursor()
    cur.execute("SELECT * FROM mlbridge.models LOCK IN SHARE MODE")
    cur.fetchall()
    try:
        for _ in range(3):
            started = time.monotonic()
            rows = _rows(sql_cli(dsn, "CALL mlbridge.predict_scores('bc', 'SELECT * FROM demo.breast_cancer "
                                      "WHERE id <= 20', '{\"timeout\": 30}')"))
            assert len(rows) == 20 and time.monotonic() - started < 15
            time.sleep(2)  # housekeeping rounds come and wait on the lock meanwhile
    finally:
        locker.rollback()
        locker.close()


def test_concurrent_callers_each_get_their_own_rows(dsn, bc_model, bc_scores):
    errors = []

    def caller(low: int) -> None:
        try:
            got = _scores_by_key(dsn, f"SELECT * FROM demo.breast_cancer WHERE id BETWEEN {low} AND {low + 49}")
            assert sorted(int(k) for k in got) == list(range(low, low + 50))
            # float32: the server may batch the callers' rows together, which can move a score's last bits
            assert all(got[k] == pytest.approx(bc_scores[k], abs=1e-6) for k in got)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(1 + 100 * i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors


# -- waking the bridge ----------------------------------------------------------------------------

def test_queueing_wakes_a_parked_bridge(dsn, db, bc_model, bc_features, bridge, model_server, tmp_path):
    """A bridge that would look at the queue only every 60 s scores a row at once: queueing woke it."""
    from ..procs import start_bridge

    row = _row_object(db, bc_features, 5)
    with bridge.paused(), start_bridge(dsn, model_server.target, tmp_path, "--idle-max", "60") as slow:
        cur = db.cursor()
        _wait_parked(cur, slow)
        rows = _rows(sql_cli(dsn, f"CALL mlbridge.predict_row('bc', {row})"))  # predict_row_timeout: 10 s
        assert rows[0]["error"] is None, slow.output()[-2000:]
        # Parked again in its 60 s wait, it stops on SIGTERM alone, at once: the stop ends the wait.
        _wait_parked(cur, slow)
        slow.proc.send_signal(signal.SIGTERM)
        try:
            assert slow.proc.wait(15) == 0, slow.output()[-2000:]
        except subprocess.TimeoutExpired:
            raise AssertionError("a parked bridge sat out its wait after SIGTERM:\n" + slow.output()[-2000:]) from None


def _wait_parked(cur, bridge, timeout: float = 60) -> None:
    """Until both lanes of ``bridge`` sleep on their parked connections."""
    deadline = time.monotonic() + timeout
    while True:
        cur.execute("SELECT COUNT(*) FROM bridge_wakeups AS w JOIN information_schema.PROCESSLIST AS p "
                    "ON p.ID = w.connection_id WHERE w.bridge LIKE %s AND p.INFO LIKE '%%mlbridge_wake%%'",
                    (f"%:{bridge.proc.pid}:%",))
        if cur.fetchone()[0] >= 2:
            return
        assert time.monotonic() < deadline, bridge.output()[-2000:]
        time.sleep(0.1)


def test_without_the_wake_up_grants_bridges_poll(dsn, db, bc_model, bc_features, bridge, model_server, tmp_path):
    from ..procs import start_bridge

    cur = db.cursor()
    cur.execute("REVOKE PROCESS, CONNECTION ADMIN ON *.* FROM 'mlbridge_definer'@'localhost'")
    try:
        row = _row_object(db, bc_features, 5)
        with bridge.paused(), start_bridge(dsn, model_server.target, tmp_path, "--idle-max", "0.2"):
            for _ in range(3):
                assert _rows(sql_cli(dsn, f"CALL mlbridge.predict_row('bc', {row})"))[0]["error"] is None
    finally:
        cur.execute("GRANT PROCESS, CONNECTION ADMIN ON *.* TO 'mlbridge_definer'@'localhost'")


def test_a_null_in_an_all_number_table_is_imputed_by_the_model(dsn, db, bc_model, bc_scores):
    """All-number chunks are read as one float matrix; a NULL sends the chunk value by value,
    as NaN, which a model mlbridge trained imputes."""
    _table(db, "DROP TABLE IF EXISTS demo.bc_null")
    _table(db, "CREATE TABLE demo.bc_null AS SELECT * FROM demo.breast_cancer WHERE id <= 30")
    _table(db, "ALTER TABLE demo.bc_null MODIFY mean_texture DOUBLE NULL")
    _table(db, "UPDATE demo.bc_null SET mean_texture = NULL WHERE id = 11")
    rows = {r["row_key"]: r for r in _rows(sql_cli(dsn, "CALL mlbridge.predict_scores('bc', "
                                                        "'SELECT * FROM demo.bc_null', NULL)"))}
    assert rows["11"]["error"] is None and 0 <= float(rows["11"]["score"]) <= 1
    assert all(float(r["score"]) == pytest.approx(bc_scores[k], abs=1e-6)  # float32, batch of 30 vs 569
               for k, r in rows.items() if k != "11")


def test_long_text_keys_repeat_only_when_equal_whole(dsn, mixed_model):
    """Text keys are grouped by their first 255 characters, then compared whole."""
    row = "SELECT CONCAT(REPEAT(''k'', 300), ''{}'') AS k, ''red'' AS color, ''2024-05-01'' AS day, 1.0 AS x, 1 AS n"
    query = " UNION ALL ".join(row.format(tail) for tail in ("a", "b", "a", "c"))
    rows = _rows(sql_cli(dsn, f"CALL mlbridge.predict_scores('mixed', '{query}', '{{\"key\": \"k\"}}')"))
    by_tail = {}
    for r in rows:
        by_tail.setdefault(r["row_key"][-1], []).append(r)
    assert len(by_tail["a"]) == 2 and all("repeats in this request" in r["error"] for r in by_tail["a"])
    assert by_tail["b"][0]["error"] is None and by_tail["c"][0]["error"] is None
