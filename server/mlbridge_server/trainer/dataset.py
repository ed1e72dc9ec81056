"""A query's rows as a `tf.data.Dataset`, streamed from MySQL: the trainer's data path as a
library, for training loops of your own.

    from mlbridge.config import Dsn
    from mlbridge_server.trainer.dataset import query_dataset

    ds = query_dataset(Dsn.parse("mysql://u:p@db/shop"), "SELECT id, age, city, churned FROM customers",
                       label="churned", batch_size=1024, readers=4, part="train")
    for features, label in ds: ...          # features: {"age": float32 [n], "city": string [n]}

- Rows stream through an unbuffered cursor, a few blocks at a time: the whole result is never
  in memory, however big the table (BENCHMARKS.md measures it on 10M rows).
- `readers` > 1 with an integer key reads that many slices of the key's range in parallel, each
  on its own connection (source.py).
- Values are those the models take and the bridge sends: numbers as float32 (NaN for NULL),
  everything else as strings (dates in ISO-8601, "" for NULL). The label is float32 for
  numbers and a string otherwise.
- `part` keeps the rows of one side of the trainer's split (split.py): "train", "validation"
  or "test"; None keeps all.
- Each iteration over the Dataset (each epoch) runs the query once.
"""

from __future__ import annotations

import numpy as np

from mlbridge.config import Dsn
from mlbridge.errors import MlbridgeError

from . import split
from .columns import NUMBER, classify_columns
from .source import QuerySource, concat

PARTS = {"train": split.TRAIN, "validation": split.VALIDATION, "test": split.TEST}


def query_dataset(dsn: Dsn, query: str, *, label: str | None = None, key: str | None = None,
                  batch_size: int = 1024, readers: int = 1, part: str | None = None,
                  validation: float = 0.1, test: float = 0.1):
    import tensorflow as tf

    if batch_size < 1:
        raise MlbridgeError(f"mlbridge: batch size must be at least 1, not {batch_size}")
    if part is not None and part not in PARTS:
        raise MlbridgeError(f"mlbridge: part must be one of {', '.join(PARTS)}, not {part!r}")
    split.check_fractions(validation, test)
    source = QuerySource(dsn, query)
    columns = classify_columns(source.describe(), label, key)
    names = columns.feature_names
    ranges = source.key_ranges(columns, readers)
    keep = None if part is None else PARTS[part]

    def generate():
        held: list = []
        count = 0

        def emit(blocks):
            block = concat(blocks)
            for start in range(0, len(block), batch_size):
                features = {n: block.features[n][start : start + batch_size] for n in names}
                y = block.label[start : start + batch_size]
                if label is None:
                    yield features
                else:
                    yield features, (y.astype(np.float32) if columns.label_kind == NUMBER
                                     else np.array(["" if v is None else v for v in y], dtype=object))

        for block in source.blocks(columns, ranges=ranges, validation=validation, test=test):
            if keep is not None:
                block = block.take(block.part == keep)
            if not len(block):
                continue
            held.append(block)
            count += len(block)
            if count >= batch_size:
                whole = concat(held)
                cut = count // batch_size * batch_size
                yield from emit([whole.take(np.arange(cut))])
                held = [whole.take(np.arange(cut, count))] if cut < count else []
                count -= cut
        if count:
            yield from emit(held)

    feature_spec = {n: tf.TensorSpec([None], tf.float32 if k == NUMBER else tf.string)
                    for n, k in zip(names, columns.kinds)}
    if label is None:
        signature = feature_spec
    else:
        signature = (feature_spec, tf.TensorSpec([None], tf.float32 if columns.label_kind == NUMBER else tf.string))
    return tf.data.Dataset.from_generator(generate, output_signature=signature).prefetch(2)
