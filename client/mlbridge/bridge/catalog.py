"""Keep the SQL model catalog in step with what the model server hosts: a SavedModel copied into
the model base by hand can be called from SQL too, and one removed from it is no longer offered."""

from __future__ import annotations

import json

from .. import serving_client as sc
from ..db import query, retry_transaction
from .rows import pick_score_output

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
