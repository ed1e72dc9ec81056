"""The first complete path: trained from MySQL, served over gRPC, scored from SQL through the
command-line client, with the real model server and bridge as processes."""

from __future__ import annotations

import json
import re
import shutil
import signal
import time

import numpy as np
import pytest

from mlbridge.db import connect

from ..procs import parse_tsv, setting, sql_cli, start_bridge
from .conftest import wait_served


def saved_model_scores(path, columns: dict[str, list[float]]) -> np.ndarray:
    """Scores straight from the SavedModel, no server, no bridge."""
    import tensorflow as tf

    fn = tf.saved_model.load(str(path)).signatures["serving_default"]
    out = fn(**{name: tf.constant(values, tf.float32) for name, values in columns.items()})
    return out["score"].numpy().astype(np.float64)


def fetch_columns(dsn, sql: str):
    conn = connect(dsn)
    cur = conn.cursor()
    cur.execute(sql)
    names = [d[0] for d in cur.description]
    rows = cur.fetchall()
    conn.close()
    return names, rows


def test_train_reports_a_version_with_holdout_metrics(bc_model, db):
    assert "model bc:" in bc_model["stdout"] and "accuracy" in bc_model["stdout"]
    assert (bc_model["path"] / "saved_model.pb").exists()
    cur = db.cursor()
    cur.execute("SELECT task, JSON_LENGTH(inputs), metrics, state FROM models WHERE name = 'bc' AND version = %s",
                (bc_model["version"],))
    task, n_inputs, metrics, state = cur.fetchone()
    assert (task, n_inputs, state) == ("binary", 30, "available")
    assert json.loads(metrics)["accuracy"] >= 0.9


def test_predict_scores_from_the_sql_client_equals_the_savedmodel(dsn, bc_model, bc_features):
    done = sql_cli(dsn, "CALL mlbridge.predict_scores('bc', 'SELECT * FROM demo.breast_cancer', NULL)")
    assert done.returncode == 0, done.stderr
    rows = parse_tsv(done.stdout)
    assert [r["row_key"] for r in rows] == [str(i) for i in range(1, 570)]
    assert all(r["error"] is None for r in rows)
    names, data = fetch_columns(dsn, f"SELECT id, {', '.join(bc_features)} FROM demo.breast_cancer ORDER BY id")
    expected = saved_model_scores(bc_model["path"], {n: [row[i + 1] for row in data] for i, n in enumerate(bc_features)})
    got = np.array([float(r["score"]) for r in rows])
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    output = json.loads(rows[0]["output"])
    assert set(output) == {"score", "label"} and output["label"] == int(got[0] >= 0.5)
    _, labels = fetch_columns(dsn, "SELECT benign FROM demo.breast_cancer ORDER BY id")
    accuracy = np.mean((got >= 0.5) == (np.array([y for (y,) in labels]) == 1))
    assert accuracy > 0.9


def test_pinned_version_and_other_key_column(dsn, bc_model, bc_features):
    feats = ", ".join(bc_features)
    done = sql_cli(dsn, f"CALL mlbridge.predict_scores('bc:{bc_model['version']}', "
                        f"'SELECT id * 10 AS k, {feats} FROM demo.breast_cancer WHERE id <= 5', '{{\"key\": \"k\"}}')")
    assert done.returncode == 0, done.stderr
    assert [r["row_key"] for r in parse_tsv(done.stdout)] == ["10", "20", "30", "40", "50"]


def test_a_bad_row_fails_alone_naming_the_column(dsn, bc_model, bc_features, db):
    cur = db.cursor()
    cur.execute("DROP TABLE IF EXISTS demo.bc_bad")
    cur.execute("CREATE TABLE demo.bc_bad AS SELECT * FROM demo.breast_cancer WHERE id <= 40")
    cur.execute("ALTER TABLE demo.bc_bad MODIFY mean_radius VARCHAR(20) NULL, MODIFY mean_texture DOUBLE NULL")
    cur.execute("UPDATE demo.bc_bad SET mean_radius = 'abc' WHERE id = 7")
    cur.execute("UPDATE demo.bc_bad SET mean_texture = NULL WHERE id = 9")
    done = sql_cli(dsn, "CALL mlbridge.predict_scores('bc', 'SELECT * FROM demo.bc_bad', NULL)")
    assert done.returncode == 0, done.stderr
    rows = {r["row_key"]: r for r in parse_tsv(done.stdout)}
    assert len(rows) == 40
    assert rows["7"]["score"] is None and "column mean_radius" in rows["7"]["error"] and "not a number" in rows["7"]["error"]
    # a NULL is NaN to the model, which imputes it (mlbridge's models take NULL in any input)
    assert rows["9"]["error"] is None and 0 <= float(rows["9"]["score"]) <= 1
    scored = [r for k, r in rows.items() if k not in ("7", "9")]
    assert all(r["error"] is None and r["score"] is not None for r in scored)
    good = {r["row_key"]: float(r["score"]) for r in parse_tsv(sql_cli(
        dsn, "CALL mlbridge.predict_scores('bc', 'SELECT * FROM demo.breast_cancer WHERE id <= 40', NULL)").stdout)}
    for r in scored:
        assert float(r["score"]) == pytest.approx(good[r["row_key"]], abs=1e-6)
    status_sql = "CALL mlbridge.request_list(1)"
    status = parse_tsv(sql_cli(dsn, status_sql).stdout)[0]
    assert status["status"] == "done"


def test_async_then_status_wait_and_results(dsn, bc_model):
    done = sql_cli(dsn, "CALL mlbridge.predict_scores('bc', 'SELECT * FROM demo.breast_cancer', '{\"async\": true}')")
    request = int(parse_tsv(done.stdout)[0]["request_id"])
    waited = parse_tsv(sql_cli(dsn, f"CALL mlbridge.request_wait({request}, 60)").stdout)[0]
    assert (waited["status"], waited["rows_done"], waited["rows_failed"], waited["percent"]) == ("done", "569", "0", "100.0")
    assert waited["started_at"] is not None and waited["finished_at"] is not None
    results = parse_tsv(sql_cli(dsn, f"CALL mlbridge.request_results({request})").stdout)
    assert len(results) == 569


def _big_request(dsn, db, copies: int) -> int:
    """An async request of 569 * copies rows, in chunks of 1,024 rows: enough chunks for the
    tests that stop a part mid-request to find some still to do."""
    cur = db.cursor()
    cur.execute("DROP TABLE IF EXISTS demo.bc_big")
    cur.execute("CREATE TABLE demo.bc_big LIKE demo.breast_cancer")
    for c in range(copies):
        cur.execute(f"INSERT INTO demo.bc_big SELECT id + {c * 1000}, b.* FROM demo.breast_cancer "
                    f"AS b0 JOIN demo.breast_cancer AS b USING (id)".replace("b.*", ", ".join(
                        f"b0.`{d[0]}`" for d in _columns(db)[1:])))
    with setting(db, "chunk_rows", "1024"):
        done = sql_cli(dsn, "CALL mlbridge.predict_scores('bc', 'SELECT * FROM demo.bc_big', '{\"async\": true}')")
    assert done.returncode == 0, done.stderr
    return int(parse_tsv(done.stdout)[0]["request_id"])


def _columns(db):
    cur = db.cursor()
    cur.execute("SELECT * FROM demo.breast_cancer LIMIT 0")
    cur.fetchall()
    return cur.description


def _wait_done(dsn, request: int, timeout: float = 120) -> dict:
    status = parse_tsv(sql_cli(dsn, f"CALL mlbridge.request_wait({request}, {timeout})").stdout)
    assert status, f"request {request} did not finish"
    return status[0]


def _wait_first_rows(db, request: int, timeout: float = 60) -> None:
    """Until a bridge has committed some rows of the request: it is now mid-request."""
    cur = db.cursor()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cur.execute("SELECT rows_done FROM requests WHERE id = %s", (request,))
        if cur.fetchone()[0] > 0:
            return
        time.sleep(0.01)
    raise AssertionError(f"no row of request {request} was scored in {timeout} s")


def _assert_each_row_once(db, request: int, total: int) -> None:
    cur = db.cursor()
    cur.execute("SELECT COUNT(*), COUNT(DISTINCT seq), SUM(error IS NULL), MIN(seq), MAX(seq) FROM results "
                "WHERE request_id = %s", (request,))
    count, distinct, ok, lo, hi = cur.fetchone()
    assert (count, distinct, int(ok), lo, hi) == (total, total, total, 1, total)
    cur.execute("SELECT rows_done, rows_failed, status FROM requests WHERE id = %s", (request,))
    assert cur.fetchone() == (total, 0, "done")


def test_several_bridges_score_every_row_exactly_once(dsn, db, bc_model, model_server, tmp_path):
    from urllib.request import urlopen

    from ..procs import free_port

    cur = db.cursor()
    request = _big_request(dsn, db, copies=20)  # 11,380 rows, 12 chunks
    port = free_port()
    with start_bridge(dsn, model_server.target, tmp_path, "--metrics-port", str(port)) as watched, \
            start_bridge(dsn, model_server.target, tmp_path):
        status = _wait_done(dsn, request)
        deadline = time.monotonic() + 60
        while True:  # the watched bridge may still be starting when the others are done
            try:
                with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
                    metrics = reply.read().decode()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    assert status["status"] == "done"
    _assert_each_row_once(db, request, 569 * 20)
    # The metrics of one bridge agree with the chunks the queue says it closed.
    bridge_id = re.search(r"bridge (\S+): queue", watched.output()).group(1)
    cur.execute("SELECT COALESCE(SUM(seq_to - seq_from + 1), 0), COUNT(*) FROM predict_queue "
                "WHERE state = 'done' AND owner = %s", (bridge_id,))
    rows, chunks = cur.fetchone()
    assert f'mlbridge_bridge_rows_total{{result="scored"}} {float(rows)}' in metrics
    assert f'mlbridge_bridge_chunks_total{{outcome="done"}} {float(chunks)}' in metrics
    assert "mlbridge_bridge_predict_seconds_count" in metrics


def test_a_sigkilled_bridge_loses_nothing(dsn, db, bc_model, model_server, tmp_path):
    """A bridge killed while holding chunks: its leases run out, another bridge scores them."""
    request = _big_request(dsn, db, copies=30)
    with start_bridge(dsn, model_server.target, tmp_path, "--lease", "2", "--claim-chunks", "8") as doomed:
        cur = db.cursor()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            cur.execute("SELECT COUNT(*) FROM predict_queue WHERE request_id = %s AND state = 'running'", (request,))
            if cur.fetchone()[0]:
                break
            time.sleep(0.01)
        doomed.proc.send_signal(signal.SIGKILL)
        doomed.proc.wait()
    status = _wait_done(dsn, request)
    assert status["status"] == "done"
    _assert_each_row_once(db, request, 569 * 30)


def test_an_expired_lease_is_taken_over(dsn, db, bc_model, bridge):
    """A claim whose bridge died (its lease aged by hand) is requeued by a live bridge's sweep."""
    from mlbridge.bridge.queue import Queue

    bridge_conn = connect(dsn)
    cur = db.cursor()
    with bridge.paused():  # the live bridge waits until the dead claim is in place
        done = sql_cli(dsn, "CALL mlbridge.predict_scores('bc', 'SELECT * FROM demo.breast_cancer WHERE id <= 30', "
                            "'{\"async\": true}')")
        request = int(parse_tsv(done.stdout)[0]["request_id"])
        claimed = [c for c in Queue(bridge_conn, "dead-bridge", lease_seconds=3600).claim(10)
                   if c.request_id == request]
        assert len(claimed) == 1
        cur.execute("UPDATE predict_queue SET lease_expires_at = NOW(6) - INTERVAL 1 SECOND WHERE id = %s",
                    (claimed[0].id,))
    status = _wait_done(dsn, request, timeout=60)
    assert status["status"] == "done" and status["rows_done"] == "30"
    cur.execute("SELECT owner, attempts, errors FROM predict_queue WHERE id = %s", (claimed[0].id,))
    owner, attempts, errors = cur.fetchone()
    assert owner != "dead-bridge" and attempts == 2
    assert "lease of bridge dead-bridge expired" in json.loads(errors)[0]["error"]
    bridge_conn.close()


def test_a_down_model_server_uses_no_attempts(dsn, db, bc_model, bridge, model_server, tmp_path):
    """With only a bridge whose model server is down, chunks go back to the queue unused."""
    from ..procs import free_port

    with bridge.paused():  # keep the session's bridge out of this test
        with start_bridge(dsn, f"127.0.0.1:{free_port()}", tmp_path) as lonely:
            done = sql_cli(dsn, "CALL mlbridge.predict_scores('bc', 'SELECT * FROM demo.breast_cancer WHERE id <= 10', "
                                "'{\"async\": true}')")
            request = int(parse_tsv(done.stdout)[0]["request_id"])
            time.sleep(3)
            cur = db.cursor()
            cur.execute("SELECT state, attempts, errors FROM predict_queue WHERE request_id = %s", (request,))
            assert cur.fetchall() == [("pending", 0, None)]
            assert "unavailable" in lonely.output()
    assert _wait_done(dsn, request)["status"] == "done"


def test_a_savedmodel_copied_in_by_hand_appears_in_the_catalog(dsn, db, bc_model, model_base, model_server):
    shutil.copytree(bc_model["path"], model_base / "handmade" / "7")
    wait_served(model_server.target, "handmade", 7)
    cur = db.cursor()
    deadline = time.monotonic() + 30
    found = None
    while time.monotonic() < deadline and not found:
        cur.execute("SELECT state, source, JSON_LENGTH(inputs), score_output FROM models "
                    "WHERE name = 'handmade' AND version = 7")
        found = cur.fetchone()
        time.sleep(0.3)
    assert found == ("available", "server", 30, "score")
    done = sql_cli(dsn, "CALL mlbridge.predict_scores('handmade', 'SELECT * FROM demo.breast_cancer WHERE id <= 3', NULL)")
    assert done.returncode == 0, done.stderr
    assert len(parse_tsv(done.stdout)) == 3
    # Removed from the model base, it is no longer offered: refused at once, not after retries.
    shutil.rmtree(model_base / "handmade")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        cur.execute("SELECT state FROM models WHERE name = 'handmade' AND version = 7")
        if cur.fetchone()[0] == "unavailable":
            break
        time.sleep(0.5)
    done = sql_cli(dsn, "CALL mlbridge.predict_scores('handmade', 'SELECT * FROM demo.breast_cancer', NULL)")
    assert "model 'handmade' has no available version" in done.stderr
    cur.execute("SELECT state FROM models WHERE name = 'bc'")
    assert {state for (state,) in cur.fetchall()} == {"available"}


def test_the_official_tf_serving_client_gets_the_same_numbers(dsn, bc_model, bc_features, model_server):
    """tensorflow-serving-api's own client, in a process of its own, against `mlbridge serve`
    hosting the model `mlbridge train` made: the scores equal the SavedModel's."""
    import subprocess
    import sys

    from ..procs import REPO

    _, data = fetch_columns(dsn, f"SELECT {', '.join(bc_features)} FROM demo.breast_cancer ORDER BY id LIMIT 100")
    columns = {n: [row[i] for row in data] for i, n in enumerate(bc_features)}
    done = subprocess.run([sys.executable, str(REPO / "tests" / "server" / "official_client.py"), model_server.target,
                           "bc", str(bc_model["version"]), json.dumps(columns)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    expected = saved_model_scores(bc_model["path"], columns)
    for case in ("arrays", "lists"):
        np.testing.assert_allclose(out[case]["outputs"]["score"], expected, atol=1e-5, rtol=0)
        assert out[case]["model_spec"]["name"] == "bc"
    assert out["arrays"]["model_spec"]["version"] == bc_model["version"]
    assert out["metadata"]["unpacked"] is True
    assert set(out["metadata"]["inputs"]) == set(bc_features)
    assert {v["dtype"] for v in out["metadata"]["inputs"].values()} == {"float32"}
    assert out["metadata"]["outputs"] == {"score": "float32", "label": "int64"}


def test_a_model_the_server_lacks_fails_its_rows_after_the_attempts(dsn, db, bc_table, bridge):
    """Every queued row ends scored or failed with its error: a version in the catalog that no
    server hosts uses up its attempts, then fails each row naming the model."""
    cur = db.cursor()
    cur.execute("INSERT IGNORE INTO model_versions (name, version, inputs, outputs, source) VALUES "
                "('ghost', 1, '[{\"name\": \"mean_radius\"}]', '[{\"name\": \"score\"}]', 'trainer')")
    done = sql_cli(dsn, "CALL mlbridge.predict_scores('ghost', 'SELECT id, mean_radius FROM demo.breast_cancer "
                        "WHERE id <= 3', '{\"async\": true}')")
    request = int(parse_tsv(done.stdout)[0]["request_id"])
    status = _wait_done(dsn, request, timeout=120)
    assert (status["status"], status["rows_failed"], status["rows_done"]) == ("failed", "3", "0")
    assert "ghost:1" in status["error"]
    results = parse_tsv(sql_cli(dsn, f"CALL mlbridge.request_results({request})").stdout)
    assert len(results) == 3 and all("model ghost:1" in r["error"] for r in results)
    cur.execute("SELECT state, attempts, JSON_LENGTH(errors) FROM predict_queue WHERE request_id = %s", (request,))
    assert cur.fetchall() == [("failed", 5, 5)]


def test_killed_database_connections_lose_nothing(dsn, db, bc_model, model_server, bridge, tmp_path):
    """The bridge's connections are killed in the middle of a request: it reconnects, what it
    held expires and is scored again, and every row ends with exactly one result."""
    with bridge.paused():  # only the bridge under test works on this request
        with start_bridge(dsn, model_server.target, tmp_path, "--lease", "3") as victim:
            request = _big_request(dsn, db, copies=20)
            cur = db.cursor()
            _wait_first_rows(db, request)
            cur.execute("SELECT CONNECTION_ID()")
            me = cur.fetchone()[0]
            cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> %s",
                        (dsn.database, me))
            killed = [row[0] for row in cur.fetchall()]
            for conn_id in killed:
                try:
                    cur.execute(f"KILL CONNECTION {int(conn_id)}")
                except Exception:  # noqa: BLE001 - gone already
                    pass
            assert killed
            status = _wait_done(dsn, request, timeout=120)
            assert "reconnecting" in victim.output()
            assert "Traceback" not in victim.output() and victim.proc.poll() is None
    assert status["status"] == "done"
    _assert_each_row_once(db, request, 569 * 20)


def test_a_model_server_crash_mid_request_loses_nothing(dsn, db, bc_model, bridge, tmp_path):
    """The model server is SIGKILLed while a request is scored and started again on its port:
    the bridge gives its chunks back without using attempts up, and finishes once it is back."""
    from ..procs import free_port, start_model_server

    base = tmp_path / "models"
    shutil.copytree(bc_model["path"], base / "bc" / str(bc_model["version"]))
    port = free_port()
    with bridge.paused():  # only the bridge under test works on this request
        with start_bridge(dsn, f"127.0.0.1:{port}", tmp_path) as survivor:
            with start_model_server(base, tmp_path, port=port) as server:
                request = _big_request(dsn, db, copies=30)
                cur = db.cursor()
                _wait_first_rows(db, request)
                server.stop(signal.SIGKILL)
            time.sleep(1.5)  # the bridge finds the server gone
            with start_model_server(base, tmp_path, port=port):
                status = _wait_done(dsn, request, timeout=120)
            assert "unavailable" in survivor.output()
    assert status["status"] == "done"
    _assert_each_row_once(db, request, 569 * 30)
    cur.execute("SELECT MAX(attempts), COUNT(errors) FROM predict_queue WHERE request_id = %s", (request,))
    assert cur.fetchone() == (1, 0)  # no attempt used up by the outage, no error recorded


def test_a_bridge_needs_only_the_worker_role(dsn, db, bc_model, model_server, bridge, tmp_path):
    """The bridge runs as an account holding nothing but the role mlbridge_worker."""
    from mlbridge.config import Dsn

    cur = db.cursor()
    cur.execute("CREATE USER IF NOT EXISTS 'bridge_acct'@'%' IDENTIFIED BY 'pw'")
    cur.execute("GRANT mlbridge_worker TO 'bridge_acct'@'%'")
    cur.execute("SET DEFAULT ROLE mlbridge_worker FOR 'bridge_acct'@'%'")
    worker_dsn = Dsn(**{**dsn.__dict__, "user": "bridge_acct", "password": "pw"})
    try:
        # only the worker-role bridge works on this request
        with bridge.paused(), start_bridge(worker_dsn, model_server.target, tmp_path) as worker:
            done = sql_cli(dsn, "CALL mlbridge.predict_scores('bc', 'SELECT * FROM demo.breast_cancer "
                                "WHERE id <= 50', '{\"timeout\": 60}')")
            assert done.returncode == 0, done.stderr + worker.output()[-2000:]
            rows = parse_tsv(done.stdout)
            assert len(rows) == 50 and all(r["error"] is None for r in rows)
            time.sleep(6)  # one housekeeping round: sweep and catalog sync under the same account
            assert "denied" not in worker.output() and "Traceback" not in worker.output()
    finally:
        cur.execute("DROP USER IF EXISTS 'bridge_acct'@'%'")
