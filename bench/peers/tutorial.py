"""Peer of `make bench`: the tutorial pipeline, what a user copies from the docs without mlbridge.

    python bench/peers/tutorial.py --dsn mysql://root@127.0.0.1:3306/bench \\
        --model models/bench8/1 --table bench.rows8 --out bench.tutorial_scores

The usual recipe, step by step as the guides put it:

1. export: `SELECT ... INTO OUTFILE` a CSV on the server (the FILE privilege, and a folder the
   server may write: `@@secure_file_priv` where it is set, else a temporary folder; the server
   runs on this machine);
2. score: `tf.data.experimental.make_csv_dataset` over the CSV (batches of 1,024, one epoch, no
   shuffle) and the SavedModel's `serving_default` signature called batch by batch, as
   `model.predict` would;
3. write: `cursor.executemany("INSERT INTO OUT (id, score) VALUES (%s, %s)")` batch by batch,
   one commit.

Prints one JSON line: {"program": "tutorial", "rows", "total_s", "stages": {"export_s",
"score_s", "write_s"}, "load_s"}. total_s runs from the export to the commit (the sum of the
stages); load_s (connecting, loading the model, recreating OUT) is outside it, as in direct.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from urllib.parse import parse_qs, unquote, urlsplit

# mysql-connector's C extension first, before anything loads Python's ssl module (mysql.connector
# itself does), as in direct.py: a tutorial's user gets it wherever the system's OpenSSL is recent
# enough, so the tutorial is not made slower here by this machine's older libssl.
try:
    import _mysql_connector  # noqa: F401
except ImportError:
    pass
import mysql.connector  # noqa: E402

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import tensorflow as tf  # noqa: E402

PROGRAM = "tutorial"
BATCH = 1_024


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


def export_csv(cur, table: str, columns: list[str], folder: str) -> str:
    """The rows as a headerless CSV written by the server; returns its path."""
    path = os.path.join(folder, f"{PROGRAM}-{uuid.uuid4().hex}.csv")
    literal = path.replace("\\", "\\\\").replace("'", "\\'")
    cur.execute(f"SELECT {', '.join(quote_name(c) for c in columns)} FROM {quote_name(table)} "
                f"INTO OUTFILE '{literal}' FIELDS TERMINATED BY ',' LINES TERMINATED BY '\\n'")
    return path


def run(dsn_str: str, model_path: str, table: str, out: str) -> dict:
    started = time.perf_counter()
    conn = mysql.connector.connect(**connect_args(dsn_str))
    cur = conn.cursor()
    cur.execute("SELECT @@secure_file_priv")
    (server_folder,) = cur.fetchone()
    # The server writes the CSV itself, as its own user: into @@secure_file_priv where that is
    # set, else into a temporary folder it may create files in. (NULL means no restriction on
    # MariaDB, but INTO OUTFILE switched off on MySQL: the export then fails with its error.)
    tmp = None
    if server_folder:
        folder = server_folder
    else:
        tmp = tempfile.TemporaryDirectory(prefix="mlbridge-peer-tutorial-")
        folder = os.path.realpath(tmp.name)
        os.chmod(folder, 0o733)  # the server may be another user: it may create, not list
    path = None
    try:
        model = tf.saved_model.load(model_path)
        predict = model.signatures["serving_default"]
        features = sorted(predict.structured_input_signature[1])
        cur.execute(f"DROP TABLE IF EXISTS {quote_name(out)}")
        cur.execute(f"CREATE TABLE {quote_name(out)} (id INT PRIMARY KEY, score DOUBLE)")

        t0 = time.perf_counter()
        path = export_csv(cur, table, ["id", *features], folder)
        t1 = time.perf_counter()

        dataset = tf.data.experimental.make_csv_dataset(
            path, batch_size=BATCH, column_names=["id", *features], header=False,
            column_defaults=[tf.int64] + [tf.float32] * len(features), num_epochs=1, shuffle=False)
        ids, scores = [], []
        for batch in dataset:
            key = batch.pop("id")
            ids.append(key.numpy())
            scores.append(predict(**batch)["score"].numpy())
        t2 = time.perf_counter()

        insert = f"INSERT INTO {quote_name(out)} (id, score) VALUES (%s, %s)"
        rows = 0
        for key, score in zip(ids, scores):
            cur.executemany(insert, list(zip(key.tolist(), score.tolist())))
            rows += len(key)
        conn.commit()
        t3 = time.perf_counter()
    finally:
        if path:
            try:
                os.remove(path)
            except OSError as exc:  # a file the server wrote into @@secure_file_priv may be its own
                print(f"{PROGRAM}: could not remove {path}: {exc}", file=sys.stderr)
        if tmp is not None:
            tmp.cleanup()
        cur.close()
        conn.close()
    return {"program": PROGRAM, "rows": rows, "total_s": round(t3 - t0, 3),
            "stages": {"export_s": round(t1 - t0, 3), "score_s": round(t2 - t1, 3), "write_s": round(t3 - t2, 3)},
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
