"""The demo's data: scikit-learn's bundled breast cancer data set (569 rows, 30 features, shipped
inside the package; nothing is downloaded), loaded into MySQL, and the demo's report.

    python examples/breast_cancer.py load   --dsn DSN        table demo.breast_cancer
    python examples/breast_cancer.py report --dsn DSN FILE   accuracy of scores in FILE (TSV)
    python examples/breast_cancer.py features                JSON_OBJECT(...) of one row, for predict_row
"""

from __future__ import annotations

import argparse
import csv
import re
import sys

from mlbridge.config import resolve_dsn
from mlbridge.db import connect


def column_names(feature_names) -> list[str]:
    return [re.sub(r"\W+", "_", name.strip()).lower() for name in feature_names]


def load(dsn) -> None:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    names = column_names(data.feature_names)
    conn = connect(dsn)
    cur = conn.cursor()
    cur.execute("CREATE DATABASE IF NOT EXISTS demo")
    cur.execute("DROP TABLE IF EXISTS demo.breast_cancer")
    columns = ", ".join(f"`{n}` DOUBLE NOT NULL" for n in names)
    # benign: 1 for a benign tumour, 0 for a malignant one (scikit-learn's target).
    cur.execute(f"CREATE TABLE demo.breast_cancer (id INT PRIMARY KEY, {columns}, benign TINYINT NOT NULL)")
    placeholders = ", ".join(["%s"] * (len(names) + 2))
    rows = [(i + 1, *map(float, x), int(y)) for i, (x, y) in enumerate(zip(data.data, data.target))]
    cur.executemany(f"INSERT INTO demo.breast_cancer VALUES ({placeholders})", rows)
    conn.close()
    print(f"loaded {len(rows)} rows into demo.breast_cancer ({len(names)} features, label benign)")


def report(dsn, path: str) -> None:
    with open(path, newline="") as f:
        scored = list(csv.DictReader(f, delimiter="\t"))
    conn = connect(dsn)
    cur = conn.cursor()
    cur.execute("SELECT id, benign FROM demo.breast_cancer")
    labels = {str(k): v for k, v in cur.fetchall()}
    conn.close()
    ok = [r for r in scored if r["error"] in ("NULL", "", None)]
    correct = sum((float(r["score"]) >= 0.5) == (labels[r["row_key"]] == 1) for r in ok)
    print(f"{len(scored)} rows scored through CALL mlbridge.predict_scores, {len(scored) - len(ok)} failed")
    print(f"accuracy on all rows: {correct / max(1, len(ok)):.4f} (score >= 0.5 means benign)")


def features_object() -> str:
    """`JSON_OBJECT('mean_radius', mean_radius, ...)` over the table's feature columns, for predict_row."""
    from sklearn.datasets import load_breast_cancer

    names = column_names(load_breast_cancer().feature_names)
    return "JSON_OBJECT(" + ", ".join(f"'{n}', `{n}`" for n in names) + ")"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["load", "report", "features"])
    parser.add_argument("file", nargs="?")
    parser.add_argument("--dsn")
    args = parser.parse_args()
    if args.action == "features":
        print(features_object())
        return 0
    dsn = resolve_dsn(args.dsn)
    if args.action == "load":
        load(dsn)
    else:
        report(dsn, args.file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
