"""TLS and the bearer token between the bridge (or any ModelServerClient) and the model server.

Both sides are optional and independent:

* TLS: the server presents a certificate (``mlbridge serve --tls-cert --tls-key``); with
  ``--tls-client-ca`` it also requires a client certificate signed by that CA (mTLS). The client
  verifies the server with ``--server-ca`` ($MLBRIDGE_SERVER_CA) and presents
  ``--server-cert``/``--server-key`` ($MLBRIDGE_SERVER_CERT, $MLBRIDGE_SERVER_KEY) for mTLS;
  ``--server-tls-name`` ($MLBRIDGE_SERVER_TLS_NAME) checks the certificate against another name
  than the target's host.
* Token: the server with ``--token-file PATH`` (or $MLBRIDGE_SERVER_TOKEN, or
  $MLBRIDGE_SERVER_TOKEN_FILE; see serving_settings.py for the server's settings) refuses every RPC but the gRPC health checks without metadata
  ``authorization: Bearer <token>``; the client sends it from the same sources. The token is never
  taken from a bare command-line value: argv is readable by every user of the machine.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import MlbridgeError

log = logging.getLogger("mlbridge")

ENV_CA = "MLBRIDGE_SERVER_CA"
ENV_CERT = "MLBRIDGE_SERVER_CERT"
ENV_KEY = "MLBRIDGE_SERVER_KEY"
ENV_TLS_NAME = "MLBRIDGE_SERVER_TLS_NAME"
ENV_TOKEN = "MLBRIDGE_SERVER_TOKEN"
ENV_TOKEN_FILE = "MLBRIDGE_SERVER_TOKEN_FILE"


def read_file(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise MlbridgeError(f"mlbridge: cannot read the {what} {path}: {e.strerror}") from None


def read_token_file(path: str) -> str:
    """The token in ``path``: its content less surrounding white space (a final newline)."""
    token = read_file(path, "token file").decode("utf-8", "replace").strip()
    if not token:
        raise MlbridgeError(f"mlbridge: the token file {path} is empty")
    try:
        if os.stat(path).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("the token file %s is readable by other users: chmod 600 it", path)
    except OSError:
        pass
    return check_token(token)


def check_token(token: str) -> str:
    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise MlbridgeError("mlbridge: the model server token must be printable ASCII without spaces")
    return token


def resolve_token(token_file: str | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """The token from ``token_file``, else $MLBRIDGE_SERVER_TOKEN_FILE, else $MLBRIDGE_SERVER_TOKEN;
    None when none is set."""
    environ = os.environ if environ is None else environ
    path = token_file or environ.get(ENV_TOKEN_FILE)
    if path:
        return read_token_file(path)
    value = environ.get(ENV_TOKEN, "").strip()
    return check_token(value) if value else None


@dataclass(frozen=True)
class ClientSecurity:
    """How a client reaches the model server: TLS when ``ca_file`` or ``cert_file`` is set
    (without ``ca_file`` the system's roots verify the server), a client certificate for mTLS,
    and a bearer token sent with every call."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_name: str | None = None
    token: str | None = None

    def __post_init__(self) -> None:
        if bool(self.cert_file) != bool(self.key_file):
            raise MlbridgeError("mlbridge: a client certificate for the model server needs both "
                                "--server-cert and --server-key")
        if self.tls_name and not self.tls:
            raise MlbridgeError("mlbridge: --server-tls-name needs TLS (--server-ca)")

    def __repr__(self) -> str:  # never the token
        return (f"ClientSecurity(ca_file={self.ca_file!r}, cert_file={self.cert_file!r}, "
                f"key_file={self.key_file!r}, tls_name={self.tls_name!r}, token={'***' if self.token else None})")

    @property
    def tls(self) -> bool:
        return bool(self.ca_file or self.cert_file)

    @classmethod
    def resolve(cls, ca: str | None = None, cert: str | None = None, key: str | None = None,
                tls_name: str | None = None, token_file: str | None = None,
                environ: Mapping[str, str] | None = None) -> ClientSecurity:
        """Flags first, then the environment ($MLBRIDGE_SERVER_CA, _CERT, _KEY, _TLS_NAME,
        _TOKEN_FILE, _TOKEN)."""
        environ = os.environ if environ is None else environ
        return cls(ca_file=ca or environ.get(ENV_CA) or None, cert_file=cert or environ.get(ENV_CERT) or None,
                   key_file=key or environ.get(ENV_KEY) or None,
                   tls_name=tls_name or environ.get(ENV_TLS_NAME) or None,
                   token=resolve_token(token_file, environ))

    def channel_credentials(self):
        """grpc.ChannelCredentials for TLS, or None for a plaintext channel."""
        if not self.tls:
            return None
        import grpc

        return grpc.ssl_channel_credentials(
            root_certificates=read_file(self.ca_file, "model server CA") if self.ca_file else None,
            private_key=read_file(self.key_file, "client key") if self.key_file else None,
            certificate_chain=read_file(self.cert_file, "client certificate") if self.cert_file else None,
        )

    def channel_options(self) -> list[tuple[str, str]]:
        return [("grpc.ssl_target_name_override", self.tls_name)] if self.tls_name else []

    def metadata(self) -> tuple[tuple[str, str], ...] | None:
        return (("authorization", f"Bearer {self.token}"),) if self.token else None


# -- command lines ----------------------------------------------------------------------------


def add_client_arguments(parser) -> None:
    """The flags of a client of the model server (`mlbridge bridge`)."""
    parser.add_argument("--server-ca", metavar="PEM",
                        help=f"use TLS, verifying the model server with this CA (default: ${ENV_CA})")
    parser.add_argument("--server-cert", metavar="PEM",
                        help=f"client certificate for a server that requires one (mTLS; default: ${ENV_CERT})")
    parser.add_argument("--server-key", metavar="PEM", help=f"its private key (default: ${ENV_KEY})")
    parser.add_argument("--server-tls-name", metavar="NAME",
                        help="the name the server's certificate must carry when it is not the host of "
                             f"--server (default: ${ENV_TLS_NAME})")
    parser.add_argument("--server-token-file", metavar="PATH",
                        help=f"send the token in this file as a bearer token (default: ${ENV_TOKEN_FILE}, "
                             f"else ${ENV_TOKEN})")


def client_security(args) -> ClientSecurity:
    return ClientSecurity.resolve(ca=args.server_ca, cert=args.server_cert, key=args.server_key,
                                  tls_name=args.server_tls_name, token_file=args.server_token_file)
