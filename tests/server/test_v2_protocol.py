"""The Open Inference Protocol (KServe v2 gRPC) on `mlbridge serve`, through the official client.

tritonclient[grpc] runs in the v2 venv as a subprocess (tests/server/triton_client.py) against the
real server process, on the same port as TF Serving's API. Every operation is sent in one run of
the client (module fixture ``answers``); each test checks its answers. The server runs with a cap
of 5,000 elements per request so that an oversized request is cheap to send.
"""

from __future__ import annotations

import base64
import struct

import numpy as np
import pytest

from mlbridge.serving_client import ModelServerClient, ServingError
from mlbridge.wire import open_inference_pb2, open_inference_service_pb2

from ..v2_venv import run_triton_client
from .conftest import install_version, run_server
from .models import CHURN_V1, CHURN_V2

X = [0.5, -1.0, 2.0]
Y = [1.0, 0.25, -3.0]
CAP = 5000


def churn(weights, x=X, y=Y):
    a, b, c = weights
    score = 1 / (1 + np.exp(-(a * np.array(x) + b * np.array(y) + c)))
    return score, (score > 0.5).astype(int)


def fp32(name, values, **extra):
    return {"name": name, "datatype": "FP32", "shape": [len(values)], "values": values, **extra}


CHURN_INPUTS = [fp32("x", X), fp32("y", Y)]
TEXT_INPUTS = [
    {"name": "text", "datatype": "BYTES", "shape": [3], "values": ["abc", "héllo", ""]},
    {"name": "n", "datatype": "INT32", "shape": [3], "values": [1, -2, 3]},
]

OPS = {
    "live": {"op": "live"},
    "ready": {"op": "ready"},
    "server_metadata": {"op": "server_metadata"},
    "ready_latest": {"op": "model_ready", "model": "churn"},
    "ready_v1": {"op": "model_ready", "model": "churn", "version": "1"},
    "ready_v9": {"op": "model_ready", "model": "churn", "version": "9"},
    "ready_unknown": {"op": "model_ready", "model": "nope"},
    "metadata": {"op": "model_metadata", "model": "churn"},
    "metadata_text": {"op": "model_metadata", "model": "text", "version": "1"},
    "metadata_unknown": {"op": "model_metadata", "model": "nope"},
    "metadata_v9": {"op": "model_metadata", "model": "churn", "version": "9"},
    "index": {"op": "index"},
    "infer_latest": {"op": "infer", "model": "churn", "inputs": CHURN_INPUTS, "id": "req-7"},
    "infer_v1": {"op": "infer", "model": "churn", "version": "1", "inputs": CHURN_INPUTS},
    "infer_filtered": {"op": "infer", "model": "churn", "inputs": CHURN_INPUTS, "outputs": ["score"]},
    "infer_text": {"op": "infer", "model": "text", "inputs": TEXT_INPUTS},
    "infer_signature": {
        "op": "infer", "model": "text", "parameters": {"signature_name": "parse"},
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "values": ["1.5", "-2"]}],
    },
    "typed_churn": {"op": "infer_typed", "model": "churn", "inputs": CHURN_INPUTS},
    "typed_text": {"op": "infer_typed", "model": "text", "inputs": TEXT_INPUTS},
    # bad input
    "wrong_datatype": {"op": "infer", "model": "churn", "inputs": [
        {"name": "x", "datatype": "FP64", "shape": [3], "values": X}, fp32("y", Y)]},
    "shape_vs_raw": {"op": "infer", "model": "churn", "inputs": [fp32("x", X, declare=[4]), fp32("y", Y)]},
    "shape_vs_typed": {"op": "infer_typed", "model": "churn", "inputs": [
        {"name": "x", "datatype": "FP32", "shape": [4], "values": X}, fp32("y", Y)]},
    "huge_shape_no_values": {"op": "infer_typed", "model": "churn", "inputs": [
        {"name": "x", "datatype": "FP32", "shape": [12_000_000], "values": []}, fp32("y", Y)]},
    "typed_wrong_field": {"op": "infer_typed", "model": "churn", "inputs": [
        {"name": "x", "datatype": "FP32", "shape": [3], "values": [1, 2, 3], "field_of": "INT64"}, fp32("y", Y)]},
    "bad_raw_bytes": {"op": "infer_typed", "model": "text", "inputs": [
        {"name": "text", "datatype": "BYTES", "shape": [1]}, {"name": "n", "datatype": "INT32", "shape": [1]}],
        "raw": [base64.b64encode(struct.pack("<I", 50) + b"short").decode(),
                base64.b64encode(struct.pack("<i", 1)).decode()]},
    "raw_count_mismatch": {"op": "infer_typed", "model": "churn", "inputs": CHURN_INPUTS,
                           "raw": [base64.b64encode(np.array(X, "<f4").tobytes()).decode()]},
    "unknown_model": {"op": "infer", "model": "nope", "inputs": CHURN_INPUTS},
    "unknown_version": {"op": "infer", "model": "churn", "version": "9", "inputs": CHURN_INPUTS},
    "bad_version": {"op": "infer", "model": "churn", "version": "latest", "inputs": CHURN_INPUTS},
    "unknown_input": {"op": "infer", "model": "churn", "inputs": [fp32("x", X), fp32("z", Y)]},
    "unknown_output": {"op": "infer", "model": "churn", "inputs": CHURN_INPUTS, "outputs": ["proba"]},
    "unknown_signature": {"op": "infer", "model": "churn", "inputs": CHURN_INPUTS,
                          "parameters": {"signature_name": "classify"}},
    "oversized": {"op": "infer", "model": "churn", "inputs": [
        fp32("x", [0.0] * (CAP // 2 + 1)), fp32("y", [0.0] * (CAP // 2 + 1))]},
    "batch_mismatch": {"op": "infer", "model": "churn", "inputs": [fp32("x", X), fp32("y", Y[:2])]},
    "live_after": {"op": "live"},
    "infer_after": {"op": "infer", "model": "churn", "inputs": CHURN_INPUTS},
    "describe": {"op": "describe"},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory, saved_models):
    base = tmp_path_factory.mktemp("v2_base")
    install_version(base, "churn", 1, saved_models["churn_v1"])
    install_version(base, "churn", 2, saved_models["churn_v2"])
    install_version(base, "text", 1, saved_models["text"])
    with run_server(base, base, 0.2, env={"MLBRIDGE_SERVING_MAX_REQUEST_ELEMENTS": str(CAP)}) as process:
        yield process


@pytest.fixture(scope="module")
def answers(server):
    names = list(OPS)
    got = run_triton_client(server.target, [OPS[n] for n in names])
    return dict(zip(names, got))


def error(answer, code):
    assert isinstance(answer, dict) and "error" in answer, f"expected {code}, got {answer!r}"
    assert answer["error"]["code"] == code, answer
    return answer["error"]["message"]


def test_server_live_ready_and_metadata(answers):
    assert answers["live"] is True
    assert answers["ready"] is True
    meta = answers["server_metadata"]
    assert meta["name"] == "mlbridge"
    assert meta["version"]


def test_model_ready(answers):
    assert answers["ready_latest"] is True
    assert answers["ready_v1"] is False  # on disk, not loaded: it loads when a request names it
    assert answers["ready_v9"] is False
    assert answers["ready_unknown"] is False


def test_model_metadata(answers):
    meta = answers["metadata"]
    assert meta["name"] == "churn"
    assert meta["versions"] == ["1", "2"]
    assert meta["platform"] == "tensorflow_savedmodel"
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": ["-1"]},
                              {"name": "y", "datatype": "FP32", "shape": ["-1"]}]
    assert meta["outputs"] == [{"name": "label", "datatype": "INT64", "shape": ["-1"]},
                               {"name": "score", "datatype": "FP32", "shape": ["-1"]}]
    text = answers["metadata_text"]
    assert {i["name"]: i["datatype"] for i in text["inputs"]} == {"n": "INT32", "text": "BYTES"}
    assert {o["name"]: o["datatype"] for o in text["outputs"]} == {"length": "INT64", "twice": "INT32", "upper": "BYTES"}


def test_model_metadata_of_unknown_model_or_version_is_not_found(answers):
    assert 'model "nope" not found' in error(answers["metadata_unknown"], "NOT_FOUND")
    assert "no version 9" in error(answers["metadata_v9"], "NOT_FOUND")


def test_repository_index(answers):
    models = {(m["name"], m.get("version")): m.get("state") for m in answers["index"]["models"]}
    assert models[("churn", "2")] == "READY"
    assert models[("text", "1")] == "READY"
    assert ("churn", "1") in models


def test_infer_raw_fp32_and_int64_outputs(answers):
    got = answers["infer_latest"]
    assert (got["model_name"], got["model_version"], got["id"]) == ("churn", "2", "req-7")
    # answered the way Triton answers: raw_output_contents, one per output
    assert got["raw_outputs"] == 2
    score, label = churn(CHURN_V2)
    out = got["outputs"]
    assert out["score"]["datatype"] == "FP32" and out["score"]["numpy_dtype"] == "float32"
    assert out["score"]["shape"] == [3]
    np.testing.assert_allclose(out["score"]["values"], score, atol=1e-5)
    assert out["label"]["datatype"] == "INT64" and out["label"]["numpy_dtype"] == "int64"
    assert out["label"]["values"] == label.tolist()


def test_infer_a_version(answers):
    got = answers["infer_v1"]
    assert got["model_version"] == "1"
    np.testing.assert_allclose(got["outputs"]["score"]["values"], churn(CHURN_V1)[0], atol=1e-5)


def test_requested_outputs_only(answers):
    assert list(answers["infer_filtered"]["outputs"]) == ["score"]


def test_infer_bytes_and_int32(answers):
    out = answers["infer_text"]["outputs"]
    assert out["upper"]["datatype"] == "BYTES"
    assert out["upper"]["values"] == ["ABC", "HéLLO", ""]  # tf.strings.upper is ASCII-only
    assert out["length"]["values"] == [3, 6, 0]  # bytes, as TensorFlow counts
    assert out["twice"]["datatype"] == "INT32"
    assert out["twice"]["values"] == [2, -4, 6]


def test_a_parameter_chooses_the_signature(answers):
    out = answers["infer_signature"]["outputs"]
    assert out["number"]["datatype"] == "FP64"
    assert out["number"]["values"] == [1.5, -2.0]


def test_typed_contents(answers):
    np.testing.assert_allclose(answers["typed_churn"]["outputs"]["score"]["values"], churn(CHURN_V2)[0], atol=1e-5)
    assert answers["typed_text"]["outputs"]["upper"]["values"] == ["ABC", "HéLLO", ""]


def test_wrong_datatype_names_the_input(answers):
    message = error(answers["wrong_datatype"], "INVALID_ARGUMENT")
    assert 'input "x" must be FP32, got FP64' in message


def test_shape_that_disagrees_with_raw_contents(answers):
    message = error(answers["shape_vs_raw"], "INVALID_ARGUMENT")
    assert 'input "x"' in message and "shape [4] of FP32 takes 16" in message


def test_shape_that_disagrees_with_typed_contents(answers):
    message = error(answers["shape_vs_typed"], "INVALID_ARGUMENT")
    assert 'input "x"' in message and "holds 3 values, but shape [4] takes 4" in message


def test_a_huge_declared_shape_is_refused_by_the_cap(answers):
    message = error(answers["huge_shape_no_values"], "INVALID_ARGUMENT")
    assert 'input "x"' in message and "MLBRIDGE_SERVING_MAX_REQUEST_ELEMENTS" in message


def test_values_in_another_datatypes_field(answers):
    message = error(answers["typed_wrong_field"], "INVALID_ARGUMENT")
    assert 'input "x": FP32 values go in contents.fp32_contents, got int64_contents' in message


def test_malformed_raw_bytes(answers):
    message = error(answers["bad_raw_bytes"], "INVALID_ARGUMENT")
    assert 'input "text"' in message and "declares 50 bytes" in message


def test_raw_contents_must_be_one_per_input(answers):
    assert "raw_input_contents has 1 entries for 2 inputs" in error(answers["raw_count_mismatch"], "INVALID_ARGUMENT")


def test_unknown_model_version_and_bad_version(answers):
    assert 'model "nope" not found' in error(answers["unknown_model"], "NOT_FOUND")
    assert 'model "churn" has no version 9' in error(answers["unknown_version"], "NOT_FOUND")
    assert 'model_version "latest" must be a whole number' in error(answers["bad_version"], "INVALID_ARGUMENT")


def test_unknown_input_output_and_signature(answers):
    message = error(answers["unknown_input"], "INVALID_ARGUMENT")
    assert 'missing input "y"' in message and 'unknown input "z"' in message
    assert "'proba'" in error(answers["unknown_output"], "INVALID_ARGUMENT")
    assert 'no signature "classify"' in error(answers["unknown_signature"], "FAILED_PRECONDITION")


def test_oversized_request(answers):
    message = error(answers["oversized"], "INVALID_ARGUMENT")
    assert f"over the cap of {CAP} elements" in message


def test_inputs_that_disagree_on_the_batch(answers):
    assert "disagree on the batch size" in error(answers["batch_mismatch"], "INVALID_ARGUMENT")


def test_the_server_still_answers_after_bad_input(answers, server):
    assert answers["live_after"] is True
    assert answers["infer_after"]["outputs"]["score"]["shape"] == [3]
    assert server.proc.poll() is None


def _ours(message) -> dict:
    out = {}

    def add(prefix, descriptor):
        out[prefix] = {
            str(f.number): [f.name, f.type, f.is_repeated, f.message_type.name if f.message_type else ""]
            for f in descriptor.fields
        }
        for nested in descriptor.nested_types:
            if not nested.GetOptions().map_entry:
                add(f"{prefix}.{nested.name}", nested)

    add(message.DESCRIPTOR.name, message.DESCRIPTOR)
    return out


def test_our_messages_match_tritonclients(answers):
    theirs = answers["describe"]
    ours = {}
    for name in open_inference_pb2.DESCRIPTOR.message_types_by_name:
        ours.update(_ours(getattr(open_inference_pb2, name)))
    compared = [k for k in theirs if k not in ("service", "service_full_name")]
    assert sorted(compared) == sorted(ours)
    for name in compared:
        assert ours[name] == theirs[name], name
    service = open_inference_service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert service.full_name == theirs["service_full_name"] == "inference.GRPCInferenceService"
    for method in service.methods:
        assert [method.input_type.name, method.output_type.name] == theirs["service"][method.name]


def test_grpc_health_knows_the_v2_service(server):
    with ModelServerClient(server.target, timeout=10) as client:
        assert client.health("inference.GRPCInferenceService") == "SERVING"
        with pytest.raises(ServingError) as unknown:
            client.health("inference.NoSuchService")
        assert unknown.value.code.name == "NOT_FOUND"
