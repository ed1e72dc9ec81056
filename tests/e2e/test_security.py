"""mlbridge's security model, tried with real accounts on a schema of its own (`mlbridge_sec`,
which no bridge watches, so queued work stays as it was queued): requests belong to the
authenticated account, helpers cannot be called around the public routines, open transactions
are refused, limits hold per account, accounts take turns, finished work is purged, and hostile
arguments change nothing."""

from __future__ import annotations

import json
import time

import mysql.connector
import pytest

from mlbridge.config import Dsn
from mlbridge.db import connect, quote_ident
from mlbridge.db.accounts import Account, grant, routine_name
from mlbridge.db.install import DEFINER, data_schema, install, routine_files, scratch_schema
from mlbridge.errors import MlbridgeError

from ..accounts import create_account, drop_account
from ..procs import parse_tsv, setting, sql_cli, start_bridge

INPUTS = json.dumps([{"name": "f1", "dtype": "float32", "shape": [-1]}, {"name": "f2", "dtype": "float32", "shape": [-1]}])


@pytest.fixture(scope="module")
def sec(dsn):
    target = Dsn(**{**dsn.__dict__, "database": "mlbridge_sec"})
    install(target)
    conn = connect(target)
    cur = conn.cursor()
    cur.execute("CREATE DATABASE IF NOT EXISTS sec")
    cur.execute("CREATE TABLE IF NOT EXISTS sec.t (id INT PRIMARY KEY, f1 DOUBLE, f2 DOUBLE, y INT)")
    cur.execute("INSERT IGNORE INTO sec.t WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) "
                "SELECT i, i / 10, i % 7, i % 2 FROM n")
    cur.execute("CREATE TABLE IF NOT EXISTS sec.canary (id INT PRIMARY KEY, secret VARCHAR(32))")
    cur.execute("INSERT IGNORE INTO sec.canary VALUES (1, 'tweet')")
    cur.execute("INSERT IGNORE INTO model_versions (name, version, inputs, outputs, score_output, source) "
                "VALUES ('fake', 1, %s, '[{\"name\": \"score\"}]', 'score', 'server')", (INPUTS,))
    accounts = [create_account(target, "sec_a", grants=("SELECT ON sec.t",)),
                create_account(target, "sec_b", grants=("SELECT ON sec.t",)),
                create_account(target, "sec_admin", role="mlbridge_admin")]
    yield target
    for account in accounts:
        drop_account(target, account)
    for name in (target.database, scratch_schema(target.database), data_schema(target.database), "sec"):
        cur.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)}")
    conn.close()


def call(dsn: Dsn, user: str, sql: str):
    return sql_cli(dsn, sql, user=user, password="pw")


def queue(dsn: Dsn, user: str, rows: int = 10) -> int:
    done = call(dsn, user, f"CALL mlbridge_sec.predict_scores('fake', 'SELECT id, f1, f2 FROM sec.t WHERE id <= {rows}', "
                           "'{\"async\": true}')")
    assert done.returncode == 0, done.stderr
    return int(parse_tsv(done.stdout)[0]["request_id"])


def counts(db) -> tuple:
    cur = db.cursor()
    cur.execute("SELECT COUNT(*) FROM mlbridge_sec.requests")
    requests = cur.fetchone()[0]
    cur.execute("SELECT COUNT(*) FROM information_schema.TABLES")
    tables = cur.fetchone()[0]
    cur.execute("SELECT COUNT(*) FROM mysql.user")
    users = cur.fetchone()[0]
    cur.execute("SELECT COUNT(*) FROM information_schema.ROUTINES")
    routines = cur.fetchone()[0]
    cur.execute("CHECKSUM TABLE sec.canary")
    canary = cur.fetchone()[1]
    return requests, tables, users, routines, canary


def test_requests_belong_to_the_authenticated_account(sec, db):
    mine = queue(sec, "sec_a")
    cur = db.cursor()
    cur.execute("SELECT owner FROM mlbridge_sec.requests WHERE id = %s", (mine,))
    assert cur.fetchone()[0] == "sec_a@%"
    for routine in ("request_status({})", "request_results({})", "request_cancel({})", "request_wait({}, 1)"):
        done = call(sec, "sec_b", f"CALL mlbridge_sec.{routine.format(mine)}")
        assert f"no request {mine} of account sec_b@%" in done.stderr, (routine, done.stderr)
    listed = parse_tsv(call(sec, "sec_b", "CALL mlbridge_sec.request_list(1000)").stdout)
    assert mine not in [int(r["request_id"]) for r in listed]
    assert mine in [int(r["request_id"]) for r in parse_tsv(call(sec, "sec_a", "CALL mlbridge_sec.request_list(5)").stdout)]
    cur.execute("SELECT status FROM mlbridge_sec.requests WHERE id = %s", (mine,))
    assert cur.fetchone()[0] == "pending"  # b's cancel changed nothing


def test_an_anonymous_account_cannot_pass_for_another(sec, db):
    """''@localhost outranks sec_a@'%' for a login from localhost: a password-less login that types
    `sec_a` is the anonymous account, and mlbridge refuses it, whatever name was typed."""
    mine = queue(sec, "sec_a")
    cur = db.cursor()
    cur.execute("CREATE USER ''@'localhost'")
    try:
        cur.execute("GRANT mlbridge_user TO ''@'localhost'")
        cur.execute("SET DEFAULT ROLE mlbridge_user FOR ''@'localhost'")
        for sql in ("CALL mlbridge_sec.request_list(10)", f"CALL mlbridge_sec.request_results({mine})"):
            done = sql_cli(sec, sql, user="sec_a", password="")
            assert "anonymous accounts cannot use mlbridge" in done.stderr, done.stderr
        with pytest.raises(MlbridgeError, match="anonymous accounts"):
            Account.parse("''@localhost")
    finally:
        cur.execute("DROP USER ''@'localhost'")


def test_one_name_on_two_hosts_is_two_accounts(sec, db):
    local = create_account(sec, "twin", host="localhost", grants=("SELECT ON sec.t",))
    anywhere = create_account(sec, "twin", host="%", grants=("SELECT ON sec.t",))
    try:
        assert routine_name(local.name) != routine_name(anywhere.name)
        mine = queue(sec, "twin")  # a login from here is twin@localhost
        cur = db.cursor()
        cur.execute("SELECT owner FROM mlbridge_sec.requests WHERE id = %s", (mine,))
        assert cur.fetchone()[0] == "twin@localhost"
        cur.execute("UPDATE mlbridge_sec.requests SET owner = 'twin@%' WHERE id = %s", (mine,))
        done = call(sec, "twin", f"CALL mlbridge_sec.request_status({mine})")
        assert f"no request {mine} of account twin@localhost" in done.stderr
    finally:
        drop_account(sec, local)
        drop_account(sec, anywhere)


def _granted(text: str) -> bool:
    return "-- execute: mlbridge_user" in text


def test_inner_routines_are_out_of_reach(sec, db):
    theirs = queue(sec, "sec_b")
    for path in routine_files():
        text = path.read_text()
        if path.stem.startswith("_") and not _granted(text):
            done = call(sec, "sec_a", f"CALL mlbridge_sec.{path.stem}()")
            assert "ERROR 1370" in done.stderr, (path.stem, done.stderr)  # execute command denied
    # the hand-offs a caller may reach refuse a call that skipped _attest ...
    for routine in ("_request_status({})", "_request_results({})", "_request_cancel({})", "_wait_request({}, 1, @s)",
                    "_output_rows({}, @o, @k)", "_output_written({}, @f)", "_request_list(10)", "_model_queries(NULL)",
                    "_predict_row('fake', '{{}}')", "_enqueue_predict('fake:1', 'id', NULL, NULL, @r)",
                    "_enqueue_job('score', 'fake', 'y', 'SELECT 1', NULL, @r)"):
        done = call(sec, "sec_a", f"CALL mlbridge_sec.{routine.format(theirs)}")
        assert "inner routine of mlbridge" in done.stderr, (routine, done.stderr)
    # ... and with an attestation they act for the attested account only
    done = call(sec, "sec_a", f"CALL mlbridge_sec._attest(); CALL mlbridge_sec._request_status({theirs})")
    assert f"no request {theirs} of account sec_a@%" in done.stderr
    # nobody runs another account's attestation routine
    done = call(sec, "sec_a", f"CALL mlbridge_sec.`{routine_name('sec_b@%')}`()")
    assert "ERROR 1370" in done.stderr


@pytest.mark.parametrize("staged, call_args, message", [
    ("(1, 1, 1, 1), (3, 3, 3, 3)", "'fake', 'id', NULL, NULL", "numbered 1..N"),
    ("(1, 1, 1, 1)", "'fake', 'id', '{\"priority\": 0}', NULL", 'unknown option "priority"'),
    ("(1, 1, 1, 1)", "'fake', 'id', '[1, 2]', NULL", "options must be a JSON object"),
    ("(1, 1, 1, 1)", "'fake', 'id', CONCAT('{\"async\": true, \"pad\": \"', REPEAT('x', 1000000), '\"}'), NULL",
     "longer than 4096 bytes"),
    ("(1, 1, 1, 1)", "'fake', CONCAT('i', CHAR(0)), NULL, NULL", "key column"),
    ("(1, 1, 1, 1)", "'fake', 'id', '{\"key\": \"other\"}', NULL", "key column"),
    ("(1, 1, 1, 1)", "'fake', 'id', NULL, 'sec.t'", "quoted `db`.`table`"),
])
def test_a_direct_enqueue_is_checked_like_the_public_routines(sec, db, staged, call_args, message):
    before = counts(db)
    done = call(sec, "sec_a", "CREATE TEMPORARY TABLE mlbridge_sec_scratch.predict_input "
                              "(seq INT UNSIGNED PRIMARY KEY, k INT, i1 DOUBLE, i2 DOUBLE); "
                              f"INSERT INTO mlbridge_sec_scratch.predict_input VALUES {staged}; "
                              f"CALL mlbridge_sec._attest(); CALL mlbridge_sec._enqueue_predict({call_args}, @r)")
    assert message in done.stderr, done.stderr
    assert counts(db) == before


@pytest.mark.parametrize("routine", ["request_results({})", "request_status({})", "request_list(5)",
                                     "request_wait({}, 1)", "request_cancel({})"])
def test_read_routines_refuse_an_open_transaction(sec, routine):
    """A SERIALIZABLE transaction left open would make their reads shared locks that the bridge's
    writes wait on, for every account."""
    mine = queue(sec, "sec_a")
    for prefix in ("SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE; START TRANSACTION;", "SET autocommit = 0;"):
        done = call(sec, "sec_a", f"{prefix} CALL mlbridge_sec.{routine.format(mine)}")
        assert "runs outside transactions" in done.stderr, done.stderr


def test_limits_hold_per_account(sec, db):
    with setting(connect(sec), "max_requests_in_flight", "2"):
        cur = db.cursor()
        cur.execute("UPDATE mlbridge_sec.requests SET status = 'cancelled' WHERE status IN ('pending', 'running')")
        queue(sec, "sec_a")
        queue(sec, "sec_a")
        refused = call(sec, "sec_a", "CALL mlbridge_sec.predict_scores('fake', 'SELECT id, f1, f2 FROM sec.t', "
                                     "'{\"async\": true}')")
        assert "has 2 requests in flight; the limit is 2" in refused.stderr
        queue(sec, "sec_b")  # another account is not held back by a's
    with setting(connect(sec), "max_rows_in_flight", "150"):
        refused = call(sec, "sec_b", "CALL mlbridge_sec.predict_scores('fake', 'SELECT id, f1, f2 FROM sec.t', "
                                     "'{\"async\": true}')")
        assert "rows in flight" in refused.stderr and "max_rows_in_flight" in refused.stderr
    huge = call(sec, "sec_a", "CALL mlbridge_sec.predict_scores('fake', 'SELECT id, f1, f2 FROM sec.t', "
                              "'{\"timeout\": 1e308}')")
    assert "at most 3600" in huge.stderr
    waited = call(sec, "sec_a", f"CALL mlbridge_sec.request_wait({queue(sec, 'sec_a')}, 1e308)")
    assert "at most 3600" in waited.stderr


def test_accounts_take_turns_at_the_bridges(sec, db):
    """a queues 600 rows in 12 chunks, then b 50 rows: b's chunk is claimed second, not 13th."""
    cur = db.cursor()
    cur.execute("UPDATE mlbridge_sec.predict_queue SET state = 'cancelled' WHERE state = 'pending'")
    cur.execute("UPDATE mlbridge_sec.requests SET status = 'cancelled' WHERE status IN ('pending', 'running')")
    with setting(connect(sec), "chunk_rows", "50"):
        first = [queue(sec, "sec_a", 200) for _ in range(3)]
        second = queue(sec, "sec_b", 50)
    cur.execute("SELECT request_id FROM mlbridge_sec.predict_queue WHERE state = 'pending' "
                "ORDER BY priority, vtime, id")
    order = [row[0] for row in cur.fetchall()]
    assert len(order) == 13 and set(order) == {*first, second}
    assert order.index(second) <= 1, order


def test_finished_requests_are_purged_in_the_background(sec, db, model_server, tmp_path):
    cur = db.cursor()
    done = queue(sec, "sec_a")
    cur.execute(f"INSERT INTO mlbridge_sec.results (request_id, seq, score) SELECT {done}, seq, 0.5 "
                f"FROM mlbridge_sec_data.rows_{done}")
    # a finished predict_table whose output its owner has not copied yet: never purged
    unwritten = queue(sec, "sec_b")
    cur.execute("UPDATE mlbridge_sec.requests SET kind = 'predict_table', output_table = '`sec`.`out`' WHERE id = %s",
                (unwritten,))
    running = queue(sec, "sec_a")
    cur.execute("UPDATE mlbridge_sec.requests SET status = 'done', finished_at = NOW() - INTERVAL 9 DAY "
                "WHERE id IN (%s, %s)", (done, unwritten))
    refused = call(sec, "sec_a", "CALL mlbridge_sec.request_purge(0)")
    assert "ERROR 1370" in refused.stderr  # admins and workers only
    with start_bridge(sec, model_server.target, tmp_path, "--purge-every", "0.5") as bridge:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            cur.execute("SELECT COUNT(*) FROM mlbridge_sec.requests WHERE id = %s", (done,))
            if cur.fetchone()[0] == 0:
                break
            time.sleep(0.2)
        assert "purged" in bridge.output(), bridge.output()[-2000:]
    for table in ("requests WHERE id", "results WHERE request_id", "predict_queue WHERE request_id"):
        cur.execute(f"SELECT COUNT(*) FROM mlbridge_sec.{table} = %s", (done,))
        assert cur.fetchone()[0] == 0, table
    cur.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'mlbridge_sec_data' "
                "AND TABLE_NAME = %s", (f"rows_{done}",))
    assert cur.fetchone()[0] == 0
    cur.execute("SELECT id FROM mlbridge_sec.requests WHERE id IN (%s, %s) ORDER BY id", (unwritten, running))
    assert [row[0] for row in cur.fetchall()] == [unwritten, running]
    # an admin purges on demand, by age
    purged = parse_tsv(call(sec, "sec_admin", "CALL mlbridge_sec.request_purge(30)").stdout)
    assert purged == [{"requests_purged": "0", "rows_purged": "0"}]


# -- the injection corpus ----------------------------------------------------------------------

PAYLOADS = ["`", "'", '"', "\\", ";", "-- x", "/*", "*/", "'; DROP TABLE sec.canary; --",
            "`; DROP TABLE sec.canary; --", "SELECT 1; DROP TABLE sec.canary", "x\x00y", "\x00",
            "fake'); DROP USER root; --", "x" * 1_000_000]


def _routines(db) -> list[tuple[str, list[tuple[str, str]]]]:
    cur = db.cursor()
    cur.execute("SELECT SPECIFIC_NAME, PARAMETER_MODE, DATA_TYPE FROM information_schema.PARAMETERS "
                "WHERE SPECIFIC_SCHEMA = 'mlbridge_sec' AND ROUTINE_TYPE = 'PROCEDURE' ORDER BY SPECIFIC_NAME, "
                "ORDINAL_POSITION")
    found: dict[str, list] = {path.stem: [] for path in routine_files()}
    for name, mode, dtype in cur.fetchall():
        if name in found:
            found[name].append((mode, dtype))
    return sorted(found.items())


def _plausible(dtype: str, position: int) -> object:
    if dtype in ("bigint", "int", "smallint", "double"):
        return 1
    return ["fake", "SELECT id, f1, f2, y FROM sec.t", "y", None][min(position, 3)]


# The only calls that may succeed with a payload: a label for an error message (_no_transaction,
# _table_name's argument name), a query text checked later by the statement that runs it
# (_select_text), and a lookup by name that finds nothing (model_queries).
MAY_ANSWER = {"_no_transaction", "_select_text", "_table_name", "model_queries"}


@pytest.mark.parametrize("user", ["sec_a", "root"])
def test_hostile_arguments_get_errors_and_change_nothing(sec, db, user):
    """Every argument of every routine, as an ordinary account and as root: each payload gets an
    error (mlbridge's, or MySQL's own), except where MAY_ANSWER says why not, and afterwards the
    tables, users, routines and a canary table are as they were."""
    before = counts(db)
    answered = set()
    conn = mysql.connector.connect(host=sec.host, port=sec.port, user=user, password="pw" if user != "root" else "",
                                   database="mlbridge_sec", autocommit=True)
    tried = 0
    try:
        for name, params in _routines(db):
            inputs = [i for i, (mode, _) in enumerate(params) if mode == "IN"]
            for position in inputs:
                for payload in PAYLOADS:
                    args = [None if mode == "OUT" else _plausible(dtype, i) for i, (mode, dtype) in enumerate(params)]
                    args[position] = payload
                    cur = conn.cursor()
                    try:
                        cur.callproc(name, args)
                        for result in cur.stored_results():
                            result.fetchall()
                        answered.add(name)
                    except mysql.connector.Error as exc:
                        assert exc.errno != 2013 and exc.msg, (name, position)  # an answer, not a lost server
                    finally:
                        cur.close()
                    tried += 1
    finally:
        conn.close()
    assert tried > 500
    assert answered <= MAY_ANSWER, answered - MAY_ANSWER
    assert counts(db) == before


def test_a_label_is_pinned_when_queued_and_versions_retire(sec, db):
    cur = db.cursor()
    cur.execute("INSERT IGNORE INTO mlbridge_sec.model_versions (name, version, inputs, outputs, score_output, source) "
                "VALUES ('fake', 2, %s, '[{\"name\": \"score\"}]', 'score', 'server')", (INPUTS,))
    refused = call(sec, "sec_a", "CALL mlbridge_sec.model_label_set('fake', 'prod', 1)")
    assert "ERROR 1370" in refused.stderr  # admins only
    assert call(sec, "sec_admin", "CALL mlbridge_sec.model_label_set('fake', 'prod', 1)").returncode == 0
    pinned = parse_tsv(call(sec, "sec_a", "CALL mlbridge_sec.predict_scores('fake@prod', 'SELECT id, f1, f2 FROM sec.t "
                                          "WHERE id <= 3', '{\"async\": true}')").stdout)[0]["request_id"]
    assert call(sec, "sec_admin", "CALL mlbridge_sec.model_label_set('fake', 'prod', 2)").returncode == 0
    cur.execute("SELECT model_version FROM mlbridge_sec.requests WHERE id = %s", (pinned,))
    assert cur.fetchone()[0] == 1  # the label moved; the queued request did not
    labels = parse_tsv(call(sec, "sec_a", "SELECT version, labels FROM mlbridge_sec.models WHERE name = 'fake'").stdout)
    assert {r["version"]: json.loads(r["labels"]) for r in labels} == {"1": [], "2": ["prod"]}

    assert "points at version 2" in call(sec, "sec_admin", "CALL mlbridge_sec.model_retire('fake', 2)").stderr
    assert call(sec, "sec_admin", "CALL mlbridge_sec.model_label_drop('fake', 'prod')").returncode == 0
    assert call(sec, "sec_admin", "CALL mlbridge_sec.model_retire('fake', 2)").returncode == 0
    # 'fake' now means version 1; 'fake:2' is refused
    newest = parse_tsv(call(sec, "sec_a", "CALL mlbridge_sec.predict_scores('fake', 'SELECT id, f1, f2 FROM sec.t "
                                          "WHERE id <= 3', '{\"async\": true}')").stdout)[0]["request_id"]
    cur.execute("SELECT model_version FROM mlbridge_sec.requests WHERE id = %s", (newest,))
    assert cur.fetchone()[0] == 1
    assert "fake:2 is retired" in call(sec, "sec_a", "CALL mlbridge_sec.predict_scores('fake:2', 'SELECT id, f1, f2 "
                                                     "FROM sec.t', NULL)").stderr
    restored = parse_tsv(call(sec, "sec_admin", "CALL mlbridge_sec.model_restore('fake', 2)").stdout)[0]
    assert restored["state"] == "available"
    cur.execute("DELETE FROM mlbridge_sec.model_versions WHERE name = 'fake' AND version = 2")


def test_grant_works_at_the_next_login_beside_an_existing_default_role(sec, db):
    cur = db.cursor()
    cur.execute("CREATE ROLE IF NOT EXISTS sec_app_role")
    cur.execute("GRANT SELECT ON sec.t TO sec_app_role")
    account = create_account(sec, "sec_c", role=None)
    try:
        cur.execute("GRANT sec_app_role TO 'sec_c'@'%'")
        cur.execute("SET DEFAULT ROLE sec_app_role FOR 'sec_c'@'%'")
        done = grant(connect(sec), sec.database, account, "mlbridge_user", DEFINER)
        assert any("granted mlbridge_user to sec_app_role" in line for line in done), done
        # the next login holds both: it reads sec.t through its own role and calls mlbridge
        mine = queue(sec, "sec_c")
        cur.execute("SELECT owner FROM mlbridge_sec.requests WHERE id = %s", (mine,))
        assert cur.fetchone()[0] == "sec_c@%"
    finally:
        drop_account(sec, account)
        cur.execute("DROP ROLE IF EXISTS sec_app_role")


def test_an_account_granted_the_role_by_hand_is_registered_by_the_next_install(sec, db):
    cur = db.cursor()
    cur.execute("CREATE USER IF NOT EXISTS 'sec_d'@'%' IDENTIFIED BY 'pw'")
    try:
        cur.execute("GRANT mlbridge_user TO 'sec_d'@'%'")
        cur.execute("SET DEFAULT ROLE mlbridge_user FOR 'sec_d'@'%'")
        before = call(sec, "sec_d", "CALL mlbridge_sec.request_list(1)")
        assert "is not registered with mlbridge" in before.stderr
        assert "sec_d@%" in install(sec).accounts_registered
        assert call(sec, "sec_d", "CALL mlbridge_sec.request_list(1)").returncode == 0
    finally:
        drop_account(sec, Account("sec_d"))


def test_a_refused_predict_table_leaves_no_output_behind(sec, db):
    """The output is created before queueing; a refusal there (a limit) drops it again, so the same
    call works once the cause is gone."""
    cur = db.cursor()
    cur.execute("CREATE DATABASE IF NOT EXISTS sec_out")
    cur.execute("GRANT ALL ON sec_out.* TO 'sec_a'@'%'")
    try:
        cur.execute("UPDATE mlbridge_sec.requests SET status = 'cancelled' WHERE status IN ('pending', 'running')")
        sql = "CALL mlbridge_sec.predict_table('fake', 'sec.t', 'sec_out.scores', '{\"async\": true}')"
        with setting(connect(sec), "max_rows_in_flight", "10"):
            assert "rows in flight" in call(sec, "sec_a", sql).stderr
        cur.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'sec_out'")
        assert cur.fetchone()[0] == 0
        assert call(sec, "sec_a", sql).returncode == 0
    finally:
        cur.execute("DROP DATABASE IF EXISTS sec_out")


def test_a_newcomer_after_a_quiet_spell_does_not_go_ahead_of_old_accounts(sec, db):
    """With nothing pending, new chunks start at the latest virtual time any account reached:
    an account that has queued much in the past is not pushed back for as long as a newcomer
    (starting from 0) would take to catch up."""
    cur = db.cursor()
    cur.execute("UPDATE mlbridge_sec.predict_queue SET state = 'cancelled' WHERE state = 'pending'")
    cur.execute("UPDATE mlbridge_sec.requests SET status = 'cancelled' WHERE status IN ('pending', 'running')")
    cur.execute("UPDATE mlbridge_sec.accounts SET vtime = IF(account = 'sec_a@%', 1e9, 0)")
    newcomer = queue(sec, "sec_b", 50)
    cur.execute("SELECT MIN(vtime) FROM mlbridge_sec.predict_queue WHERE request_id = %s", (newcomer,))
    assert cur.fetchone()[0] >= 1e9
