"""The bridge scoring through a model server that requires TLS, a client certificate and a
bearer token, all given to the bridge in its environment (never in argv)."""

from __future__ import annotations

from mlbridge.db import certs

from ..procs import parse_tsv, sql_cli, start_bridge, start_model_server

TOKEN = "e2e-token-4f9c2a"


def test_bridge_scores_through_mtls_and_a_token(dsn, bc_model, model_base, bridge, tmp_path):
    ca = certs.ensure_authority(tmp_path / "tls")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    server_flags = ("--tls-cert", str(ca / certs.SERVER_CERT), "--tls-key", str(ca / certs.SERVER_KEY),
                    "--tls-client-ca", str(ca / certs.CA), "--token-file", str(token_file))
    client_env = {"MLBRIDGE_SERVER_CA": str(ca / certs.CA), "MLBRIDGE_SERVER_CERT": str(ca / certs.CLIENT_CERT),
                  "MLBRIDGE_SERVER_KEY": str(ca / certs.CLIENT_KEY), "MLBRIDGE_SERVER_TOKEN": TOKEN}
    # The session's bridge (plaintext, on the session's server) is paused: only this one scores.
    with start_model_server(model_base, tmp_path, extra=server_flags) as server, bridge.paused(), \
            start_bridge(dsn, server.target, tmp_path, env=client_env) as secure:
        with open(f"/proc/{secure.proc.pid}/cmdline", "rb") as f:
            assert TOKEN.encode() not in f.read()
        done = sql_cli(dsn, "CALL mlbridge.predict_scores('bc', 'SELECT * FROM demo.breast_cancer "
                            "WHERE id <= 20', '{\"timeout\": 60}')")
        assert done.returncode == 0, done.stderr + secure.output()[-3000:]
        rows = parse_tsv(done.stdout)
        assert len(rows) == 20 and all(r["error"] is None for r in rows), secure.output()[-3000:]
        output = secure.output()
        assert "Traceback" not in output and TOKEN not in output
        assert "(mTLS, bearer token)" in server.output()
        assert "refused" not in server.output()
