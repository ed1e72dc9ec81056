import pytest

from mlbridge.config import Dsn, resolve_dsn
from mlbridge.db import quote_ident
from mlbridge.db.install import render, split_statements
from mlbridge.errors import MlbridgeError


def test_dsn_round_trip():
    dsn = Dsn.parse("mysql://bob:p%40ss@db.example:3307/mlb?unix_socket=/tmp/s.sock&ssl_ca=/ca.pem")
    assert (dsn.user, dsn.password, dsn.host, dsn.port, dsn.database) == ("bob", "p@ss", "db.example", 3307, "mlb")
    assert dsn.unix_socket == "/tmp/s.sock" and dsn.options == {"ssl_ca": "/ca.pem"}
    assert Dsn.parse(str(dsn)) == dsn
    assert "p@ss" not in dsn.redacted() and "***" in dsn.redacted()
    assert dsn.connect_args()["ssl_ca"] == "/ca.pem"


def test_dsn_defaults():
    dsn = Dsn.parse("mysql://127.0.0.1")
    assert (dsn.user, dsn.port, dsn.database) == ("root", 3306, "mlbridge")


@pytest.mark.parametrize("bad", ["postgres://x/y", "127.0.0.1:3306", "mysql://h:notaport/x"])
def test_bad_dsn_says_what_to_fix(bad):
    with pytest.raises(MlbridgeError, match="mlbridge: DSN"):
        Dsn.parse(bad)


def test_resolve_dsn_order(monkeypatch, tmp_path):
    monkeypatch.setenv("MLBRIDGE_RUN_DIR", str(tmp_path))
    monkeypatch.delenv("MLBRIDGE_DSN", raising=False)
    with pytest.raises(MlbridgeError, match="no database given"):
        resolve_dsn(None)
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "dsn").write_text("mysql://root@127.0.0.1:4000/mlbridge\n")
    assert resolve_dsn(None).port == 4000
    monkeypatch.setenv("MLBRIDGE_DSN", "mysql://root@127.0.0.1:5000/mlbridge")
    assert resolve_dsn(None).port == 5000
    assert resolve_dsn("mysql://root@127.0.0.1:6000/x").port == 6000


def test_quote_ident():
    assert quote_ident("a`b") == "`a``b`"
    for bad in ["", "x" * 65, "a\x00b"]:
        with pytest.raises(MlbridgeError):
            quote_ident(bad)


def test_split_statements_on_line_end_semicolons():
    text = "-- head\nCREATE TABLE a (x INT);\n\n-- note\nINSERT INTO a VALUES (1); \nSELECT ';' AS s\n;\n"
    assert split_statements(text) == ["CREATE TABLE a (x INT)", "INSERT INTO a VALUES (1)", "SELECT ';' AS s"]


def test_render_fills_placeholders_per_flavor():
    text = "`{{schema}}`.x `{{scratch}}`.y {{in_transaction}}"
    assert render(text, schema="m", flavor="mariadb") == "`m`.x `m_scratch`.y @@in_transaction"
    assert render(text, schema="m", flavor="mysql") == "`m`.x `m_scratch`.y FALSE"
