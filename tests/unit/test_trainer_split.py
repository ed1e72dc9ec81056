"""The split rule: train, validation and test by the hash of the key, or of the row."""

import zlib

import numpy as np
import pytest

from mlbridge.errors import MlbridgeError
from mlbridge_server.trainer.split import TEST, TRAIN, VALIDATION, assign, check_fractions, row_hashes, sample_mask


def test_key_hash_is_crc32_of_the_key_text():
    assert row_hashes([42, "a", 1.5], [(), (), ()]).tolist() == [zlib.crc32(b"42"), zlib.crc32(b"a"),
                                                                  zlib.crc32(b"1.5")]


def test_without_a_key_the_row_values_are_hashed():
    rows = [(1.0, "x", None), (1.0, "x", None), (2.0, "x", None)]
    h = row_hashes(None, rows)
    assert h[0] == h[1] != h[2]
    assert h[0] == zlib.crc32(b"1.0\x1fx\x1f")


def test_null_keys_fall_back_to_the_row():
    assert row_hashes([None], [(None, 7)])[0] == zlib.crc32(b"\x1f7")


def test_buckets_make_80_10_10():
    parts = assign(row_hashes(list(range(100_000)), [()] * 100_000))
    shares = np.bincount(parts, minlength=3) / len(parts)
    assert shares[TRAIN] == pytest.approx(0.8, abs=0.01)
    assert shares[VALIDATION] == pytest.approx(0.1, abs=0.01)
    assert shares[TEST] == pytest.approx(0.1, abs=0.01)


def test_rule_by_bucket():
    hashes = np.array([0, 9, 10, 19, 20, 99, 105, 119])
    assert assign(hashes, 0.1, 0.1).tolist() == [TEST, TEST, VALIDATION, VALIDATION, TRAIN, TRAIN, TEST, VALIDATION]
    assert assign(hashes, 0.2, 0.0).tolist() == [VALIDATION] * 4 + [TRAIN, TRAIN, VALIDATION, VALIDATION]


def test_a_row_keeps_its_side_whatever_the_order():
    keys = list(range(1000))
    forward = dict(zip(keys, assign(row_hashes(keys, [()] * 1000))))
    backward = dict(zip(keys[::-1], assign(row_hashes(keys[::-1], [()] * 1000))))
    assert forward == backward


def test_the_tree_sample_is_independent_of_the_split():
    hashes = row_hashes(list(range(200_000)), [()] * 200_000)
    train = assign(hashes) == TRAIN
    picked = sample_mask(hashes, 0.25)
    assert picked[train].mean() == pytest.approx(0.25, abs=0.01)
    assert sample_mask(hashes, 1.0).all()


@pytest.mark.parametrize("validation, test, message", [
    (0.0, 0.1, "must be above 0"), (0.105, 0.1, "multiple of 0.01"), (0.5, 0.45, "too few rows"),
    (0.1, -0.1, "from 0 to 0.99")])
def test_bad_fractions(validation, test, message):
    with pytest.raises(MlbridgeError, match=message):
        check_fractions(validation, test)
