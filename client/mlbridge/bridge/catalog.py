"""The model catalog as the bridge sees it: kept in step with what the model server hosts (a
SavedModel copied into the model base by hand can be called from SQL too, and one removed from
it is no longer offered), and looked up per request and per model version."""

from __future__ import annotations

import json
from dataclasses import dataclass

from .. import serving_client as sc
from ..db import fetch_one, query, retry_transaction
from .rows import Input, pick_score_output
from .source import RequestSpec

# Server states and what the catalog calls them. An UNLOADED version is on disk and loads when a
# request names it, so it is available to SQL callers. LOADING versions wait for the next sync.
STATES = {"AVAILABLE": "available", "UNLOADED": "available", "FAILED": "failed"}


def _specs(specs: list[sc.TensorSpec]) -> str:
    return json.dumps([
        {"name": s.name, "dtype": s.dtype, "shape": None if s.shape is None else [-1 if d is None else d for d in s.shape]}
        for s in specs
    ])


def sync_catalog(conn, client: sc.ModelServerClient) -> int:
    versions = client.list_models()
    rows = []
    for mv in versions:
        state = STATES.get(mv.state)
        if state is None:
            continue
        outputs = [o.name for o in mv.outputs]
        rows.append((mv.name, mv.version, state, _specs(mv.inputs), _specs(mv.outputs),
                     pick_score_output(outputs, None), mv.error or None))
    listed = [(mv.name, mv.version) for mv in versions]
    retire = query("retire_missing_versions").replace(
        "{listed}", ", ".join(["(%s, %s)"] * len(listed)) if listed else "SELECT NULL, NULL")

    def work(cur):
        if rows:
            cur.executemany(query("sync_model_version"), rows)
        cur.execute(retire, [value for pair in listed for value in pair])

    retry_transaction(conn, work)
    return len(rows)


@dataclass
class ModelSpec:
    """A model version as the bridge scores with it: its inputs in the order a request's rows
    carry them, and the output that is the score."""

    inputs: list[Input]
    score_output: str | None
    # False when the model's only output is its score and the catalog names it: the results then
    # store no output JSON, and the SQL routines make it from the score as they read it.
    keep_output: bool = True


class RequestMismatch(ValueError):
    """The request's inputs are not the model's (the catalog entry is out of date)."""


class Catalog:
    """The lookups a bridge makes per request and per model version, cached: a request's spec
    never changes once queued, nor does a model version's signature."""

    def __init__(self, client: sc.ModelServerClient):
        self.client = client
        self._requests: dict[int, RequestSpec] = {}
        self._models: dict[tuple[str, int], tuple[sc.Signature, str | None, set[str], bool]] = {}

    def request(self, conn, request_id: int) -> RequestSpec:
        spec = self._requests.get(request_id)
        if spec is None:
            found = fetch_one(conn, "request_spec", (request_id,))
            if found is None:
                raise LookupError(f"request {request_id} is gone")
            kind, inputs, rows_table = found
            spec = RequestSpec(kind, json.loads(inputs) if inputs else [], rows_table)
            if len(self._requests) > 10_000:
                self._requests.clear()
            self._requests[request_id] = spec
        return spec

    def forget(self, name: str, version: int) -> None:
        self._models.pop((name, version), None)

    def model(self, conn, name: str, version: int, request: RequestSpec) -> ModelSpec:
        """The model's inputs in the request's order; RequestMismatch when they differ."""
        key = (name, version)
        if key not in self._models:
            signature = self.client.metadata(name, version)
            found = fetch_one(conn, "model_outputs", key)
            configured, _outputs, inputs = found if found else (None, None, None)
            missing = {i.get("name") for i in json.loads(inputs or "[]") if isinstance(i, dict) and i.get("missing")}
            names = [o.name for o in signature.outputs]
            score = pick_score_output(names, configured)
            keep = not (len(names) == 1 and configured is not None and names[0] == configured)
            self._models[key] = (signature, score, missing, keep)
        signature, score, missing, keep = self._models[key]
        dtypes = {spec.name: spec.dtype for spec in signature.inputs}
        if set(dtypes) != set(request.inputs):
            raise RequestMismatch(f"mlbridge: model {name}:{version} takes inputs {sorted(dtypes)}, but the request "
                                  f"carries {sorted(request.inputs)}; the catalog entry is out of date")
        return ModelSpec([Input(n, dtypes[n], n in missing) for n in request.inputs], score, keep)
