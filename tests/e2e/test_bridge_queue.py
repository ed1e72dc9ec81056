"""The bridge's queue protocol on a real database: claims race, results keep their text."""

from __future__ import annotations

import contextlib
import json
import threading

import pytest

from mlbridge.bridge.queue import Queue
from mlbridge.bridge.rows import Result
from mlbridge.bridge.sink import DuplicateResult, ResultWriter, local_folder
from mlbridge.db import close_quietly, connect, quote_ident

from .test_sql_surface import INPUTS


@contextlib.contextmanager
def results_writer(dsn, local: bool):
    """A writer and a cursor on a schema of its own holding a results table, which the writer's
    unqualified `results` finds (the session's USE)."""
    folder = local_folder()
    conn = connect(dsn, allow_local_infile_in_path=str(folder))
    writer = ResultWriter(folder, use_local=local, local_min_rows=1)
    cur = conn.cursor()
    try:
        cur.execute("SET SESSION sql_mode = REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', '')")
        cur.execute("CREATE DATABASE IF NOT EXISTS results_writer_test")
        cur.execute("DROP TABLE IF EXISTS results_writer_test.results")
        cur.execute(f"CREATE TABLE results_writer_test.results LIKE {quote_ident(dsn.database)}.results")
        cur.execute("USE results_writer_test")
        yield writer, cur
    finally:
        writer.close()
        conn.cursor().execute("DROP DATABASE IF EXISTS results_writer_test")
        conn.close()


@pytest.mark.parametrize("local", [True, False], ids=["load-data-local", "insert"])
def test_results_keep_every_character(dsn, local):
    with results_writer(dsn, local) as (writer, cur):
        nasty = ["it's", "back\\slash", "new\nline", "tab\there", "nul\x00byte", "ctrl-z\x1a", "crlf\r\n",
                 "ünïcødé ✓ 𝄞", "%s %(x)s", "\\N", "", "end\\"]
        results = [Result(i + 1, 0.1 * i, json.dumps({"k": text}), text) for i, text in enumerate(nasty)]
        results.append(Result(len(nasty) + 1))
        writer.write(cur, 9, results)
        cur.execute("SELECT seq, score, output, error FROM results WHERE request_id = 9 ORDER BY seq")
        got = cur.fetchall()
        assert [g[3] for g in got] == nasty + [None]
        assert [g[1] for g in got] == [r.score for r in results]
        assert [json.loads(g[2])["k"] for g in got[:-1]] == nasty and got[-1][2] is None
        with pytest.raises(DuplicateResult):
            writer.write(cur, 9, results[:1])


def test_two_connections_racing_never_claim_the_same_chunk(surface):
    """Two claimers (each its own connection, as two bridges) drain one request's chunks."""
    dsn = surface
    conn = connect(dsn)
    cur = conn.cursor()
    cur.execute("CREATE DATABASE IF NOT EXISTS racetest")
    cur.execute("CREATE TABLE IF NOT EXISTS racetest.t (id INT PRIMARY KEY, f1 DOUBLE, f2 DOUBLE)")
    cur.execute("DELETE FROM racetest.t")
    cur.executemany("INSERT INTO racetest.t VALUES (%s, %s, %s)", [(i, i, i) for i in range(1, 40_001)])
    cur.execute("INSERT IGNORE INTO model_versions (name, version, inputs, outputs, source) VALUES "
                "('racefake', 1, %s, '[]', 'trainer')", (INPUTS,))
    cur.callproc("predict_scores", ("racefake", "SELECT id, f1, f2 FROM racetest.t", '{"async": true}'))
    request = next(cur.stored_results()).fetchone()[0]
    cur.execute("SELECT COUNT(*) FROM predict_queue WHERE request_id = %s", (request,))
    chunks = cur.fetchone()[0]
    cur.execute("SELECT value FROM settings WHERE name = 'chunk_rows'")
    assert chunks == -(-40_000 // int(cur.fetchone()[0])) > 1
    claimed: dict[str, list[int]] = {"a": [], "b": []}
    start = threading.Barrier(2)

    def claimer(name: str) -> None:
        own = connect(dsn)
        queue = Queue(own, f"racer-{name}", lease_seconds=600)
        start.wait()
        while got := queue.claim(2):
            for chunk in got:
                if chunk.request_id == request:
                    claimed[name].append(chunk.id)
                else:  # another test's request left in this schema: hand it back untouched
                    queue.release(chunk, 3600)
        own.close()

    threads = [threading.Thread(target=claimer, args=(n,)) for n in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    a, b = set(claimed["a"]), set(claimed["b"])
    assert not a & b
    assert len(a) + len(b) == chunks == len(claimed["a"]) + len(claimed["b"])
    cur.execute("SELECT COUNT(*) FROM predict_queue WHERE request_id = %s AND state = 'running' AND attempts = 1",
                (request,))
    assert cur.fetchone()[0] == chunks
    cur.callproc("request_cancel", (request,))
    conn.close()


def test_the_heartbeat_keeps_a_slow_chunk_and_lets_a_dead_one_go(surface):
    import time

    from mlbridge.bridge.heartbeat import Heartbeat

    dsn = surface
    conn = connect(dsn)
    cur = conn.cursor()
    cur.execute("INSERT IGNORE INTO model_versions (name, version, inputs, outputs, source) VALUES "
                "('beatfake', 1, %s, '[]', 'trainer')", (INPUTS,))
    cur.execute("CREATE DATABASE IF NOT EXISTS racetest")
    cur.execute("CREATE TABLE IF NOT EXISTS racetest.small (id INT PRIMARY KEY, f1 DOUBLE, f2 DOUBLE)")
    cur.execute("REPLACE INTO racetest.small VALUES (1, 1, 1), (2, 2, 2)")
    cur.callproc("predict_scores", ("beatfake", "SELECT id, f1, f2 FROM racetest.small", '{"async": true}'))
    request = next(cur.stored_results()).fetchone()[0]
    chunk = next(c for c in Queue(connect(dsn), "slow-bridge", lease_seconds=1).claim(50) if c.request_id == request)
    owner = {"id": "slow-bridge"}
    progress = {"at": time.monotonic()}
    beat = Heartbeat(dsn, lambda: owner["id"], 1, lambda: progress["at"], max_silence=30)
    beat.start()
    sweeper = Queue(connect(dsn), "sweeper")
    try:
        time.sleep(2.5)  # over two leases: only the heartbeat keeps the claim
        assert beat.beats >= 3
        assert [c.id for c, _ in sweeper.sweep()] == []
        cur.execute("SELECT state, owner FROM predict_queue WHERE id = %s", (chunk.id,))
        assert cur.fetchone() == ("running", "slow-bridge")
        owner["id"] = "slow-bridge-after-reconnect"  # the chunk is abandoned: no more renewals
        time.sleep(1.5)
        sweeper.sweep()
        cur.execute("SELECT state, owner FROM predict_queue WHERE id = %s", (chunk.id,))
        assert cur.fetchone() == ("pending", None)
    finally:
        beat.stop()
        beat.join(5)
        cur.callproc("request_cancel", (request,))
        conn.close()


def test_results_folder_cleaned_away_is_made_again(dsn):
    import shutil

    with results_writer(dsn, True) as (writer, cur):
        writer.write(cur, 1, [Result(1, 0.5)])
        shutil.rmtree(writer.folder)  # as a tmp cleaner would
        writer.write(cur, 1, [Result(2, 0.25)])
        cur.execute("SELECT seq, score FROM results ORDER BY seq")
        assert cur.fetchall() == [(1, 0.5), (2, 0.25)]
        assert writer.use_local and not list(writer.folder.iterdir())  # still LOAD DATA; no file left behind


def test_a_bridge_session_frozen_inside_a_transaction_is_ended_and_its_locks_go(dsn):
    """A bridge frozen inside one of its transactions (SIGSTOP, a paused VM) would hold its row
    locks for as long as it stays frozen, stalling every caller that needs them. Its sessions carry
    MariaDB's idle_transaction_timeout: the server ends the frozen session, rolls it back, and the
    waiting caller goes on."""
    import time

    import mysql.connector

    from mlbridge.bridge.worker import IDLE_TRANSACTION_SECONDS, _connect

    admin = connect(dsn)
    cur = admin.cursor()
    try:
        cur.execute("SELECT @@version")
        if "MariaDB" not in cur.fetchone()[0]:
            pytest.skip("MySQL has no idle_transaction_timeout")
        cur.execute("CREATE DATABASE IF NOT EXISTS idle_tx_test")
        cur.execute("CREATE OR REPLACE TABLE idle_tx_test.t (id INT PRIMARY KEY)")
        cur.execute("INSERT INTO idle_tx_test.t VALUES (1)")

        default = _connect(dsn)
        default_cur = default.cursor()
        default_cur.execute("SELECT @@session.idle_transaction_timeout")
        assert default_cur.fetchone()[0] == IDLE_TRANSACTION_SECONDS
        default.close()

        frozen = _connect(dsn, idle_transaction_seconds=2)
        frozen.start_transaction()
        frozen_cur = frozen.cursor()
        frozen_cur.execute("SELECT id FROM idle_tx_test.t WHERE id = 1 FOR UPDATE")
        frozen_cur.fetchall()
        # ... and the bridge holding it stops here. A caller needs the row:
        caller = connect(dsn)
        caller_cur = caller.cursor()
        caller_cur.execute("SET SESSION innodb_lock_wait_timeout = 30")
        started = time.monotonic()
        caller_cur.execute("SELECT id FROM idle_tx_test.t WHERE id = 1 FOR UPDATE")
        assert caller_cur.fetchall() == [(1,)]
        waited = time.monotonic() - started
        assert waited < 15, f"the caller waited {waited:.1f} s for the frozen session's lock"
        caller.rollback()
        caller.close()
        # The frozen session was ended: when its bridge wakes up, its next statement fails, and
        # the bridge reconnects (as after any lost connection).
        with pytest.raises(mysql.connector.Error):
            frozen_cur.execute("SELECT 1")
            frozen_cur.fetchall()
        close_quietly(frozen)
    finally:
        cur.execute("DROP DATABASE IF EXISTS idle_tx_test")
        admin.close()
