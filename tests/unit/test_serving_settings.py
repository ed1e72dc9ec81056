"""The model server's settings (mlbridge.serving_settings): flags > environment > settings file >
defaults, value by value, and bad values refused with a message naming where they came from."""

from __future__ import annotations

import argparse
import os

import pytest

from mlbridge.cli import build_parser
from mlbridge.errors import MlbridgeError
from mlbridge.serving_settings import ServerSettings, add_arguments, names


def _parse(*flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(flags))


def _file(tmp_path, text: str, mode: int = 0o600):
    path = tmp_path / "settings.toml"
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_defaults_are_the_documented_ones():
    s = ServerSettings.resolve(_parse(), environ={})
    assert (s.host, s.port, s.model_base, s.metrics_port, s.token) == ("127.0.0.1", 8500, "models", None, None)
    assert (s.enable_batching, s.max_batch_size, s.batch_timeout_micros, s.num_batch_threads,
            s.max_enqueued_batches, s.load_threads) == (True, 1024, 1000, 2, 64, 2)
    assert (s.log_format, s.log_level, s.max_request_bytes) == ("text", "INFO", 256 * 1024 * 1024)
    assert s.model_isolation == "none"


def test_flags_beat_environment_beat_file_beat_defaults(tmp_path):
    path = _file(tmp_path, "[serving]\nport = 9001\nmax_batch_size = 64\nnum_batch_threads = 3\n"
                           "log_format = 'json'\n")
    environ = {"MLBRIDGE_SETTINGS": str(path), "MLBRIDGE_SERVING_PORT": "9002",
               "MLBRIDGE_SERVING_MAX_BATCH_SIZE": "128"}
    s = ServerSettings.resolve(_parse("--port", "9003"), environ=environ)
    assert s.port == 9003  # flag over variable over file
    assert s.max_batch_size == 128  # variable over file
    assert s.num_batch_threads == 3 and s.log_format == "json"  # file over default
    assert s.load_threads == 2  # default
    assert ServerSettings.resolve(_parse(), environ=environ).port == 9002


def test_an_explicit_settings_file_argument_beats_the_variable(tmp_path):
    path = _file(tmp_path, "[serving]\nport = 9001\n")
    other = tmp_path / "other.toml"
    other.write_text("[serving]\nport = 9009\n")
    s = ServerSettings.resolve(None, environ={"MLBRIDGE_SETTINGS": str(other)}, settings_file=path)
    assert s.port == 9001


def test_batching_flags_both_ways(tmp_path):
    environ = {"MLBRIDGE_SERVING_ENABLE_BATCHING": "false"}
    assert ServerSettings.resolve(_parse(), environ=environ).enable_batching is False
    assert ServerSettings.resolve(_parse("--enable-batching"), environ=environ).enable_batching is True
    assert ServerSettings.resolve(_parse("--no-batching"), environ={}).enable_batching is False
    path = _file(tmp_path, "[serving]\nenable_batching = false\n")
    assert ServerSettings.resolve(None, environ={}, settings_file=path).enable_batching is False
    with pytest.raises(SystemExit):
        _parse("--enable-batching", "--no-batching")


def test_older_variable_names_still_work_and_the_new_ones_win(tmp_path):
    assert ServerSettings.resolve(None, environ={"MLBRIDGE_MODEL_BASE": "/srv/a"}).model_base == "/srv/a"
    both = {"MLBRIDGE_MODEL_BASE": "/srv/a", "MLBRIDGE_SERVING_MODEL_BASE": "/srv/b"}
    assert ServerSettings.resolve(None, environ=both).model_base == "/srv/b"
    # The request caps keep the names they had in limits.py.
    s = ServerSettings.resolve(None, environ={"MLBRIDGE_SERVING_MAX_REQUEST_ELEMENTS": "1_000"})
    assert s.max_request_elements == 1000
    assert ServerSettings.resolve(None, environ={"MLBRIDGE_SERVING_PORT": "  "}).port == 8500  # empty: unset


def test_relative_paths_in_the_file_are_relative_to_the_file(tmp_path):
    folder = tmp_path / "etc"
    folder.mkdir()
    path = _file(folder, "[serving]\nmodel_base = 'models'\nmodel_config_file = '/abs/models.config'\n")
    s = ServerSettings.resolve(None, environ={}, settings_file=path)
    assert s.model_base == str(folder / "models")
    assert s.model_config_file == "/abs/models.config"
    # Flags and variables keep theirs, relative to the working directory as usual.
    assert ServerSettings.resolve(_parse("--model-base", "m"), environ={}, settings_file=path).model_base == "m"


def test_token_sources_in_order(tmp_path):
    flag_file, env_file, conf_file = (tmp_path / n for n in ("flag", "env", "conf"))
    for path, token in ((flag_file, "from-flag"), (env_file, "from-env-file"), (conf_file, "from-conf")):
        path.write_text(token + "\n")
        path.chmod(0o600)
    settings = _file(tmp_path, f"[serving]\ntoken_file = '{conf_file}'\n")
    environ = {"MLBRIDGE_SETTINGS": str(settings), "MLBRIDGE_SERVER_TOKEN_FILE": str(env_file),
               "MLBRIDGE_SERVER_TOKEN": "from-env"}
    assert ServerSettings.resolve(_parse("--token-file", str(flag_file)), environ=environ).token == "from-flag"
    assert ServerSettings.resolve(None, environ=environ).token == "from-env-file"
    del environ["MLBRIDGE_SERVER_TOKEN_FILE"]
    assert ServerSettings.resolve(None, environ=environ).token == "from-env"
    del environ["MLBRIDGE_SERVER_TOKEN"]
    s = ServerSettings.resolve(None, environ=environ)
    assert s.token == "from-conf" and s.token_file == str(conf_file)
    assert "from-conf" not in repr(s) and "token=***" in repr(s)
    assert ServerSettings.resolve(None, environ={}).token is None
    # Built directly (ModelServer(token_file=...)), the file is read all the same.
    assert ServerSettings(token_file=str(flag_file)).token == "from-flag"
    assert ServerSettings().replace(token_file=str(conf_file)).token == "from-conf"
    assert ServerSettings(token_file=str(flag_file)).replace(token_file=str(conf_file)).token == "from-conf"
    with pytest.raises(MlbridgeError, match="cannot read the token file"):
        ServerSettings(token_file=str(tmp_path / "missing"))


@pytest.mark.parametrize("environ, message", [
    ({"MLBRIDGE_SERVING_PORT": "eighty"}, "MLBRIDGE_SERVING_PORT='eighty' must be a whole number"),
    ({"MLBRIDGE_SERVING_PORT": "70000"}, "MLBRIDGE_SERVING_PORT=70000 must be a port, 0 to 65535"),
    ({"MLBRIDGE_SERVING_MAX_BATCH_SIZE": "0"}, "MLBRIDGE_SERVING_MAX_BATCH_SIZE=0 must be at least 1"),
    ({"MLBRIDGE_SERVING_ENABLE_BATCHING": "maybe"}, "MLBRIDGE_SERVING_ENABLE_BATCHING='maybe' must be true or false"),
    ({"MLBRIDGE_SERVING_LOG_FORMAT": "xml"}, "MLBRIDGE_SERVING_LOG_FORMAT='xml' must be one of text, json"),
    ({"MLBRIDGE_SERVING_MODEL_ISOLATION": "thread"},
     "MLBRIDGE_SERVING_MODEL_ISOLATION='thread' must be one of process, none"),
    ({"MLBRIDGE_SERVING_POLL_INTERVAL": "soon"}, "MLBRIDGE_SERVING_POLL_INTERVAL='soon' must be a number"),
    ({"MLBRIDGE_SERVING_SHUTDOWN_GRACE": "-1"}, "MLBRIDGE_SERVING_SHUTDOWN_GRACE=-1.0 must be at least 0"),
    ({"MLBRIDGE_SERVER_TOKEN": "has space"}, "printable ASCII without spaces"),
])
def test_bad_variables_are_named(environ, message):
    with pytest.raises(MlbridgeError) as caught:
        ServerSettings.resolve(None, environ=environ)
    assert message in str(caught.value)


@pytest.mark.parametrize("text, message", [
    ("[serving]\nprot = 1\n", "key prot in [serving] is unknown; known: model_base, host, port"),
    ("[serving]\nport = '8500'\n", "[serving] port='8500' must be a whole number"),
    ("[serving]\nenable_batching = 'yes'\n", "[serving] enable_batching='yes' must be true or false"),
    ("[serving]\nbatch_timeout_micros = -5\n", "[serving] batch_timeout_micros=-5 must be at least 0"),
    ("[serving]\nlog_level = 'LOUD'\n", "[serving] log_level='LOUD' must be one of DEBUG"),
    ("[serving]\nmodel_isolation = 'NONE'\n", "[serving] model_isolation='NONE' must be one of process, none"),
    ("serving = 3\n", "`serving` must be a section, [serving]"),
    ("[serve]\nport = 1\n", "section 'serve' is unknown; known: [database], [serving]"),
])
def test_bad_settings_files_are_named(tmp_path, text, message):
    path = _file(tmp_path, text)
    with pytest.raises(MlbridgeError) as caught:
        ServerSettings.resolve(None, environ={}, settings_file=path)
    assert f"settings file {path}" in str(caught.value) and message in str(caught.value)


def test_bad_flags_are_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        _parse("--port", "-1")
    assert "--port=-1 must be a port, 0 to 65535" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _parse("--log-format", "yaml")
    assert "--log-format='yaml' must be one of text, json" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _parse("--model-isolation", "docker")
    assert "--model-isolation='docker' must be one of process, none" in capsys.readouterr().err
    assert _parse("--model-isolation", "None").model_isolation == "none"


def test_direct_construction_is_checked_and_replace_names_unknown_settings():
    with pytest.raises(MlbridgeError, match="setting max_batch_size=0 must be at least 1"):
        ServerSettings(max_batch_size=0)
    with pytest.raises(MlbridgeError, match="unknown model server setting prot; known: model_base"):
        ServerSettings().replace(prot=1)
    assert ServerSettings().replace(port=0).port == 0


def test_both_entry_points_take_the_same_flags():
    from mlbridge_server.serving import main as server_main

    cli = build_parser()
    serve = next(a for a in cli._subparsers._group_actions[0].choices.items() if a[0] == "serve")[1]
    module = argparse.ArgumentParser()
    server_main.add_serve_arguments(module)
    flags = {s for a in serve._actions for s in a.option_strings}
    assert flags == {s for a in module._actions for s in a.option_strings}
    assert {"--port", "--enable-batching", "--no-batching", "--log-format", "--shutdown-grace"} <= flags
    # Every setting has a flag (the batching switch under its own two names).
    assert {"--" + n.replace("_", "-") for n in names()} <= flags
    args = cli.parse_args(["serve", "--host", "0.0.0.0", "--no-batching"])
    s = ServerSettings.resolve(args, environ={})
    assert (s.host, s.enable_batching, s.metrics_host) == ("0.0.0.0", False, None)


def test_every_setting_is_documented():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "serving.md").read_text()
    missing = [n for n in names() if f"| `{n}` |" not in text or f"MLBRIDGE_SERVING_{n.upper()}" not in text]
    assert not missing, f"docs/serving.md lacks the settings {missing}"
