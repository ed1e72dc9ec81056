"""The hold-out rule: which rows the trainer keeps back to measure the model.

Decided row by row as rows stream past, with no state, so every pass over the query (each
epoch, the final scoring, a later `evaluate`) puts each row on the same side:

- with a key column, a row is held out when `crc32(str(key)) % 10 < 2` (about 20%); it stays
  put however the query orders or filters rows. `str` is of the value as the connector returns
  it (an INT key 42 is "42", a DECIMAL 1.50 is "1.50"). Rows whose key is NULL train.
- without one, the row whose ordinal (0-based, counting every row the query returns, skipped
  ones included) is 4 modulo 5 is held out; that depends on the query's order, so give the
  query an ORDER BY or a key when the split must be stable.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

HOLDOUT_BUCKETS = 10
HOLDOUT_KEY_BUCKETS_BELOW = 2  # buckets 0 and 1 of 10
HOLDOUT_ORDINAL_EVERY = 5


def key_is_holdout(key: object) -> bool:
    if key is None:
        return False
    return zlib.crc32(str(key).encode()) % HOLDOUT_BUCKETS < HOLDOUT_KEY_BUCKETS_BELOW


def ordinal_is_holdout(ordinal: int) -> bool:
    return ordinal % HOLDOUT_ORDINAL_EVERY == HOLDOUT_ORDINAL_EVERY - 1


def holdout_mask(keys: Sequence[object] | None, ordinals: np.ndarray) -> np.ndarray:
    """A boolean mask over a block of rows: True where the row is held out.

    `keys` are the rows' key values (None when the query has no key column); `ordinals` their
    positions in the query's result.
    """
    if keys is None:
        return (np.asarray(ordinals) % HOLDOUT_ORDINAL_EVERY) == HOLDOUT_ORDINAL_EVERY - 1
    crc = zlib.crc32
    return np.fromiter(
        (k is not None and crc(str(k).encode()) % HOLDOUT_BUCKETS < HOLDOUT_KEY_BUCKETS_BELOW for k in keys),
        dtype=bool,
        count=len(keys),
    )
