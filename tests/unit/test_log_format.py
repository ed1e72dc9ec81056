"""JSON log lines (mlbridge.log_format): one object a line, extra fields kept, tracebacks inside."""

from __future__ import annotations

import io
import json
import logging

import pytest

from mlbridge.log_format import configure


@pytest.fixture
def restore_root():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def test_json_lines_hold_the_fields_and_extras(restore_root):
    out = io.StringIO()
    configure("json", "DEBUG", stream=out)
    log = logging.getLogger("mlbridge_server.test")
    log.info("model %s loaded", "churn", extra={"model": "churn", "version": 3})
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        log.exception("it failed", extra={"path": object()})
    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # a traceback with newlines stays inside its one line
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "model churn loaded" and first["level"] == "INFO"
    assert first["logger"] == "mlbridge_server.test" and first["time"].endswith("Z")
    assert (first["model"], first["version"]) == ("churn", 3)
    assert "args" not in first and "msg" not in first  # the record's own attributes stay out
    assert second["level"] == "ERROR" and "ValueError: bad" in second["exception"]
    assert second["path"].startswith("<object object")  # what JSON cannot hold: its str()


def test_text_and_levels(restore_root):
    out = io.StringIO()
    configure("text", "warning", stream=out)
    logging.getLogger("x").info("hidden")
    logging.getLogger("x").warning("shown")
    assert out.getvalue().endswith(" WARNING x: shown\n") and "hidden" not in out.getvalue()
    with pytest.raises(ValueError, match="must be text or json"):
        configure("xml")
