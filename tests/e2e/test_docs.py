"""The examples of docs/sql.md run: every statement of its ```sql blocks, in order, through the
mariadb client as the installing account, with the session's bridge and a trainer worker
running. `42` in an example stands for the request queued just before it."""

from __future__ import annotations

import re

import pytest

from mlbridge.db import connect

from ..procs import REPO, sql_cli, start_trainer

DOC = REPO / "docs" / "sql.md"


def examples() -> list[str]:
    blocks = re.findall(r"^```sql\n(.*?)^```", DOC.read_text(), re.S | re.M)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_the_reference_has_examples_and_covers_every_routine():
    from mlbridge.db.install import routine_files, routine_roles

    text = DOC.read_text()
    public = [p.stem for p in routine_files() if routine_roles(p.read_text()) and not p.stem.startswith("_")]
    assert public and [name for name in public if f"### {name}" not in text and f", {name}" not in text
                       and f"### {name}," not in text] == []
    assert len(examples()) >= 15


def test_the_examples_run(dsn, bc_model, bridge, model_base, tmp_path):
    conn = connect(dsn)
    cur = conn.cursor()
    with start_trainer(dsn, model_base, tmp_path) as trainer:
        for statement in examples():
            cur.execute("SELECT COALESCE(MAX(id), 0) FROM requests")
            latest = cur.fetchone()[0]
            sql = re.sub(r"\(42([,)])", rf"({latest}\1", statement)
            done = sql_cli(dsn, sql, timeout=900)
            assert done.returncode == 0, (sql[:200], done.stderr, trainer.output()[-2000:])
            if sql.startswith("CALL") and "async" not in sql and "train_model" not in sql:
                assert done.stdout.strip(), sql[:200]  # each call answers with rows
    conn.close()


@pytest.fixture(autouse=True)
def _no_label_left(db):
    yield
    db.cursor().execute("DELETE FROM model_labels WHERE name = 'bc' AND label = 'prod'")
