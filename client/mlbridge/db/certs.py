"""A throwaway certificate authority for the private database's TLS (`mlbridge db local start
--tls`), made with the `openssl` command line, so that no Python package is needed for it.

The CA signs a server certificate for 127.0.0.1, ::1 and localhost (so ssl_verify_identity holds
too) and one client certificate (for accounts created REQUIRE X509); its key is then deleted, so
nothing else can ever be signed by it. Keys are P-256: quick to make, and every MySQL and
MariaDB TLS library takes them.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path

from ..errors import MlbridgeError

CA, SERVER_CERT, SERVER_KEY, CLIENT_CERT, CLIENT_KEY = (
    "ca.pem", "server-cert.pem", "server-key.pem", "client-cert.pem", "client-key.pem")
FILES = (CA, SERVER_CERT, SERVER_KEY, CLIENT_CERT, CLIENT_KEY)
DAYS = "3650"

# Our own configuration, not the system's openssl.cnf, whose defaults differ between versions.
_CONFIG = """\
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,IP:::1,DNS:localhost
[client]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
"""


def ensure_authority(folder: Path) -> Path:
    """The CA and the certificates in `folder`, made when any file is missing; returns `folder`."""
    if all((folder / name).is_file() for name in FILES):
        return folder
    openssl = shutil.which("openssl")
    if not openssl:
        raise MlbridgeError("mlbridge: the private database's TLS needs the openssl command: "
                            "install it (apt-get install openssl), or start without --tls")
    shutil.rmtree(folder, ignore_errors=True)
    work = folder.with_name(folder.name + ".new")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(mode=0o700, parents=True)
    (work / "openssl.cnf").write_text(_CONFIG)

    def run(*args: str) -> None:
        done = subprocess.run([openssl, *args], cwd=work, capture_output=True, text=True)
        if done.returncode != 0:
            raise MlbridgeError(f"mlbridge: making the private database's certificates failed: openssl {args[0]}: "
                                + (done.stderr.strip().splitlines() or ["exit code " + str(done.returncode)])[-1])

    key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    run("req", "-x509", *key, "-keyout", "ca-key.pem", "-out", CA, "-days", DAYS,
        "-subj", "/CN=mlbridge private database CA", "-config", "openssl.cnf", "-extensions", "ca")
    for kind, cert, cert_key, name in (("server", SERVER_CERT, SERVER_KEY, "localhost"),
                                       ("client", CLIENT_CERT, CLIENT_KEY, "mlbridge client")):
        run("req", "-new", *key, "-keyout", cert_key, "-out", f"{kind}.csr", "-subj", f"/CN={name}",
            "-config", "openssl.cnf")
        run("x509", "-req", "-in", f"{kind}.csr", "-CA", CA, "-CAkey", "ca-key.pem", "-out", cert,
            "-set_serial", str(secrets.randbits(63)), "-days", DAYS, "-extfile", "openssl.cnf", "-extensions", kind)
    for name in ("ca-key.pem", "server.csr", "client.csr", "openssl.cnf"):
        (work / name).unlink()
    for name in (SERVER_KEY, CLIENT_KEY):
        (work / name).chmod(0o600)
    work.rename(folder)
    return folder
