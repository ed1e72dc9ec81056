"""An install of the first release, with work queued in its format (JSON rows), upgraded in place:
nothing queued is lost, the old work is scored, and new work takes the typed path."""

from __future__ import annotations

import json

from mlbridge.config import Dsn
from mlbridge.db import connect, quote_ident
from mlbridge.db.install import data_schema, install, migration_files, scratch_schema

from ..procs import parse_tsv, sql_cli, start_bridge


def test_an_upgrade_keeps_queued_work_and_it_finishes(dsn, bc_model, bc_features, model_server, tmp_path):
    target = Dsn(**{**dsn.__dict__, "database": "mlbridge_upgrade"})
    first = install(target, upto="0001_initial")
    assert first.migrations_applied == ["0001_initial"] and not first.routines_created
    conn = connect(target)
    cur = conn.cursor()
    try:
        cur.execute("INSERT INTO models (name, version, inputs, outputs, score_output, source) "
                    "SELECT name, version, inputs, outputs, score_output, source FROM mlbridge.models "
                    "WHERE name = 'bc' AND version = %s", (bc_model["version"],))
        # a request as the first release queued it: JSON rows, one failed at queue time
        cur.execute("INSERT INTO requests (kind, owner, model_name, model_version, inputs, key_column, status, "
                    "rows_total, rows_failed) VALUES ('predict', 'root', 'bc', %s, %s, 'id', 'pending', 4, 1)",
                    (bc_model["version"], json.dumps(bc_features)))
        request = cur.lastrowid
        columns = ", ".join(f"`{f}`" for f in bc_features)
        cur.execute(f"INSERT INTO request_rows (request_id, seq, row_key, features) SELECT {request}, id, id, "
                    f"JSON_ARRAY({columns}) FROM demo.breast_cancer WHERE id <= 4")
        cur.execute("INSERT INTO results (request_id, seq, row_key, error) VALUES (%s, 4, '4', 'mlbridge: old error')",
                    (request,))
        cur.execute("INSERT INTO predict_queue (request_id, seq_from, seq_to, model_name, model_version) "
                    "VALUES (%s, 1, 4, 'bc', %s)", (request, bc_model["version"]))

        upgraded = install(target)
        assert upgraded.migrations_applied == [p.stem for p in migration_files()][1:] and upgraded.routines_created
        # the request of user name `root` belongs to an account now, the one root's session is here
        cur.execute("SELECT owner FROM requests WHERE id = %s", (request,))
        assert cur.fetchone()[0] == "root@localhost"
        with start_bridge(target, model_server.target, tmp_path):
            status = parse_tsv(sql_cli(target, f"CALL mlbridge_upgrade.request_wait({request}, 60)").stdout)[0]
            assert (status["status"], status["rows_done"], status["rows_failed"]) == ("done", "3", "1")
            old = parse_tsv(sql_cli(target, f"CALL mlbridge_upgrade.request_results({request})").stdout)
            assert [r["row_key"] for r in old] == ["1", "2", "3", "4"]
            assert all(r["score"] is not None for r in old[:3]) and old[3]["error"] == "mlbridge: old error"
            new = parse_tsv(sql_cli(target, "CALL mlbridge_upgrade.predict_scores('bc', "
                                            "'SELECT * FROM demo.breast_cancer WHERE id <= 4', NULL)").stdout)
            assert [r["score"] for r in new[:3]] == [r["score"] for r in old[:3]]
    finally:
        for name in (target.database, scratch_schema(target.database), data_schema(target.database)):
            cur.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)}")
        conn.close()


def test_the_previous_release_upgrades_with_its_typed_work_and_bare_owners(dsn, bc_model, bc_features, model_server,
                                                                          tmp_path):
    """The release before accounts, trainer jobs and the catalog view (migrations up to 0003): a
    typed-rows request queued by user name `root`, upgraded in place, is scored and stays root's."""
    target = Dsn(**{**dsn.__dict__, "database": "mlbridge_previous"})
    install(target, upto="0003_model_types")
    conn = connect(target)
    cur = conn.cursor()
    data = data_schema(target.database)
    try:
        cur.execute("INSERT INTO models (name, version, inputs, outputs, score_output, source) "
                    "SELECT name, version, inputs, outputs, score_output, source FROM mlbridge.models "
                    "WHERE name = 'bc' AND version = %s", (bc_model["version"],))
        cur.execute("INSERT INTO requests (kind, owner, model_name, model_version, inputs, key_column, status, "
                    "rows_total) VALUES ('predict', 'root', 'bc', %s, %s, 'id', 'pending', 5)",
                    (bc_model["version"], json.dumps(bc_features)))
        request = cur.lastrowid
        columns = ", ".join(f"`{f}` AS i{i}" for i, f in enumerate(bc_features, 1))
        cur.execute(f"CREATE TABLE {quote_ident(data)}.rows_{request} (PRIMARY KEY (seq)) "
                    f"SELECT id AS seq, id AS k, {columns} FROM demo.breast_cancer WHERE id <= 5")
        cur.execute("UPDATE requests SET rows_table = %s WHERE id = %s", (f"rows_{request}", request))
        cur.execute("INSERT INTO predict_queue (request_id, seq_from, seq_to, model_name, model_version, priority) "
                    "VALUES (%s, 1, 5, 'bc', %s, 1)", (request, bc_model["version"]))

        upgraded = install(target)
        assert upgraded.migrations_applied == [p.stem for p in migration_files()][3:]
        cur.execute("SELECT owner FROM requests WHERE id = %s", (request,))
        assert cur.fetchone()[0] == "root@localhost"
        with start_bridge(target, model_server.target, tmp_path):
            status = parse_tsv(sql_cli(target, f"CALL mlbridge_previous.request_wait({request}, 60)").stdout)[0]
            assert (status["status"], status["rows_done"]) == ("done", "5")
            scored = parse_tsv(sql_cli(target, f"CALL mlbridge_previous.request_results({request})").stdout)
            assert [r["row_key"] for r in scored] == ["1", "2", "3", "4", "5"] and all(r["score"] for r in scored)
    finally:
        for name in (target.database, scratch_schema(target.database), data):
            cur.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)}")
        conn.close()


def _shape(cur, schema: str) -> dict:
    """What an install consists of: columns, indexes and routines (not the data)."""
    cur.execute("SELECT TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, "
                "COLLATION_NAME, COLUMN_COMMENT FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
                "ORDER BY TABLE_NAME, ORDINAL_POSITION", (schema,))
    columns = cur.fetchall()
    cur.execute("SELECT TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, NON_UNIQUE FROM information_schema.STATISTICS "
                "WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX", (schema,))
    indexes = cur.fetchall()
    cur.execute("SELECT ROUTINE_NAME, ROUTINE_DEFINITION, SECURITY_TYPE FROM information_schema.ROUTINES "
                "WHERE ROUTINE_SCHEMA = %s ORDER BY ROUTINE_NAME", (schema,))
    routines = [(name, (text or "").replace(schema, "SCHEMA"), security) for name, text, security in cur.fetchall()]
    cur.execute(f"SELECT name, value FROM {quote_ident(schema)}.settings ORDER BY name")
    return {"columns": columns, "indexes": indexes, "routines": routines, "settings": cur.fetchall()}


def test_an_install_built_from_every_migration_equals_one_upgraded_step_by_step(dsn):
    fresh = Dsn(**{**dsn.__dict__, "database": "mlbridge_fresh"})
    stepped = Dsn(**{**dsn.__dict__, "database": "mlbridge_stepped"})
    conn = connect(dsn)
    cur = conn.cursor()
    try:
        install(fresh)
        install(stepped, upto="0001_initial")
        install(stepped)
        a, b = _shape(cur, fresh.database), _shape(cur, stepped.database)
        assert a["columns"] and a["routines"]
        for part in ("columns", "indexes", "routines", "settings"):
            assert a[part] == b[part], part
    finally:
        for target in (fresh, stepped):
            for name in (target.database, scratch_schema(target.database), data_schema(target.database)):
                cur.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)}")
        conn.close()
