"""The bridge's queue protocol on a real database: claims race, results keep their text."""

from __future__ import annotations

import threading

from mlbridge.bridge.queue import Queue, results_values
from mlbridge.db import connect, query

from .test_sql_surface import INPUTS


def test_results_statement_keeps_every_character(dsn):
    conn = connect(dsn)
    cur = conn.cursor()
    cur.execute("CREATE TEMPORARY TABLE esc LIKE results")
    nasty = ["it's", "back\\slash", "new\nline", "nul\x00byte", "ctrl-z\x1a", "crlf\r\n", "ünïcødé ✓ 𝄞", "%s %(x)s", ""]
    results = [(i + 1, key, 0.1 * i, f'{{"k":{i}}}', key) for i, key in enumerate(nasty)]
    cur.execute(query("insert_results").replace("results", "esc", 1).replace("{values}", results_values(9, results)))
    cur.execute("SELECT seq, row_key, score, output, error FROM esc ORDER BY seq")
    got = cur.fetchall()
    assert [(g[1], g[4]) for g in got] == [(k, k) for k in nasty]
    assert [g[2] for g in got] == [r[2] for r in results]
    conn.close()


def test_two_connections_racing_never_claim_the_same_chunk(surface):
    """Two claimers (each its own connection, as two bridges) drain one request's chunks."""
    dsn = surface
    conn = connect(dsn)
    cur = conn.cursor()
    cur.execute("CREATE DATABASE IF NOT EXISTS racetest")
    cur.execute("CREATE TABLE IF NOT EXISTS racetest.t (id INT PRIMARY KEY, f1 DOUBLE, f2 DOUBLE)")
    cur.execute("DELETE FROM racetest.t")
    cur.executemany("INSERT INTO racetest.t VALUES (%s, %s, %s)", [(i, i, i) for i in range(1, 40_001)])
    cur.execute("INSERT IGNORE INTO models (name, version, inputs, outputs, source) VALUES "
                "('racefake', 1, %s, '[]', 'trainer')", (INPUTS,))
    cur.callproc("predict_scores", ("racefake", "SELECT id, f1, f2 FROM racetest.t", '{"async": true}'))
    request = next(cur.stored_results()).fetchone()[0]
    cur.execute("SELECT COUNT(*) FROM predict_queue WHERE request_id = %s", (request,))
    chunks = cur.fetchone()[0]
    assert chunks == 40
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
    cur.execute("INSERT IGNORE INTO models (name, version, inputs, outputs, source) VALUES "
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
