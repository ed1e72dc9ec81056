"""The official Open Inference Protocol client (tritonclient[grpc]) against a server; prints JSON.

Runs in the v2 venv (.venv-v2, `make v2-venv`), never in the project's: tritonclient needs
protobuf < 7. It imports nothing of mlbridge.

    python triton_client.py HOST:PORT < ops.json

reads a JSON list of operations and prints a JSON list of answers, one per operation, each
either the call's result or {"error": {"code": "INVALID_ARGUMENT", "message": ...}}:

    {"op": "live"} / {"op": "ready"} / {"op": "server_metadata"} / {"op": "index"}
    {"op": "model_ready", "model": M, "version": V}
    {"op": "model_metadata", "model": M, "version": V}
    {"op": "infer", "model": M, "version": V, "inputs": [INPUT...], "outputs": [NAME...],
     "parameters": {...}}
        INPUT: {"name", "datatype", "shape", "values"} sent as tritonclient sends it (raw
        contents); "declare": a shape to declare after setting the data (a shape that
        disagrees with the contents).
    {"op": "infer_typed", ...}: the same request built from tritonclient's own messages with
        typed contents (InferTensorContents), or "raw": [base64...] raw contents as given.
    {"op": "describe"}: tritonclient's v2 messages by field number, for the wire comparison.

Every op takes "headers" (a dict, e.g. a bearer token).
"""

import base64
import json
import sys

import grpc
import numpy as np
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException, triton_to_np_dtype

MESSAGES = [
    "ServerLiveRequest", "ServerLiveResponse", "ServerReadyRequest", "ServerReadyResponse",
    "ModelReadyRequest", "ModelReadyResponse", "ServerMetadataRequest", "ServerMetadataResponse",
    "ModelMetadataRequest", "ModelMetadataResponse", "InferParameter", "InferTensorContents",
    "ModelInferRequest", "ModelInferResponse", "RepositoryIndexRequest", "RepositoryIndexResponse",
]

CONTENT_FIELD = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
    "UINT32": "uint_contents", "UINT64": "uint64_contents", "FP32": "fp32_contents",
    "FP64": "fp64_contents", "BYTES": "bytes_contents",
}


def _array(spec):
    if spec["datatype"] == "BYTES":
        values = [v.encode() if isinstance(v, str) else v for v in np.ravel(spec["values"]).tolist()]
        return np.array(values, dtype=np.object_).reshape(spec["shape"])
    return np.array(spec["values"], dtype=triton_to_np_dtype(spec["datatype"])).reshape(spec["shape"])


def _plain(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _outputs(result, response):
    out = {}
    for output in response.outputs:
        array = result.as_numpy(output.name)
        out[output.name] = {
            "datatype": output.datatype,
            "shape": list(output.shape),
            "values": _plain(array.tolist()),
            "numpy_dtype": str(array.dtype),
        }
    return out


def infer(client, op, headers):
    inputs = []
    for spec in op["inputs"]:
        array = _array(spec)
        item = triton.InferInput(spec["name"], list(array.shape), spec["datatype"])
        item.set_data_from_numpy(array)
        if "declare" in spec:
            item.set_shape(spec["declare"])
        inputs.append(item)
    outputs = [triton.InferRequestedOutput(name) for name in op.get("outputs", [])] or None
    result = client.infer(op["model"], inputs, model_version=op.get("version", ""), outputs=outputs,
                          request_id=op.get("id", ""), headers=headers,
                          parameters=op.get("parameters") or None)
    response = result.get_response()
    return {"model_name": response.model_name, "model_version": response.model_version,
            "id": response.id, "raw_outputs": len(response.raw_output_contents),
            "outputs": _outputs(result, response)}


def infer_typed(target, op, headers):
    request = service_pb2.ModelInferRequest(model_name=op["model"], model_version=op.get("version", ""))
    for key, value in (op.get("parameters") or {}).items():
        request.parameters[key].string_param = value
    for spec in op["inputs"]:
        tensor = request.inputs.add(name=spec["name"], datatype=spec["datatype"], shape=spec["shape"])
        if "raw" not in op:
            values = np.ravel(spec["values"]).tolist()
            if spec["datatype"] == "BYTES":
                values = [v.encode() for v in values]
            getattr(tensor.contents, CONTENT_FIELD[spec.get("field_of", spec["datatype"])]).extend(values)
    for raw in op.get("raw", []):
        request.raw_input_contents.append(base64.b64decode(raw))
    with grpc.insecure_channel(target) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        response = stub.ModelInfer(request, timeout=30, metadata=tuple(headers.items()) or None)
    result = triton.InferResult(response)
    return {"model_name": response.model_name, "model_version": response.model_version,
            "outputs": _outputs(result, response)}


def describe():
    """Each message as {number: [name, type, repeated, message type]}, nested ones under "Outer.Inner"."""
    out = {}

    def add(prefix, message):
        out[prefix] = {
            str(f.number): [f.name, f.type, f.is_repeated, f.message_type.name if f.message_type else ""]
            for f in message.fields
        }
        for nested in message.nested_types:
            if not nested.GetOptions().map_entry:
                add(f"{prefix}.{nested.name}", nested)

    for name in MESSAGES:
        add(name, service_pb2.DESCRIPTOR.message_types_by_name[name])
    service = service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    out["service"] = {m.name: [m.input_type.name, m.output_type.name] for m in service.methods}
    out["service_full_name"] = service.full_name
    return out


def run(client, target, op):
    headers = op.get("headers") or {}
    kind = op["op"]
    if kind == "live":
        return client.is_server_live(headers=headers)
    if kind == "ready":
        return client.is_server_ready(headers=headers)
    if kind == "server_metadata":
        return client.get_server_metadata(headers=headers, as_json=True)
    if kind == "model_ready":
        return client.is_model_ready(op["model"], op.get("version", ""), headers=headers)
    if kind == "model_metadata":
        return client.get_model_metadata(op["model"], op.get("version", ""), headers=headers, as_json=True)
    if kind == "index":
        return client.get_model_repository_index(headers=headers, as_json=True)
    if kind == "infer":
        return infer(client, op, headers)
    if kind == "infer_typed":
        return infer_typed(target, op, headers)
    if kind == "describe":
        return describe()
    raise ValueError(f"unknown op {kind}")


def main():
    target = sys.argv[1]
    ops = json.load(sys.stdin)
    answers = []
    with triton.InferenceServerClient(target) as client:
        for op in ops:
            try:
                answers.append(run(client, target, op))
            except InferenceServerException as e:
                answers.append({"error": {"code": str(e.status()).replace("StatusCode.", ""),
                                          "message": e.message()}})
            except grpc.RpcError as e:
                answers.append({"error": {"code": e.code().name, "message": e.details()}})
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main()
