"""A SavedModel's signatures, read from saved_model.pb without TensorFlow.

The model server's front process never imports TensorFlow (the models run in
model processes, see loader.py; unless model_isolation is "none"): it reads what it lists and checks requests
against from the file, with our wire-compatible mirror of TensorFlow's
SavedModel message (mlbridge.wire.saved_model_pb2). Every field but the tags
and the signatures is skipped as unknown.
"""

from __future__ import annotations

from google.protobuf import text_format

from mlbridge.wire import get_model_metadata_pb2, saved_model_pb2

from .modelbase import saved_model_file

SERVE_TAG = "serve"

SignatureDefMap = get_model_metadata_pb2.SignatureDefMap


def read_signature_defs(path: str) -> SignatureDefMap:
    """The signatures of the SavedModel in ``path`` (of its "serve"
    MetaGraphDef, else its first): the SignatureDefMap TF Serving returns,
    field for field. Raises FileNotFoundError or ValueError."""
    filename = saved_model_file(path)
    if filename is None:
        raise FileNotFoundError(f"no saved_model.pb in {path}")
    saved_model = saved_model_pb2.SavedModel()
    with open(filename, "rb") as f:
        data = f.read()
    try:
        if filename.endswith(".pbtxt"):
            text_format.Parse(data.decode("utf-8"), saved_model, allow_unknown_field=True)
        else:
            saved_model.ParseFromString(data)
    except Exception as e:  # DecodeError, ParseError, UnicodeDecodeError
        raise ValueError(f"{filename} is not a SavedModel: {e}") from None
    if not saved_model.meta_graphs:
        raise ValueError(f"{filename} holds no MetaGraphDef")
    meta_graph = next(
        (mg for mg in saved_model.meta_graphs if SERVE_TAG in mg.meta_info_def.tags),
        saved_model.meta_graphs[0],
    )
    out = SignatureDefMap()
    for key, signature in meta_graph.signature_def.items():
        out.signature_def[key].CopyFrom(signature)
    return out
