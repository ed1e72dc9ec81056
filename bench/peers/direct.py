"""Peer of `make bench`: the hand-written direct program, the bar mlbridge is measured against.

    python bench/peers/direct.py --dsn mysql://root@127.0.0.1:3306/bench \\
        --model models/bench8/1 --table bench.rows8 --out bench.direct_scores

What a user who knows the tools writes without mlbridge, the fastest straightforward way and
nothing fancier: one process, one connection, three steps in a row.

1. read: every row (id and the model's input columns) over mysql-connector's C extension with
   the binary protocol (a server-side prepared statement), streamed and turned into numpy
   arrays in blocks of 65,536 rows;
2. score: the SavedModel's `serving_default` signature in-process, 8,192 rows a call;
3. write: the scores to a temporary tab-separated file, `LOAD DATA LOCAL INFILE` into
   OUT (id INT PRIMARY KEY, score DOUBLE), one commit.

Prints one JSON line: {"program": "direct", "rows", "total_s", "stages": {"read_s", "score_s",
"write_s"}, "load_s"}. total_s runs from the first row read to the commit (the sum of the
stages); load_s (connecting, loading the model, recreating OUT) is outside it, as mlbridge's
server and bridge are already up when its benchmark starts the clock.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from itertools import chain, islice
from urllib.parse import parse_qs, unquote, urlsplit

# mysql-connector's C extension first, before anything loads Python's ssl module (mysql.connector
# itself does): the extension is built on the newer OpenSSL its wheel bundles, and fails to load,
# silently, once the system's older libssl is in the process (pure-Python reads: ~2.0 s per
# 200,000 rows here, 7x read_rows below).
try:
    import _mysql_connector  # noqa: F401
except ImportError:
    pass
import mysql.connector  # noqa: E402  (before tensorflow, as above)

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

PROGRAM = "direct"
READ_BLOCK = 65_536
SCORE_BATCH = 8_192
WRITE_BLOCK = 65_536


def connect_args(dsn: str) -> dict:
    """`mysql://user:pass@host:port/db?unix_socket=...` as mysql.connector.connect() arguments."""
    parts = urlsplit(dsn)
    if parts.scheme not in ("mysql", "mariadb"):
        raise ValueError(f"{PROGRAM}: DSN {dsn!r} must look like mysql://user:pass@host:port/db")
    args = {"user": unquote(parts.username or "root"), "password": unquote(parts.password or ""),
            "host": parts.hostname or "127.0.0.1", "port": parts.port or 3306}
    if parts.path.strip("/"):
        args["database"] = unquote(parts.path.strip("/"))
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    for key in ("unix_socket", "ssl_ca", "ssl_cert", "ssl_key"):
        if key in query:
            args[key] = query[key]
    return args


def quote_name(name: str) -> str:
    """`db.table` -> `db`.`table`."""
    return ".".join("`" + part.replace("`", "``") + "`" for part in name.split("."))


def read_rows(conn, sql: str, columns: int) -> np.ndarray:
    """All rows of `sql` (numeric columns, no NULLs) as one float64 array (rows x columns).

    Measured on 1,000,000 rows x (id + 8 DOUBLE), MariaDB 10.11 on the same 2-core machine, C
    extension loaded, numpy conversion included (seconds, two runs):
        cursor().fetchall(), np.array                text protocol      4.2-6.1
        cursor().fetchmany(65536), blocks            text protocol      4.0-4.5
        raw text fetch (_cmysql.query + fetch_row)   text protocol      4.1-4.5
        cursor(prepared=True).fetchall(), np.array   binary protocol    2.2
        raw binary fetch (_cmysql.stmt_prepare)      binary protocol    1.1-1.2  <- this
    (200,000 rows: 0.85-0.9, 0.38-0.43 and 0.27 s for plain, prepared and raw binary.) So: the
    binary protocol (doubles arrive as 8 bytes, no strtod per value), fetched straight from the C
    extension's prepared statement: list(islice(...)) calls its fetch_row from C, with no Python
    code per row (the connector's prepared cursor runs a Python loop per row in get_rows()),
    streamed unbuffered so memory holds one block of Python tuples at a time.
    """
    blocks = []

    def add(block):
        blocks.append(np.fromiter(chain.from_iterable(block), np.float64, len(block) * columns)
                      .reshape(len(block), columns))

    cmysql = getattr(conn, "_cmysql", None)
    if cmysql is not None and hasattr(cmysql, "stmt_prepare"):
        cmysql.buffered(False)
        stmt = cmysql.stmt_prepare(sql.encode())
        try:
            stmt.stmt_execute(query_attrs=[])
            rows = iter(stmt.fetch_row, None)
            while block := list(islice(rows, READ_BLOCK)):
                add(block)
        finally:
            stmt.free_result()
            stmt.stmt_close()
    else:  # the public way to the same binary protocol (another connector version)
        cur = conn.cursor(prepared=True)
        cur.execute(sql)
        if block := cur.fetchall():
            add(block)
        cur.close()
    return np.concatenate(blocks) if blocks else np.empty((0, columns))


def score_rows(fn, names: list[str], features: np.ndarray) -> np.ndarray:
    """The signature over `features` (rows x len(names), float32), SCORE_BATCH rows a call."""
    columns = np.ascontiguousarray(features.T, dtype=np.float32)  # one contiguous row per input
    scores = np.empty(len(features), np.float32)
    for start in range(0, len(features), SCORE_BATCH):
        end = start + SCORE_BATCH
        out = fn(**{name: tf.constant(columns[i, start:end]) for i, name in enumerate(names)})
        scores[start:end] = out["score"].numpy()
    return scores


def write_scores(conn, out: str, ids: np.ndarray, scores: np.ndarray, folder: str) -> None:
    """`LOAD DATA LOCAL INFILE` of `id<TAB>score` lines, then commit. Each score is written as the
    shortest decimal of its exact double value (repr), as mlbridge writes it: no rounding."""
    path = os.path.join(folder, "scores.tsv")
    id_list, score_list = ids.tolist(), scores.astype(np.float64).tolist()
    with open(path, "w") as f:
        for start in range(0, len(id_list), WRITE_BLOCK):
            pairs = [None] * (2 * len(id_list[start:start + WRITE_BLOCK]))
            pairs[0::2] = id_list[start:start + WRITE_BLOCK]
            pairs[1::2] = score_list[start:start + WRITE_BLOCK]
            f.write(("%d\t%r\n" * (len(pairs) // 2)) % tuple(pairs))
    literal = path.replace("\\", "\\\\").replace("'", "\\'")
    cur = conn.cursor()
    cur.execute(f"LOAD DATA LOCAL INFILE '{literal}' INTO TABLE {quote_name(out)} "
                "FIELDS TERMINATED BY '\\t' LINES TERMINATED BY '\\n' (id, score)")
    cur.close()
    conn.commit()


def run(dsn_str: str, model_path: str, table: str, out: str) -> dict:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mlbridge-peer-direct-") as folder:
        folder = os.path.realpath(folder)
        # LOAD DATA LOCAL may read files in this folder only (the C extension supports it too).
        conn = mysql.connector.connect(**connect_args(dsn_str), allow_local_infile_in_path=folder)
        if type(conn).__name__ != "CMySQLConnection":
            raise RuntimeError(f"{PROGRAM}: mysql-connector's C extension did not load "
                             "(mysql.connector.HAVE_CEXT is False): the direct program would not be the bar")
        try:
            fn = tf.saved_model.load(model_path).signatures["serving_default"]
            names = sorted(fn.structured_input_signature[1])
            cur = conn.cursor()
            cur.execute(f"DROP TABLE IF EXISTS {quote_name(out)}")
            cur.execute(f"CREATE TABLE {quote_name(out)} (id INT PRIMARY KEY, score DOUBLE)")
            cur.close()
            t0 = time.perf_counter()
            data = read_rows(conn, f"SELECT id, {', '.join(quote_name(n) for n in names)} FROM {quote_name(table)}",
                             1 + len(names))
            t1 = time.perf_counter()
            scores = score_rows(fn, names, data[:, 1:])
            t2 = time.perf_counter()
            write_scores(conn, out, data[:, 0].astype(np.int64), scores, folder)
            t3 = time.perf_counter()
        finally:
            conn.close()
    return {"program": PROGRAM, "rows": len(data), "total_s": round(t3 - t0, 3),
            "stages": {"read_s": round(t1 - t0, 3), "score_s": round(t2 - t1, 3), "write_s": round(t3 - t2, 3)},
            "load_s": round(t0 - started, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", required=True, help="mysql://user:pass@host:port/db")
    parser.add_argument("--model", required=True, help="the SavedModel's version folder (NAME/N)")
    parser.add_argument("--table", required=True, help="db.table with id and the model's input columns")
    parser.add_argument("--out", required=True, help="db.table to (re)create with id, score")
    args = parser.parse_args()
    print(json.dumps(run(args.dsn, args.model, args.table, args.out)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
