"""The bridge speaking the Open Inference Protocol (`--protocol v2`), scoring from SQL:

- through `mlbridge serve` (TLS and a bearer token on the way), with the same scores the
  session's TF Serving-protocol bridge gets;
- through MLServer 1.7 running in the v2 venv, serving a custom-runtime model written here in
  plain Python/numpy: the bridge lists it (RepositoryIndex), writes it into the catalog from its
  ModelMetadata, and its scores land in MySQL.

Both bridges watch a schema of their own (`mlbridge_v2`), so the session's bridge never takes
their rows and their catalog syncs never touch the session's catalog.
"""

from __future__ import annotations

import json
import math
import subprocess
import time

import pytest

from mlbridge.config import Dsn
from mlbridge.db import certs, connect, quote_ident
from mlbridge.db.install import install, scratch_schema
from mlbridge.serving_client import ClientSecurity, ServingError
from mlbridge.v2_client import InferenceClient

from ..procs import Process, free_port, parse_tsv, sql_cli, start_bridge, start_model_server
from ..v2_venv import v2_env, v2_python

TOKEN = "v2-token-8d1e0b"
QUERY = "SELECT * FROM demo.breast_cancer WHERE id <= 25"


@pytest.fixture(scope="module")
def v2_schema(dsn):
    target = Dsn(**{**dsn.__dict__, "database": "mlbridge_v2"})
    install(target)
    yield target
    conn = connect(target)
    cur = conn.cursor()
    for name in (target.database, scratch_schema(target.database)):
        cur.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)}")
    conn.close()


def scores(dsn: Dsn, schema: str, model: str, bridge) -> dict[str, float]:
    done = sql_cli(dsn, f"CALL {schema}.predict_scores('{model}', '{QUERY}', '{{\"timeout\": 90}}')")
    assert done.returncode == 0, done.stderr + bridge.output()[-3000:]
    rows = parse_tsv(done.stdout)
    assert len(rows) == 25, done.stdout[-2000:]
    assert all(r["error"] is None for r in rows), rows[:3]
    return {r["row_key"]: float(r["score"]) for r in rows}


def wait_catalog(dsn: Dsn, model: str, bridge, timeout: float = 60) -> list:
    """The catalog rows of ``model`` once the bridge has synced it as available."""
    deadline = time.monotonic() + timeout
    while True:
        conn = connect(dsn)
        cur = conn.cursor()
        cur.execute("SELECT version, state, inputs, outputs FROM models WHERE name = %s", (model,))
        rows = cur.fetchall()
        conn.close()
        if any(r[1] == "available" for r in rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"{model} not in the catalog: {rows}\n{bridge.output()[-3000:]}")
        time.sleep(0.3)


def test_bridge_v2_through_mlbridge_serve_with_tls_and_token(dsn, v2_schema, bc_model, model_base, bridge, tmp_path):
    ca = certs.ensure_authority(tmp_path / "tls")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    server_flags = ("--tls-cert", str(ca / certs.SERVER_CERT), "--tls-key", str(ca / certs.SERVER_KEY),
                    "--token-file", str(token_file))
    client_env = {"MLBRIDGE_SERVER_CA": str(ca / certs.CA), "MLBRIDGE_SERVER_TOKEN": TOKEN,
                  "MLBRIDGE_SERVER_PROTOCOL": "v2"}
    with start_model_server(model_base, tmp_path, extra=server_flags) as server, \
            start_bridge(v2_schema, server.target, tmp_path, env=client_env) as v2_bridge:
        wait_catalog(v2_schema, "bc", v2_bridge)
        got = scores(v2_schema, "mlbridge_v2", "bc", v2_bridge)
        output = v2_bridge.output()
        assert "(v2)" in output and "Traceback" not in output and TOKEN not in output
        # The v2 service is behind the same token as TF Serving's.
        with InferenceClient(server.target, timeout=10, security=ClientSecurity(ca_file=str(ca / certs.CA))) as anon, \
                pytest.raises(ServingError) as refused:
            anon.predict("bc", None, {})
        assert refused.value.code.name == "UNAUTHENTICATED"
    expected = scores(dsn, "mlbridge", "bc", bridge)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-6)


def test_a_bad_protocol_is_refused_by_name(v2_schema, tmp_path):
    with start_bridge(v2_schema, "127.0.0.1:1", tmp_path, env={"MLBRIDGE_SERVER_PROTOCOL": "grpc"}) as bad:
        assert bad.proc.wait(30) != 0
    assert "MLBRIDGE_SERVER_PROTOCOL='grpc' is not a protocol: use tfserving" in bad.output()


# The custom runtime MLServer loads from the model's folder: plain Python and numpy, no mlbridge.
RUNTIME = '''
import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class RadiusScore(MLModel):
    """score = sigmoid((mean_radius - 14) / 2 + (mean_texture - 19) / 10), a float32 per row."""

    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        columns = {item.name: NumpyCodec.decode_input(item).reshape(-1) for item in payload.inputs}
        z = (columns["mean_radius"] - 14.0) / 2.0 + (columns["mean_texture"] - 19.0) / 10.0
        score = (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
        return InferenceResponse(model_name=self.name, model_version=self.version,
                                 outputs=[NumpyCodec.encode_output("score", score)])
'''


def expected_radius_scores(dsn: Dsn) -> dict[str, float]:
    conn = connect(dsn)
    cur = conn.cursor()
    cur.execute("SELECT id, mean_radius, mean_texture FROM demo.breast_cancer WHERE id <= 25")
    out = {str(i): 1 / (1 + math.exp(-((r - 14.0) / 2.0 + (t - 19.0) / 10.0))) for i, r, t in cur.fetchall()}
    conn.close()
    return out


def start_mlserver(folder, grpc_port: int):
    model = folder / "radius"
    model.mkdir(parents=True)
    (model / "radius_runtime.py").write_text(RUNTIME)
    (model / "model-settings.json").write_text(json.dumps({
        "name": "radius",
        "implementation": "radius_runtime.RadiusScore",
        "parameters": {"version": "3"},
        "inputs": [{"name": "mean_radius", "datatype": "FP64", "shape": [-1]},
                   {"name": "mean_texture", "datatype": "FP64", "shape": [-1]}],
        "outputs": [{"name": "score", "datatype": "FP32", "shape": [-1]}],
    }))
    (folder / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "grpc_port": grpc_port, "http_port": free_port(),
        "metrics_port": free_port(), "parallel_workers": 0, "load_models_at_startup": True,
    }))
    mlserver = v2_python().parent / "mlserver"
    log = folder / "mlserver.log"
    with open(log, "ab") as handle:
        # Not procs.spawn: the v2 venv's processes get none of this process's Python paths.
        proc = subprocess.Popen([str(mlserver), "start", str(folder)], stdout=handle, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=v2_env(), cwd=folder)
    return Process(proc, log)


def wait_ready(target: str, process, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    with InferenceClient(target, timeout=5) as client:
        while True:
            try:
                if client.health() == "SERVING" and any(m.state == "AVAILABLE" for m in client.list_models("radius")):
                    return
            except ServingError:
                pass
            if process.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"MLServer not ready:\n{process.output()[-4000:]}")
            time.sleep(0.5)


def test_bridge_v2_through_mlserver(dsn, v2_schema, bc_table, tmp_path):
    grpc_port = free_port()
    server = start_mlserver(tmp_path / "mlserver", grpc_port)
    target = f"127.0.0.1:{grpc_port}"
    try:
        wait_ready(target, server)
        with InferenceClient(target) as client:
            listed = client.list_models("radius")
            assert [(m.name, m.version, m.state, m.latest) for m in listed] == [("radius", 3, "AVAILABLE", True)]
            assert [(s.name, s.dtype, s.shape) for s in listed[0].inputs] == [
                ("mean_radius", "float64", (None,)), ("mean_texture", "float64", (None,))]
        with start_bridge(v2_schema, target, tmp_path, "--protocol", "v2") as v2_bridge:
            rows = wait_catalog(v2_schema, "radius", v2_bridge)
            assert [r[0] for r in rows if r[1] == "available"] == [3]
            got = scores(v2_schema, "mlbridge_v2", "radius", v2_bridge)
            assert "Traceback" not in v2_bridge.output()
        expected = expected_radius_scores(dsn)
        assert got.keys() == expected.keys()
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, abs=1e-6)
    finally:
        server.stop()
