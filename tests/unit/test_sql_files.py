"""Rules the .sql files keep, checked without a server."""

import re

import pytest

from mlbridge.db import SQL_DIR, queries
from mlbridge.db.install import MESSAGE_MAX, render, routine_files, routine_roles, split_statements

ROUTINES = {path.stem: path.read_text() for path in routine_files()}


@pytest.mark.parametrize("name", sorted(ROUTINES))
def test_one_routine_per_file_named_like_it(name):
    heads = re.findall(r"^\s*CREATE\s+(?:PROCEDURE|FUNCTION)\s+`?(\w+)`?", ROUTINES[name], re.M | re.I)
    assert heads == [name]
    assert "DELIMITER" not in ROUTINES[name]


@pytest.mark.parametrize("name", sorted(ROUTINES))
def test_signal_messages_fit_mysql(name):
    """MySQL refuses a SIGNAL whose MESSAGE_TEXT is over 128 characters (in strict mode), so
    literal messages stay short and built ones are cut to {{message_max}}."""
    text = ROUTINES[name]
    for literal in re.findall(r"MESSAGE_TEXT\s*=\s*'((?:[^']|'')*)'", text):
        assert len(literal.replace("''", "'")) <= MESSAGE_MAX["mysql"], literal
        assert literal.startswith("mlbridge: ")
    for variable in re.findall(r"MESSAGE_TEXT\s*=\s*(\w+)\s*;", text):
        assert variable == "v_msg"
    for assignment in re.findall(r"SET v_msg = (.*?);\n", text, re.S):
        assert assignment.startswith("LEFT(CONCAT('mlbridge: ") and assignment.endswith(", {{message_max}})"), assignment


def test_rendered_routines_have_no_placeholders_left():
    for flavor in ("mariadb", "mysql"):
        for name, text in ROUTINES.items():
            assert "{{" not in render(text, schema="mlbridge", flavor=flavor), name


def test_migrations_and_grants_split_into_statements():
    for path in sorted((SQL_DIR / "migrations").glob("*.sql")) + [SQL_DIR / "grants.sql"]:
        statements = split_statements(path.read_text())
        assert statements and all(not s.endswith(";") for s in statements)


def test_named_queries_parse():
    found = queries()
    for name in ("claim_select", "claim_update", "close_chunk", "insert_results", "request_progress",
                 "record_model_version", "sync_model_version"):
        assert found[name].split()[0] in ("SELECT", "UPDATE", "INSERT"), name


# Inner DEFINER routines a caller may EXECUTE that act for no account: they read the catalog only.
READS_CATALOG_ONLY = {"_resolve_model"}


@pytest.mark.parametrize("name", sorted(ROUTINES))
def test_routines_callers_reach_trust_no_argument_for_who_they_are(name):
    """A DEFINER routine granted to callers (`-- execute: mlbridge_user`) takes the account from
    _caller as its first call, so a direct call cannot act for another account; a public
    (INVOKER) routine attests the caller before each DEFINER routine it hands off to. (Routines
    granted to admins or workers only act for no account: the role is the check.)"""
    text = ROUTINES[name]
    body = text[re.search(r"^CREATE", text, re.M).start():]
    granted = routine_roles(text)
    definer = "SQL SECURITY DEFINER" in body
    if "mlbridge_user" in granted and definer and name not in READS_CATALOG_ONLY:
        calls = re.findall(r"\bCALL (\w+)\(", body)
        assert calls and calls[0] == "_caller", f"{name} must CALL _caller(v_owner) first"
        assert "USER()" not in body.replace("CURRENT_USER()", "")
    if not definer:
        handed = [callee for callee in re.findall(r"\bCALL (\w+)\(", body)
                  if callee in ROUTINES and "SQL SECURITY DEFINER" in ROUTINES[callee]
                  and callee not in READS_CATALOG_ONLY]
        lines = body.splitlines()
        for i, line in enumerate(lines):
            for callee in handed:
                if re.search(rf"\bCALL {callee}\(", line):
                    assert "CALL _attest();" in lines[i - 1], f"{name}: attest before CALL {callee}"


def test_inner_routines_are_granted_to_nobody():
    for name in ("_caller", "_check_owner", "_status_of", "_wake_bridges"):
        assert routine_roles(ROUTINES[name]) == [], name
    for name, text in ROUTINES.items():
        if not name.startswith("_"):
            assert routine_roles(text) == ["mlbridge_user"] or "mlbridge_admin" in routine_roles(text), name
