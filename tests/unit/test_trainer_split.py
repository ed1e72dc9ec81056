"""The trainer's hold-out rule: deterministic, stateless, about one row in five."""

import zlib

import numpy as np

from mlbridge_server.trainer.split import holdout_mask, key_is_holdout, ordinal_is_holdout


def test_key_rule_is_crc32_of_the_key_text():
    for key in (1, 2, 42, "abc", "ÄÖÜ", 10**12):
        assert key_is_holdout(key) == (zlib.crc32(str(key).encode()) % 10 < 2)


def test_key_rule_ignores_the_key_type_only_through_its_text():
    assert key_is_holdout(42) == key_is_holdout("42")


def test_null_keys_train():
    assert key_is_holdout(None) is False
    assert not holdout_mask([None, None], np.array([0, 1])).any()


def test_key_rule_holds_out_about_a_fifth():
    share = np.mean([key_is_holdout(k) for k in range(20_000)])
    assert 0.18 < share < 0.22


def test_ordinal_rule_takes_every_fifth_row():
    assert [ordinal_is_holdout(i) for i in range(10)] == [False] * 4 + [True] + [False] * 4 + [True]


def test_mask_matches_the_scalar_rules():
    keys = list(range(1000)) + ["x", None]
    ordinals = np.arange(500, 500 + len(keys))
    assert holdout_mask(keys, ordinals).tolist() == [key_is_holdout(k) for k in keys]
    assert holdout_mask(None, ordinals).tolist() == [ordinal_is_holdout(int(o)) for o in ordinals]
