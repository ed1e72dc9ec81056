"""Which rows train, which choose the model (validation) and which measure it (test).

Decided row by row as rows stream past, with no state, so every pass over the query (each
epoch, the final scoring, a later `mlbridge evaluate --key`) puts each row on the same side,
whatever order the rows come in (parallel readers interleave them):

- a row's hash is `crc32` of its key's text (an INT key 42 is "42", a DECIMAL 1.50 is "1.50");
  without a key it is the crc32 of the row's values, joined by \\x1f, so identical rows share a
  side. Rows whose key is NULL are hashed by their values too.
- bucket = hash % 100: buckets below `test * 100` are the test rows, the next
  `validation * 100` buckets the validation rows, the rest train (80/10/10 by default).
- a second, independent draw from the same hash ((hash // 100) % 10000) picks the sample of
  training rows that tree models fit on when a table is too big to hold (`sample_mask`).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

TRAIN, VALIDATION, TEST = 0, 1, 2
BUCKETS = 100
SAMPLE_BUCKETS = 10_000


def _text(value: object) -> str:
    return "" if value is None else str(value)


def row_hashes(keys: Sequence[object] | None, rows: Sequence[Sequence[object]]) -> np.ndarray:
    """crc32 per row: of the key's text, or of the row's values where there is no key."""
    crc = zlib.crc32
    if keys is None:
        return np.fromiter((crc("\x1f".join(map(_text, row)).encode()) for row in rows), dtype=np.int64,
                           count=len(rows))
    return np.fromiter(
        (crc(str(k).encode()) if k is not None else crc("\x1f".join(map(_text, row)).encode())
         for k, row in zip(keys, rows)),
        dtype=np.int64,
        count=len(keys),
    )


def check_fractions(validation: float, test: float) -> None:
    from mlbridge.errors import MlbridgeError

    for name, value in (("validation", validation), ("test", test)):
        if not 0 <= value < 1 or round(value * BUCKETS) != value * BUCKETS:
            raise MlbridgeError(
                f"mlbridge: the {name} fraction must be a multiple of 0.01 from 0 to 0.99, not {value}"
            )
    if validation <= 0:
        raise MlbridgeError("mlbridge: the validation fraction must be above 0: it chooses the model and "
                            "stops training")
    if validation + test >= 0.9:
        raise MlbridgeError(f"mlbridge: validation {validation} + test {test} leave too few rows to train on")


def assign(hashes: np.ndarray, validation: float = 0.1, test: float = 0.1) -> np.ndarray:
    """TRAIN, VALIDATION or TEST per row (int8)."""
    bucket = hashes % BUCKETS
    t = round(test * BUCKETS)
    v = t + round(validation * BUCKETS)
    out = np.full(len(hashes), TRAIN, dtype=np.int8)
    out[bucket < v] = VALIDATION
    out[bucket < t] = TEST
    return out


def sample_mask(hashes: np.ndarray, fraction: float) -> np.ndarray:
    """True for about `fraction` of the rows, independently of their split bucket."""
    if fraction >= 1:
        return np.ones(len(hashes), dtype=bool)
    return (hashes // BUCKETS) % SAMPLE_BUCKETS < round(fraction * SAMPLE_BUCKETS)
