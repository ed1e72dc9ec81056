"""Writing results in bulk: `LOAD DATA LOCAL INFILE` from a file in the bridge's own folder, or,
where the server or client refuses local files (MySQL 8 ships with local_infile OFF), one
multi-row INSERT of escaped literals. Either runs inside the transaction that closes the chunk."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import mysql.connector

from ..db import query
from ..db.local import pid_alive
from .rows import Result

log = logging.getLogger("mlbridge.bridge")

# Refusals of LOAD DATA LOCAL: the server's local_infile is OFF (1148, 3948), or the client's
# (2068); after one, this bridge writes with INSERT.
LOCAL_REFUSED = {1148, 3948, 2068}
LOCAL_MIN_ROWS = 64

# Escapes of LOAD DATA's default format (FIELDS ESCAPED BY '\\', TERMINATED BY '\t').
_TSV = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\x00": "\\0"})
# MySQL string literal escapes (the bridge's sessions keep backslash escapes on).
_SQL = str.maketrans({"\\": "\\\\", "'": "\\'", "\x00": "\\0", "\n": "\\n", "\r": "\\r", "\x1a": "\\Z"})


class DuplicateResult(Exception):
    """A row of the chunk has a result already: another bridge closed it first."""


NULL_TSV = "\\N"


def tsv_text(value: str | None) -> str:
    return NULL_TSV if value is None else value.translate(_TSV)


def sql_text(value: str | None) -> str:
    return "NULL" if value is None else "'" + value.translate(_SQL) + "'"


def _score(value: float | None, null: str) -> str:
    return null if value is None else repr(float(value))


def results_tsv(results: Sequence[Result]) -> str:
    """Lines of `seq, score, output, error` for LOAD DATA (the request id is SET by the statement)."""
    return "".join(
        f"{int(r.seq)}\t{_score(r.score, NULL_TSV)}\t{tsv_text(r.output)}\t{tsv_text(r.error)}\n"
        for r in results
    )


def results_values(request_id: int, results: Sequence[Result]) -> str:
    """`(request_id, seq, score, output, error), ...` as escaped literals."""
    rid = int(request_id)
    return ",".join(
        f"({rid},{int(r.seq)},{_score(r.score, 'NULL')},{sql_text(r.output)},{sql_text(r.error)})" for r in results
    )


def local_folder() -> Path:
    """A private folder for the files LOAD DATA LOCAL reads, in memory where the machine has
    /dev/shm. Folders left by bridges that were killed (named after their pid) go first."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()
    for old in Path(base).glob("mlbridge-results-*-*"):
        pid = old.name.split("-")[2]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"mlbridge-results-{os.getpid()}-", dir=base))



class ResultWriter:
    """Writes a chunk's results on a connection opened with allow_local_infile_in_path=folder."""

    def __init__(self, folder: Path | None, use_local: bool = True, local_min_rows: int = LOCAL_MIN_ROWS):
        self.folder = folder
        self.use_local = use_local and folder is not None
        self.local_min_rows = local_min_rows
        self._file = folder / f"results-{os.getpid()}.tsv" if folder is not None else None

    def close(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def write(self, cur, request_id: int, results: Sequence[Result]) -> None:
        """Insert the results; DuplicateResult when any row has one already."""
        if not results:
            return
        # A file and its round trip cost more than they save on a few rows (predict_row's one).
        if self.use_local and len(results) >= self.local_min_rows:
            try:
                self._load(cur, request_id, results)
                return
            except mysql.connector.Error as exc:
                if exc.errno not in LOCAL_REFUSED:
                    raise
                log.warning("bridge: LOAD DATA LOCAL refused (%s); writing results with INSERT", exc.msg)
                self.use_local = False
        try:
            cur.execute(query("insert_results").replace("{values}", results_values(request_id, results)))
        except mysql.connector.IntegrityError as exc:
            if exc.errno == 1062:
                raise DuplicateResult() from exc
            raise

    def _load(self, cur, request_id: int, results: Sequence[Result]) -> None:
        assert self._file is not None and self.folder is not None
        text = results_tsv(results)
        try:
            self._file.write_text(text, encoding="utf-8")
        except FileNotFoundError:  # the folder was cleaned away (a tmp cleaner, logind's RemoveIPC)
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._file.write_text(text, encoding="utf-8")
        # LOCAL turns duplicate keys into warnings (rows skipped): a short count is a duplicate.
        cur.execute(query("load_results").replace("{request}", str(int(request_id)))
                    .replace("{file}", str(self._file).replace("\\", "\\\\").replace("'", "\\'")))
        count = cur.rowcount
        self._file.unlink(missing_ok=True)
        if count != len(results):
            raise DuplicateResult()
