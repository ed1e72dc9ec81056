"""Keys, end to end: repeated keys are found as the key column's collation compares them, and
predict_table's output keeps the key's type and collation (docs/keys.md)."""

from __future__ import annotations

import pytest

from mlbridge.db import connect

from ..procs import parse_tsv, sql_cli

REPEATS = "repeats in this request (key column `k`)"


def _rows(done) -> list[dict]:
    assert done.returncode == 0, done.stderr
    return parse_tsv(done.stdout)


def _run(db, sql: str, params: tuple = ()) -> list[tuple]:
    cur = db.cursor()
    cur.execute(sql, params)
    found = cur.fetchall() if cur.with_rows else []
    cur.close()
    return found


def _keyed(db, table: str, key_type: str, keys: dict[int, object]) -> None:
    """demo.<table>: breast_cancer rows `keys` (id: key value) with key column k of `key_type`
    first, then every column of the row (id and the features)."""
    case = " ".join(f"WHEN {i} THEN %s" for i in keys)
    _run(db, f"DROP TABLE IF EXISTS demo.{table}")
    _run(db, f"CREATE TABLE demo.{table} (k {key_type} NULL) ENGINE=InnoDB "
             f"SELECT CASE id {case} END AS k, b.* FROM demo.breast_cancer AS b WHERE id IN ({', '.join(map(str, keys))})",
         tuple(keys.values()))


def _scores(dsn, table: str) -> list[dict]:
    return _rows(sql_cli(dsn, f"CALL mlbridge.predict_scores('bc', 'SELECT * FROM demo.{table}', '{{\"key\": \"k\"}}')"))


@pytest.fixture(scope="module")
def bc_scores(dsn, bc_model) -> dict[str, float]:
    """The scores of breast_cancer rows 1 to 6, keyed by their id."""
    rows = _rows(sql_cli(dsn, "CALL mlbridge.predict_scores('bc', 'SELECT * FROM demo.breast_cancer WHERE id <= 6', "
                              "NULL)"))
    return {r["row_key"]: float(r["score"]) for r in rows}


@pytest.fixture(scope="module")
def nopad_collation(dsn):
    """A binary NO PAD collation of utf8mb4, where 'x' and 'x ' differ; None where there is none."""
    conn = connect(dsn)
    try:
        found = _run(conn, "SELECT COLLATION_NAME FROM information_schema.COLLATIONS "
                           "WHERE COLLATION_NAME IN ('utf8mb4_nopad_bin', 'utf8mb4_0900_bin') "
                           "ORDER BY COLLATION_NAME DESC")
    finally:
        conn.close()
    return found[0][0] if found else None


def test_case_insensitive_pad_space_keys_repeat(dsn, db, bc_model, bc_scores):
    """utf8mb4_general_ci: 'x' = 'x ' (PAD SPACE) and 'R18' = 'r18' (case-insensitive)."""
    keys = {1: "x", 2: "x ", 3: "R18", 4: "r18", 5: "y", 6: "Z"}
    _keyed(db, "keys_ci", "VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci", keys)
    rows = _scores(dsn, "keys_ci")
    assert sorted(r["row_key"] for r in rows) == sorted(keys.values())
    by_key = {r["row_key"]: r for r in rows}
    for key in ("x", "x ", "R18", "r18"):
        error = by_key[key]["error"] or ""
        assert error.startswith("mlbridge: key ") and error.endswith(REPEATS), (key, error)
        assert by_key[key]["score"] is None
    for i, key in ((5, "y"), (6, "Z")):
        assert by_key[key]["error"] is None
        assert float(by_key[key]["score"]) == pytest.approx(bc_scores[str(i)], abs=1e-6)


def test_binary_collation_keys_differ_by_case_but_still_pad(dsn, db, bc_model, bc_scores):
    """utf8mb4_bin: 'R18' and 'r18' are two keys, both scored; 'x' = 'x ' still (utf8mb4_bin is
    a PAD SPACE collation on MariaDB and MySQL alike)."""
    keys = {1: "R18", 2: "r18", 3: "x", 4: "x "}
    _keyed(db, "keys_bin", "VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", keys)
    by_key = {r["row_key"]: r for r in _scores(dsn, "keys_bin")}
    assert sorted(by_key) == sorted(keys.values())
    for i, key in ((1, "R18"), (2, "r18")):
        assert by_key[key]["error"] is None, by_key[key]
        assert float(by_key[key]["score"]) == pytest.approx(bc_scores[str(i)], abs=1e-6)
    assert all((by_key[k]["error"] or "").endswith(REPEATS) for k in ("x", "x "))


def test_no_pad_collation_keys_differ_by_trailing_spaces(dsn, db, bc_model, bc_scores, nopad_collation):
    if nopad_collation is None:
        pytest.skip("this server has no binary NO PAD collation of utf8mb4")
    keys = {1: "x", 2: "x ", 3: "R18", 4: "r18"}
    _keyed(db, "keys_nopad", f"VARCHAR(20) CHARACTER SET utf8mb4 COLLATE {nopad_collation}", keys)
    by_key = {r["row_key"]: r for r in _scores(dsn, "keys_nopad")}
    assert sorted(by_key) == sorted(keys.values())
    for i, key in keys.items():
        assert by_key[key]["error"] is None, by_key[key]
        assert float(by_key[key]["score"]) == pytest.approx(bc_scores[str(i)], abs=1e-6)


# Keys wider than an index may be (3072 bytes: TEXT, or VARCHAR over 768 utf8mb4 characters)
# get a shortened index, which MariaDB 10.11 reports as Note 1071 with the table created.
@pytest.mark.parametrize("collation, repeats", [("utf8mb4_general_ci", {"A", "a", " "}), ("utf8mb4_bin", {" "})])
@pytest.mark.parametrize("key_type", ["VARCHAR(700)", "TEXT", "VARCHAR(1000)"])
def test_long_text_keys_compare_whole_with_their_collation(dsn, db, bc_model, key_type, collation, repeats):
    """Text keys are grouped by their first 255 characters, then compared whole, with the
    collation: past the prefix, case counts only in utf8mb4_bin, and a trailing blank in neither."""
    base = "k" * 300
    tails = {1: "A", 2: "a", 3: "", 4: " ", 5: "b"}
    _keyed(db, "keys_long", f"{key_type} CHARACTER SET utf8mb4 COLLATE {collation}",
           {i: base + t for i, t in tails.items()})
    rows = _scores(dsn, "keys_long")
    assert sorted(r["row_key"] for r in rows) == sorted(base + t for t in tails.values())
    failed = {r["row_key"][300:] for r in rows if (r["error"] or "").endswith(REPEATS)}
    # the blank repeats the bare key; under general_ci "A" and "a" repeat each other
    assert failed == repeats | {""}
    assert all(r["error"] is None and r["score"] is not None for r in rows if r["row_key"][300:] not in failed)


def test_a_text_key_cast_to_a_narrower_varchar_keeps_its_collation(dsn, db, bc_model, bc_scores):
    """A key selected as VARCHAR(512) with COLLATE compares as that collation says."""
    keys = {1: "R18", 2: "r18", 3: "x", 4: "x "}
    _keyed(db, "keys_text", "TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", keys)
    query = "SELECT CAST(k AS CHAR(512)) COLLATE utf8mb4_bin AS k512, b.* FROM demo.keys_text AS b"
    rows = _rows(sql_cli(dsn, f"CALL mlbridge.predict_scores('bc', '{query}', '{{\"key\": \"k512\"}}')"))
    by_key = {r["row_key"]: r for r in rows}
    assert sorted(by_key) == sorted(keys.values())
    assert by_key["R18"]["error"] is None and by_key["r18"]["error"] is None
    assert float(by_key["r18"]["score"]) == pytest.approx(bc_scores["2"], abs=1e-6)
    assert all((by_key[k]["error"] or "").endswith("repeats in this request (key column `k512`)") for k in ("x", "x "))


def test_integer_keys_repeat_by_value_and_null_keys_fail(dsn, db, bc_model, bc_scores):
    keys = {1: 7, 2: 8, 3: 8, 4: None, 5: -1}
    _keyed(db, "keys_int", "INT", keys)
    rows = _scores(dsn, "keys_int")
    assert len(rows) == 5
    by_key: dict[str | None, list[dict]] = {}
    for r in rows:
        by_key.setdefault(r["row_key"], []).append(r)
    assert [r["error"] for r in by_key["8"]] == [f"mlbridge: key 8 {REPEATS}"] * 2
    assert [r["error"] for r in by_key[None]] == ["mlbridge: key column `k` is NULL in this row"]
    for i, key in ((1, "7"), (5, "-1")):
        assert by_key[key][0]["error"] is None
        assert float(by_key[key][0]["score"]) == pytest.approx(bc_scores[str(i)], abs=1e-6)


def _column(db, schema: str, table: str, column: str) -> tuple:
    found = _run(db, "SELECT COLUMN_TYPE, CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
                     "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND COLUMN_NAME = %s", (schema, table, column))
    assert len(found) == 1, (schema, table, column)
    return found[0]


@pytest.mark.parametrize(
    "key_type, keys",
    [
        ("VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", {1: "R18", 2: "r18", 3: "x"}),
        ("VARCHAR(30) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci", {1: "R18", 2: "é", 3: "x"}),
        ("CHAR(8) CHARACTER SET latin1 COLLATE latin1_general_cs", {1: "R18", 2: "r18", 3: "x"}),
        ("VARCHAR(768) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", {1: "R18", 2: "r18", 3: "k" * 768}),
        ("TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", {1: "R18", 2: "r18", 3: "k" * 300}),
        ("INT UNSIGNED", {1: 4294967295, 2: 0, 3: 18}),
        ("BIGINT", {1: -2**63, 2: 2**63 - 1, 3: 18}),
        ("DECIMAL(12,3)", {1: "1.500", 2: "-2.250", 3: "0.000"}),
    ],
)
def test_predict_table_output_keeps_the_keys_type_and_collation(dsn, db, bc_model, bc_scores, key_type, keys):
    _keyed(db, "keys_in", key_type, keys)
    _run(db, "DROP TABLE IF EXISTS demo.keys_out")
    status = _rows(sql_cli(dsn, "CALL mlbridge.predict_table('bc', 'demo.keys_in', 'demo.keys_out', "
                                "'{\"key\": \"k\"}')"))[0]
    assert (status["status"], status["rows_done"], status["rows_failed"]) == ("done", str(len(keys)), "0"), status
    assert _column(db, "demo", "keys_out", "k") == _column(db, "demo", "keys_in", "k")
    ids = {k: i for k, i in _run(db, "SELECT k, id FROM demo.keys_in")}
    out = _run(db, "SELECT o.k, o.score, o.error FROM demo.keys_out AS o")
    assert sorted(ids) == sorted(k for k, _, _ in out)  # the key's values themselves, not text of them
    for k, score, error in out:
        assert error is None and score == pytest.approx(bc_scores[str(ids[k])], abs=1e-6)
    # the output joins back on the key, as the key's own collation compares
    joined = _run(db, "SELECT COUNT(*) FROM demo.keys_in AS i JOIN demo.keys_out AS o ON o.k = i.k")
    assert joined[0][0] == len(keys)
