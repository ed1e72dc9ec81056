import os

import pytest

from mlbridge.config import Dsn, given_dsn, resolve_dsn
from mlbridge.db import quote_ident
from mlbridge.db.install import render, split_statements
from mlbridge.errors import MlbridgeError


def test_dsn_round_trip(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("PEM")
    dsn = Dsn.parse(f"mysql://bob:p%40ss@db.example:3307/mlb?unix_socket=/tmp/s.sock&ssl_ca={ca}")
    assert (dsn.user, dsn.password, dsn.host, dsn.port, dsn.database) == ("bob", "p@ss", "db.example", 3307, "mlb")
    assert dsn.unix_socket == "/tmp/s.sock" and dsn.options == {"ssl_ca": str(ca)}
    assert Dsn.parse(str(dsn)) == dsn
    assert "p@ss" not in dsn.redacted() and "***" in dsn.redacted()
    assert dsn.connect_args()["ssl_ca"] == str(ca)


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


# -- TLS options ---------------------------------------------------------------------------------

@pytest.fixture
def pem(tmp_path):
    """Three readable PEM-named files (their content is the driver's business, not the DSN's)."""
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("PEM")
    return tmp_path


def test_dsn_options_unknown_name_the_known_ones():
    with pytest.raises(MlbridgeError, match=r"^mlbridge: DSN option sslca is unknown; known: unix_socket, ssl_ca,"):
        Dsn.parse("mysql://u@h/db?sslca=/ca.pem")
    with pytest.raises(MlbridgeError, match="DSN option tls is unknown"):
        Dsn(options={"tls": "true"}).connect_args()  # built by hand, not parsed: checked all the same


@pytest.mark.parametrize("text, value", [("1", "true"), ("TRUE", "true"), ("yes", "true"), ("0", "false"),
                                         ("off", "false")])
def test_dsn_flags_are_written_true_or_false(text, value):
    dsn = Dsn.parse(f"mysql://u@h/db?ssl_disabled={text}")
    assert dsn.options == {"ssl_disabled": value} and Dsn.parse(str(dsn)) == dsn


def test_dsn_flag_that_is_no_truth_value():
    with pytest.raises(MlbridgeError, match="ssl_verify_cert='maybe' must be true or false"):
        Dsn.parse("mysql://u@h/db?ssl_verify_cert=maybe")


def test_dsn_tls_args(pem):
    args = Dsn.parse(f"mysql://u@h/db?ssl_ca={pem}/ca.pem").connect_args()
    assert args["ssl_ca"] == f"{pem}/ca.pem" and args["ssl_verify_cert"] is True  # a CA given is checked
    args = Dsn.parse(f"mysql://u@h/db?ssl_ca={pem}/ca.pem&ssl_verify_cert=false").connect_args()
    assert "ssl_verify_cert" not in args
    args = Dsn.parse(f"mysql://u@h/db?ssl_ca={pem}/ca.pem&ssl_cert={pem}/cert.pem&ssl_key={pem}/key.pem"
                     "&ssl_verify_identity=true").connect_args()
    assert (args["ssl_cert"], args["ssl_key"]) == (f"{pem}/cert.pem", f"{pem}/key.pem")
    assert args["ssl_verify_cert"] is True and args["ssl_verify_identity"] is True
    assert Dsn.parse("mysql://u@h/db?ssl_disabled=true").connect_args()["ssl_disabled"] is True
    assert not any(k.startswith("ssl_") for k in Dsn.parse("mysql://u@h/db").connect_args())


@pytest.mark.parametrize("query, message", [
    ("ssl_ca=/no/such/ca.pem", "ssl_ca=/no/such/ca.pem: no such readable file; give the path of the CA certificate"),
    ("ssl_cert={pem}/cert.pem", "ssl_cert and ssl_key go together"),
    ("ssl_key={pem}/key.pem", "ssl_cert and ssl_key go together"),
    ("ssl_verify_cert=true", "ssl_verify_cert=true needs ssl_ca"),
    ("ssl_verify_identity=true", "needs ssl_ca"),
    ("ssl_ca={pem}/ca.pem&ssl_verify_identity=true&ssl_verify_cert=false", "drop ssl_verify_cert=false"),
    ("ssl_disabled=true&ssl_ca={pem}/ca.pem", "ssl_disabled=true contradicts ssl_ca"),
])
def test_dsn_tls_mistakes_say_what_to_fix(pem, query, message):
    dsn = Dsn.parse("mysql://u@h/db?" + query.format(pem=pem))
    with pytest.raises(MlbridgeError, match="^mlbridge: DSN option") as caught:
        dsn.connect_args()
    assert message in str(caught.value)


# -- password and settings file ------------------------------------------------------------------

@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in ("MLBRIDGE_DSN", "MLBRIDGE_DB_PASSWORD", "MLBRIDGE_SETTINGS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLBRIDGE_RUN_DIR", str(tmp_path / "run"))
    return monkeypatch


def _settings(path, text, mode=0o600):
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_password_from_the_environment_when_the_dsn_has_none(clean_env):
    clean_env.setenv("MLBRIDGE_DB_PASSWORD", "s3cret")
    assert resolve_dsn("mysql://app@h/db").password == "s3cret"
    assert resolve_dsn("mysql://app:given@h/db").password == "given"  # the DSN's own wins


def test_settings_file_fills_in_what_the_dsn_leaves_out(clean_env, tmp_path, pem):
    path = _settings(tmp_path / "settings.toml", f"""
[database]
dsn = "mysql://app@db.example:3307/mlbridge"
password = "from-file"
ssl_ca = "{pem}/ca.pem"
ssl_verify_identity = true
""")
    clean_env.setenv("MLBRIDGE_SETTINGS", str(path))
    dsn = resolve_dsn(None)
    assert (dsn.user, dsn.host, dsn.port, dsn.password) == ("app", "db.example", 3307, "from-file")
    assert dsn.options == {"ssl_ca": f"{pem}/ca.pem", "ssl_verify_identity": "true"}
    clean_env.setenv("MLBRIDGE_DB_PASSWORD", "from-env")  # flags, then environment, then the file
    assert resolve_dsn(None).password == "from-env"
    clean_env.setenv("MLBRIDGE_DSN", "mysql://other@h2/mlbridge?ssl_verify_identity=false")
    dsn = resolve_dsn(None)
    assert (dsn.user, dsn.host, dsn.options["ssl_verify_identity"]) == ("other", "h2", "false")
    assert resolve_dsn("mysql://flag@h3/mlbridge").user == "flag"


def test_settings_file_with_a_password_must_be_private(clean_env, tmp_path):
    path = _settings(tmp_path / "settings.toml", '[database]\npassword = "x"\n', mode=0o644)
    clean_env.setenv("MLBRIDGE_SETTINGS", str(path))
    with pytest.raises(MlbridgeError, match=rf"holds a password but others may read it \(mode 0644\): .*chmod 600 {path}"):
        resolve_dsn("mysql://u@h/db")
    _settings(path, '[database]\ndsn = "mysql://u:pw@h/db"\n', mode=0o640)  # a password inside the DSN too
    with pytest.raises(MlbridgeError, match="holds a password"):
        resolve_dsn(None)
    _settings(path, '[database]\ndsn = "mysql://u@h/db"\n', mode=0o644)  # nothing secret: any mode
    assert resolve_dsn(None).user == "u"


@pytest.mark.parametrize("text, message", [
    ("[database]\nssl_capath = '/x'\n", "key ssl_capath in [database] is unknown; known: dsn, password, unix_socket"),
    ("[server]\nport = 1\n", "section 'server' is unknown"),
    ("[database]\nssl_verify_cert = 'perhaps'\n", "ssl_verify_cert='perhaps' must be true or false"),
    ("[database]\npassword = 12\n", "password must be a string"),
    ("[database\n", "is not valid TOML"),
])
def test_bad_settings_files_say_what_to_fix(clean_env, tmp_path, text, message):
    clean_env.setenv("MLBRIDGE_SETTINGS", str(_settings(tmp_path / "s.toml", text)))
    with pytest.raises(MlbridgeError, match="^mlbridge: settings file ") as caught:
        resolve_dsn("mysql://u@h/db")
    assert message in str(caught.value)


def test_missing_settings_file(clean_env, tmp_path):
    clean_env.setenv("MLBRIDGE_SETTINGS", str(tmp_path / "none.toml"))
    with pytest.raises(MlbridgeError, match="does not exist: fix MLBRIDGE_SETTINGS"):
        resolve_dsn(None)


def test_the_private_database_dsn_takes_nothing_from_the_settings(clean_env, tmp_path):
    clean_env.setenv("MLBRIDGE_DB_PASSWORD", "for-another-server")
    (tmp_path / "run" / "db").mkdir(parents=True)
    (tmp_path / "run" / "db" / "dsn").write_text("mysql://root@127.0.0.1:4000/mlbridge\n")
    assert given_dsn(None) is None and resolve_dsn(None).password == ""


def test_children_get_the_dsn_in_their_environment(clean_env):
    from mlbridge.up import child_env

    clean_env.setenv("MLBRIDGE_DB_PASSWORD", "pw")
    clean_env.setenv("MLBRIDGE_SETTINGS", "/somewhere.toml")
    env = child_env(Dsn.parse("mysql://app:pw@h/db"))
    assert env["MLBRIDGE_DSN"] == "mysql://app:pw@h:3306/db"
    assert "MLBRIDGE_DB_PASSWORD" not in env and "MLBRIDGE_SETTINGS" not in env
