"""`mlbridge status`: the caller's requests, read through the same routines SQL users call."""

from __future__ import annotations

import sys
import time

from .config import Dsn
from .db import connect


def _call(conn, proc: str, args: tuple) -> tuple[list[str], list[tuple]]:
    cur = conn.cursor()
    try:
        cur.callproc(proc, args)
        for result in cur.stored_results():
            return [d[0] for d in result.description], result.fetchall()
        return [], []
    finally:
        cur.close()


def show_status(dsn: Dsn, limit: int = 20, request_id: int | None = None) -> int:
    conn = connect(dsn)
    try:
        if request_id is not None:
            return _follow(conn, request_id)
        names, rows = _call(conn, "request_list", (limit,))
        if not rows:
            print("no requests")
            return 0
        shown = ["request_id", "kind", "status", "model", "rows_total", "rows_done", "rows_failed", "percent", "created_at"]
        index = [names.index(n) for n in shown]
        table = [shown] + [[("" if r[i] is None else str(r[i])) for i in index] for r in rows]
        widths = [max(len(row[c]) for row in table) for c in range(len(shown))]
        for row in table:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        return 0
    finally:
        conn.close()


def _follow(conn, request_id: int) -> int:
    """A progress bar for one request until it finishes."""
    from tqdm import tqdm

    bar = None
    while True:
        names, rows = _call(conn, "request_status", (request_id,))
        status = dict(zip(names, rows[0]))
        if bar is None:
            bar = tqdm(total=int(status["rows_total"]), unit="row", desc=f"request {request_id}", file=sys.stderr)
        bar.n = int(status["rows_done"]) + int(status["rows_failed"])
        bar.set_postfix(status=status["status"], failed=status["rows_failed"])
        bar.refresh()
        if status["status"] in ("done", "failed", "cancelled"):
            bar.close()
            print(f"request {request_id}: {status['status']}, {status['rows_done']} scored, "
                  f"{status['rows_failed']} failed" + (f": {status['error']}" if status["error"] else ""))
            return 0 if status["status"] == "done" else 1
        time.sleep(0.5)
