"""The model server's network security: loopback by default, TLS, mTLS and the bearer token,
against the real server process, with a throwaway CA made for the run (mlbridge.db.certs)."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest

from mlbridge.db import certs
from mlbridge.errors import MlbridgeError
from mlbridge.serving_client import ClientSecurity, ModelServerClient, ServingError
from mlbridge.serving_security import resolve_token

from ..procs import Process, free_port, wait_for
from .conftest import REPO, install_version, run_server, server_env

X = np.array([0.0, 1.0, -2.5], dtype=np.float32)
Y = np.array([1.0, -1.0, 0.5], dtype=np.float32)
TOKEN = "s3cret-token_for.tests"


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> Path:
    return certs.ensure_authority(tmp_path_factory.mktemp("pki") / "tls")


@pytest.fixture(scope="module")
def base(saved_models, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("base")
    install_version(folder, "churn", 1, saved_models["churn_v1"])
    return folder


@pytest.fixture(scope="module")
def token_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("token") / "token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path


def _predicts(client: ModelServerClient) -> bool:
    out = client.predict("churn", None, {"x": X, "y": Y}, timeout=10)
    return len(out) > 0


def _listening(port: int) -> set[str]:
    """The local addresses listening on TCP ``port`` (from /proc/net/tcp and tcp6; an IPv4-mapped
    IPv6 address as its IPv4 address)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            hex_address, hex_port = fields[1].split(":")
            if fields[3] != "0A" or int(hex_port, 16) != port:
                continue
            # The kernel writes each 32-bit word in host (little-endian) order.
            raw = b"".join(bytes.fromhex(hex_address[i:i + 8])[::-1] for i in range(0, len(hex_address), 8))
            address = ipaddress.ip_address(raw)
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                address = address.ipv4_mapped
            found.add(str(address))
    return found


def _other_local_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
        address = s.getsockname()[0]
        if not address.startswith("127.") and address != "0.0.0.0":
            return address
    return None


# -- default bind -----------------------------------------------------------------------------


@contextlib.contextmanager
def _server_without_host(base: Path, workdir: Path, *extra: str):
    """The server process as a user starts it: no --host."""
    ready = workdir / "server.ready"
    log = workdir / "server.log"
    with open(log, "ab") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlbridge_server.serving", "--model-base", str(base), "--port", "0",
             "--ready-file", str(ready), *extra],
            stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=server_env(), cwd=REPO,
        )
    process = Process(proc, log)
    try:
        wait_for(ready, process, "model server", timeout=120)
        process.port = json.loads(ready.read_text())["port"]
        yield process
    finally:
        process.stop()


def test_default_bind_is_loopback_for_grpc_and_metrics(base, tmp_path):
    metrics_port = free_port()
    with _server_without_host(base, tmp_path, "--metrics-port", str(metrics_port)) as server:
        assert _listening(server.port) == {"127.0.0.1"}
        assert _listening(metrics_port) == {"127.0.0.1"}
        with ModelServerClient(f"127.0.0.1:{server.port}") as client:
            assert _predicts(client)
        other = _other_local_address()
        if other:
            with socket.socket() as s:
                s.settimeout(2)
                assert s.connect_ex((other, server.port)) != 0


def test_explicit_host_and_a_metrics_host_of_its_own(tmp_path):
    """Only where it listens: an empty model base, so no model (and no TensorFlow) is loaded."""
    (tmp_path / "empty").mkdir()
    metrics_port = free_port()
    with _server_without_host(tmp_path / "empty", tmp_path, "--host", "0.0.0.0", "--metrics-port", str(metrics_port),
                              "--metrics-host", "127.0.0.1") as server:
        assert _listening(server.port) <= {"0.0.0.0", "::"} and _listening(server.port)
        assert _listening(metrics_port) == {"127.0.0.1"}


def test_cli_defaults_are_loopback():
    from mlbridge.cli import build_parser
    from mlbridge.serving_settings import ServerSettings

    settings = ServerSettings.resolve(build_parser().parse_args(["serve"]), environ={})
    assert settings.host == "127.0.0.1" and settings.metrics_host is None
    settings = ServerSettings.resolve(build_parser().parse_args(["serve", "--host", "0.0.0.0"]), environ={})
    assert settings.host == "0.0.0.0"


# -- TLS --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(base, ca, tmp_path_factory):
    with run_server(base, tmp_path_factory.mktemp("tls"), 0.5,
                    "--tls-cert", str(ca / certs.SERVER_CERT), "--tls-key", str(ca / certs.SERVER_KEY)) as process:
        yield process


def test_tls_client_with_the_ca_predicts(tls_server, ca):
    with ModelServerClient(tls_server.target, security=ClientSecurity(ca_file=str(ca / certs.CA))) as client:
        assert _predicts(client)
        assert client.health() == "SERVING"


def test_tls_name_override(tls_server, ca):
    port = tls_server.target.rsplit(":", 1)[1]
    security = ClientSecurity(ca_file=str(ca / certs.CA), tls_name="localhost")
    with ModelServerClient(f"127.0.0.1:{port}", security=security) as client:
        assert _predicts(client)
    wrong = ClientSecurity(ca_file=str(ca / certs.CA), tls_name="elsewhere.example")
    with ModelServerClient(f"127.0.0.1:{port}", timeout=5, security=wrong) as client, \
            pytest.raises(ServingError) as caught:
        client.predict("churn", None, {"x": X, "y": Y})
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE


def test_plaintext_client_fails_on_a_tls_server(tls_server):
    with ModelServerClient(tls_server.target, timeout=5) as client, pytest.raises(ServingError) as caught:
        client.predict("churn", None, {"x": X, "y": Y})
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE


def test_tls_client_with_another_ca_fails(tls_server, tmp_path):
    other = certs.ensure_authority(tmp_path / "other")
    with ModelServerClient(tls_server.target, timeout=5,
                           security=ClientSecurity(ca_file=str(other / certs.CA))) as client, \
            pytest.raises(ServingError) as caught:
        client.predict("churn", None, {"x": X, "y": Y})
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE


# -- mTLS and the token -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def mtls_server(base, ca, token_file, tmp_path_factory):
    with run_server(base, tmp_path_factory.mktemp("mtls"), 0.5,
                    "--tls-cert", str(ca / certs.SERVER_CERT), "--tls-key", str(ca / certs.SERVER_KEY),
                    "--tls-client-ca", str(ca / certs.CA), "--token-file", str(token_file)) as process:
        yield process


def _mtls(ca: Path, token: str | None = TOKEN, cert: bool = True) -> ClientSecurity:
    return ClientSecurity(ca_file=str(ca / certs.CA), token=token,
                          cert_file=str(ca / certs.CLIENT_CERT) if cert else None,
                          key_file=str(ca / certs.CLIENT_KEY) if cert else None)


def test_mtls_client_with_a_certificate_and_the_token_predicts(mtls_server, ca):
    with ModelServerClient(mtls_server.target, security=_mtls(ca)) as client:
        assert _predicts(client)
        assert [m.name for m in client.list_models()] == ["churn"]


def test_mtls_client_without_a_certificate_is_refused(mtls_server, ca):
    with ModelServerClient(mtls_server.target, timeout=5, security=_mtls(ca, cert=False)) as client, \
            pytest.raises(ServingError) as caught:
        client.predict("churn", None, {"x": X, "y": Y})
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE


def test_mtls_client_with_a_certificate_of_another_ca_is_refused(mtls_server, ca, tmp_path):
    other = certs.ensure_authority(tmp_path / "other")
    security = ClientSecurity(ca_file=str(ca / certs.CA), cert_file=str(other / certs.CLIENT_CERT),
                              key_file=str(other / certs.CLIENT_KEY), token=TOKEN)
    with ModelServerClient(mtls_server.target, timeout=5, security=security) as client, \
            pytest.raises(ServingError) as caught:
        client.predict("churn", None, {"x": X, "y": Y})
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("token", [None, "wrong", TOKEN + "x", TOKEN[:-1]])
def test_without_the_right_token_every_method_is_unauthenticated(mtls_server, ca, token):
    with ModelServerClient(mtls_server.target, timeout=5, security=_mtls(ca, token=token)) as client:
        for call in (lambda: client.predict("churn", None, {"x": X, "y": Y}),
                     lambda: client.metadata("churn"), client.list_models):
            with pytest.raises(ServingError) as caught:
                call()
            assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_health_needs_no_token(mtls_server, ca):
    with ModelServerClient(mtls_server.target, timeout=5, security=_mtls(ca, token=None)) as client:
        assert client.health() == "SERVING"


def test_the_token_scheme_and_header_are_checked(mtls_server, ca):
    from mlbridge.wire import model_catalog_pb2, model_catalog_pb2_grpc

    security = _mtls(ca, token=None)
    channel = grpc.secure_channel(mtls_server.target, security.channel_credentials())
    try:
        stub = model_catalog_pb2_grpc.ModelCatalogStub(channel)
        request = model_catalog_pb2.ListModelsRequest()
        for metadata in ((("authorization", TOKEN),), (("authorization", f"Basic {TOKEN}"),),
                         (("x-token", f"Bearer {TOKEN}"),)):
            with pytest.raises(grpc.RpcError) as caught:
                stub.ListModels(request, timeout=5, metadata=metadata)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert stub.ListModels(request, timeout=5, metadata=(("authorization", f"bearer {TOKEN}"),)).models
    finally:
        channel.close()


def test_token_over_plaintext_and_from_the_environment(base, tmp_path, monkeypatch):
    """The token works without TLS too (behind a TLS-terminating proxy, or on loopback), and both
    sides take it from $MLBRIDGE_SERVER_TOKEN."""
    env_server = server_env()
    env_server["MLBRIDGE_SERVER_TOKEN"] = TOKEN
    ready = tmp_path / "server.ready"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlbridge_server.serving", "--model-base", str(base), "--port", "0",
         "--ready-file", str(ready)],
        stdout=open(tmp_path / "server.log", "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env=env_server, cwd=REPO,
    )
    process = Process(proc, tmp_path / "server.log")
    try:
        wait_for(ready, process, "model server", timeout=120)
        target = f"127.0.0.1:{json.loads(ready.read_text())['port']}"
        with ModelServerClient(target, timeout=5) as client, pytest.raises(ServingError) as caught:
            client.list_models()
        assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED
        monkeypatch.setenv("MLBRIDGE_SERVER_TOKEN", TOKEN)
        with ModelServerClient(target, timeout=5, security=ClientSecurity.resolve()) as client:
            assert _predicts(client)
    finally:
        process.stop()


# -- configuration errors ---------------------------------------------------------------------


def test_client_security_resolution(tmp_path, ca):
    token_file = tmp_path / "t"
    token_file.write_text(f"  {TOKEN}\n")
    env = {"MLBRIDGE_SERVER_CA": "/env/ca.pem", "MLBRIDGE_SERVER_TOKEN": "from-env"}
    found = ClientSecurity.resolve(environ=env)
    assert found.tls and found.ca_file == "/env/ca.pem" and found.token == "from-env"
    found = ClientSecurity.resolve(ca="/flag/ca.pem", token_file=str(token_file), environ=env)
    assert found.ca_file == "/flag/ca.pem" and found.token == TOKEN
    assert TOKEN not in repr(found)
    assert ClientSecurity.resolve(environ={}) == ClientSecurity()
    assert not ClientSecurity().tls and ClientSecurity().metadata() is None
    assert resolve_token(environ={"MLBRIDGE_SERVER_TOKEN_FILE": str(token_file),
                                  "MLBRIDGE_SERVER_TOKEN": "ignored"}) == TOKEN
    with pytest.raises(MlbridgeError, match="both"):
        ClientSecurity(ca_file="ca", cert_file="cert")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(MlbridgeError, match="empty"):
        resolve_token(str(empty), environ={})
    with pytest.raises(MlbridgeError, match="cannot read"):
        ClientSecurity(ca_file=str(tmp_path / "missing.pem")).channel_credentials()


@pytest.mark.parametrize("flags, message", [
    (["--tls-cert", "server-cert.pem"], "both --tls-cert and --tls-key"),
    (["--tls-client-ca", "ca.pem"], "needs --tls-cert"),
    (["--tls-cert", "nope.pem", "--tls-key", "server-key.pem"], "cannot read the TLS certificate"),
])
def test_server_refuses_incomplete_tls_flags(base, ca, tmp_path, flags, message):
    flags = [f if not f.endswith(".pem") else str(ca / f) for f in flags]
    done = subprocess.run(
        [sys.executable, "-m", "mlbridge_server.serving", "--model-base", str(base), "--port", "0", *flags],
        capture_output=True, text=True, env=server_env(), cwd=REPO, timeout=120,
    )
    assert done.returncode == 1
    assert message in done.stderr
