"""Models trained on real-world column types, scored from SQL end to end: strings, ENUM, SET,
BOOLEAN, DECIMAL, DATE, DATETIME and NULLs go in raw, as the bridge sends them, and the
preprocessing inside each SavedModel does the rest. Gradient-boosted trees (ydf) load in the
model server beside the networks."""

from __future__ import annotations

import datetime as dt
import json
import random

import numpy as np
import pytest

from mlbridge.db import connect
from mlbridge_server.trainer import export
from mlbridge_server.trainer.columns import CATEGORY, DATE, NUMBER, SET
from mlbridge_server.trainer.source import convert

from ..procs import parse_tsv, sql_cli
from .conftest import train_cli, wait_served

COLUMNS = "id, plan, city, extras, joined, last_seen, spend, active"
KINDS = {"plan": CATEGORY, "city": CATEGORY, "extras": SET, "joined": DATE, "last_seen": DATE, "spend": NUMBER,
         "active": NUMBER}


def _rows(done) -> list[dict]:
    assert done.returncode == 0, done.stderr
    return parse_tsv(done.stdout)


@pytest.fixture(scope="module")
def customers(dsn):
    """demo.customers: 1,500 rows of every column kind, NULLs in most; `segment` (3 classes)
    depends on plan, spend, extras and how long ago the customer joined; `churn` is yes/no."""
    rnd = random.Random(5)
    rows = []
    for i in range(1, 1501):
        plan = rnd.choice(["basic", "pro", "max"])
        city = None if rnd.random() < 0.1 else rnd.choice(["Lyon", "Oslo", "Porto", "Riga"])
        extras = None if rnd.random() < 0.1 else ",".join(sorted(rnd.sample(["net", "phone", "tv"], rnd.randint(0, 2))))
        joined = None if rnd.random() < 0.1 else dt.date(2018, 1, 1) + dt.timedelta(days=rnd.randint(0, 2500))
        seen = dt.datetime(2025, 1, 1) + dt.timedelta(minutes=rnd.randint(0, 500_000))
        spend = None if rnd.random() < 0.1 else round(rnd.uniform(0, 300), 2)
        active = rnd.random() < 0.7
        value = ({"basic": 0, "pro": 1, "max": 2}[plan] + (spend or 100) / 150 + (0.8 if extras and "tv" in extras else 0)
                 + ((joined or dt.date(2021, 1, 1)) - dt.date(2018, 1, 1)).days / 2500 + rnd.gauss(0, 0.3))
        segment = "low" if value < 1.6 else "mid" if value < 2.8 else "high"
        churn = "yes" if (not active and value < 2.5) or rnd.random() < 0.05 else "no"
        rows.append((i, plan, city, extras, joined, seen, spend, active, segment, churn))
    conn = connect(dsn)
    cur = conn.cursor()
    cur.execute("CREATE DATABASE IF NOT EXISTS demo")
    cur.execute("DROP TABLE IF EXISTS demo.customers")
    cur.execute("CREATE TABLE demo.customers (id INT PRIMARY KEY, plan ENUM('basic', 'pro', 'max') NOT NULL, "
                "city VARCHAR(20) NULL, extras SET('net', 'phone', 'tv') NULL, joined DATE NULL, "
                "last_seen DATETIME NULL, spend DECIMAL(8, 2) NULL, active BOOLEAN NOT NULL, "
                "segment VARCHAR(8) NOT NULL, churn VARCHAR(3) NOT NULL)")
    cur.executemany("INSERT INTO demo.customers VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)
    # Served, never trained on: a city nobody lives in, and every nullable column NULL.
    cur.execute("INSERT INTO demo.customers VALUES (9001, 'pro', 'Atlantis', 'tv', '2020-02-29', "
                "'2025-03-01 10:00:00', 12.5, 1, 'mid', 'no'), (9002, 'max', NULL, NULL, NULL, NULL, NULL, 0, "
                "'high', 'no')")
    conn.close()
    return "demo.customers"


def _trained(dsn, model_base, model_server, name: str, label: str, *options: str) -> dict:
    done = train_cli(dsn, model_base, "--query", f"SELECT {COLUMNS}, {label} FROM demo.customers WHERE id < 9000",
                     "--label", label, "--model", name, *options)
    assert done.returncode == 0, done.stderr[-3000:]
    conn = connect(dsn)
    cur = conn.cursor()
    cur.execute("SELECT MAX(version) FROM models WHERE name = %s", (name,))
    version = cur.fetchone()[0]
    cur.execute("SELECT task, model_type, inputs, outputs FROM models WHERE name = %s AND version = %s",
                (name, version))
    task, model_type, inputs, outputs = cur.fetchone()
    conn.close()
    wait_served(model_server.target, name, version)
    return {"name": name, "version": version, "path": model_base / name / str(version), "task": task,
            "model_type": model_type, "inputs": json.loads(inputs), "outputs": json.loads(outputs)}


@pytest.fixture(scope="module")
def segment_trees(dsn, customers, model_base, model_server, bridge):
    return _trained(dsn, model_base, model_server, "cust_segment", "segment", "--model-type", "gbt")


@pytest.fixture(scope="module")
def churn_net(dsn, customers, model_base, model_server, bridge):
    return _trained(dsn, model_base, model_server, "cust_churn", "churn", "--model-type", "mlp", "--epochs", "20")


def _local_scores(model: dict, dsn) -> dict[str, dict]:
    """The SavedModel on disk, loaded in this process, on the table's values converted as
    training converts them: what the bridge's scores must equal."""
    conn = connect(dsn)
    cur = conn.cursor()
    cur.execute(f"SELECT {COLUMNS} FROM demo.customers ORDER BY id")
    rows = cur.fetchall()
    conn.close()
    cols = list(zip(*rows))
    names = COLUMNS.split(", ")[1:]
    features = {n: convert(cols[i + 1], KINDS[n]) for i, n in enumerate(names)}
    _loaded, fn = export.load(model["path"])
    out = fn(**{n: np.asarray(v) if KINDS[n] == NUMBER else np.asarray(v.tolist(), dtype=object)
                for n, v in features.items()})
    return {str(k): {name: value.numpy()[i] for name, value in out.items()} for i, k in enumerate(cols[0])}


def test_the_catalog_describes_raw_inputs(segment_trees):
    assert (segment_trees["task"], segment_trees["model_type"]) == ("multiclass", "gbt")
    assert [(i["name"], i["dtype"], i["missing"]) for i in segment_trees["inputs"]] == [
        ("plan", "string", True), ("city", "string", True), ("extras", "string", True), ("joined", "string", True),
        ("last_seen", "string", True), ("spend", "float32", True), ("active", "float32", True)]
    assert [o["name"] for o in segment_trees["outputs"]] == ["score", "label", "classes", "scores"]


def test_trees_score_every_row_from_sql_as_the_savedmodel_does(dsn, segment_trees):
    rows = _rows(sql_cli(dsn, f"CALL mlbridge.predict_scores('cust_segment', 'SELECT {COLUMNS} FROM demo.customers', "
                              "NULL)"))
    assert len(rows) == 1502 and all(r["error"] is None for r in rows)
    local = _local_scores(segment_trees, dsn)
    for r in rows:
        want = local[r["row_key"]]
        assert float(r["score"]) == pytest.approx(float(want["score"]), abs=1e-5)
        output = json.loads(r["output"])
        assert output["label"] == want["label"].decode()
        assert output["classes"] == ["high", "low", "mid"]
        assert output["scores"] == pytest.approx(want["scores"].tolist(), abs=1e-5)
        assert max(output["scores"]) == pytest.approx(float(r["score"]), abs=1e-5)
    right = sum(json.loads(r["output"])["label"] == s for r, s in zip(rows, _labels(dsn, "segment")))
    assert right / len(rows) > 0.75


def _labels(dsn, column: str) -> list[str]:
    conn = connect(dsn)
    cur = conn.cursor()
    cur.execute(f"SELECT {column} FROM demo.customers ORDER BY id")
    found = [v for (v,) in cur.fetchall()]
    conn.close()
    return found


def test_a_network_takes_the_same_raw_columns_and_names_its_class(dsn, churn_net):
    assert (churn_net["task"], churn_net["model_type"]) == ("binary", "mlp")
    assert [o["name"] for o in churn_net["outputs"]] == ["score", "label"]
    rows = _rows(sql_cli(dsn, f"CALL mlbridge.predict_scores('cust_churn', 'SELECT {COLUMNS} FROM demo.customers "
                              "WHERE id IN (1, 2, 9001, 9002)', NULL)"))
    local = _local_scores(churn_net, dsn)
    assert len(rows) == 4
    for r in rows:
        assert r["error"] is None
        assert float(r["score"]) == pytest.approx(float(local[r["row_key"]]["score"]), abs=1e-5)
        assert json.loads(r["output"])["label"] == ("yes" if float(r["score"]) >= 0.5 else "no")


def test_predict_row_with_nulls_and_an_unseen_category(dsn, segment_trees):
    row = ('JSON_OBJECT("plan", "pro", "city", "Atlantis", "extras", NULL, "joined", NULL, '
           '"last_seen", "2025-03-01 10:00:00", "spend", 12.5, "active", 1)')
    rows = _rows(sql_cli(dsn, f"CALL mlbridge.predict_row('cust_segment', {row})"))
    assert len(rows) == 1 and rows[0]["error"] is None
    assert json.loads(rows[0]["output"])["label"] in ("low", "mid", "high")
