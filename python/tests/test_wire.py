"""The hand-written history encoder must match the generated classes."""

import math
import random
import struct

import pytest

from runlog._wire import HistoryEncoder, uvarint, varint64
from runlog.v1 import record_pb2


def reference(client_id, seq, step, items):
    r = record_pb2.Record(client_id=client_id, client_seq=seq)
    r.history.step = step
    # An empty row still has to be a history record.
    r.history.SetInParent()
    for k, v in items.items():
        it = r.history.items.add(key=k)
        if type(v) is float:
            it.value.double_value = v
        elif type(v) is bool:
            it.value.bool_value = v
        elif type(v) is int:
            it.value.int_value = v
        else:
            it.value.string_value = v
    return r.SerializeToString(deterministic=True)


def uvarint_ref(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 16383, 16384, 2097151, 2097152,
                               268435455, 268435456, (1 << 63) - 1, (1 << 64) - 1])
def test_uvarint(n):
    assert uvarint(n) == uvarint_ref(n)


def test_varint64_negative_takes_ten_bytes():
    assert varint64(-1) == b"\xff" * 9 + b"\x01"


CASES = [
    (1, 0, {"a": 1.0}),
    (2, 0, {}),
    (300, 5, {"x": 0.0, "b": False, "t": True, "i": 0, "s": ""}),
    (1 << 40, (1 << 63) - 1, {"ü/ß": -1, "max": (1 << 63) - 1, "min": -(1 << 63),
                              "nan": float("nan"), "inf": float("-inf"),
                              "s": "héllo" * 100, "k" * 200: 1.5}),
]


@pytest.mark.parametrize("seq, step, items", CASES)
def test_matches_generated_classes(seq, step, items):
    enc = HistoryEncoder("host-1-abcd")
    want = reference("host-1-abcd", seq, step, items)
    assert enc.record(seq, step, items) == want
    # Second time through the cached prefixes.
    assert enc.record(seq, step, items) == want


def test_random_rows_round_trip():
    rnd = random.Random(7)
    enc = HistoryEncoder("c" * 40)
    keys = [f"k{i}/{'x' * rnd.randrange(0, 150)}" for i in range(30)]

    def value():
        kind = rnd.randrange(4)
        if kind == 0:
            return struct.unpack("<d", rnd.randbytes(8))[0]
        if kind == 1:
            return rnd.randrange(-(1 << 63), 1 << 63)
        if kind == 2:
            return rnd.random() < 0.5
        return "".join(chr(rnd.randrange(32, 0x2FFF)) for _ in range(rnd.randrange(0, 300)))

    for seq in range(1, 500):
        items = {k: value() for k in rnd.sample(keys, rnd.randrange(0, 12))}
        step = rnd.randrange(0, 1 << rnd.randrange(1, 63))
        got = enc.record(seq, step, items)
        assert got == reference("c" * 40, seq, step, items)
        back = record_pb2.Record.FromString(got)
        assert back.client_seq == seq and back.history.step == step
        assert [it.key for it in back.history.items] == list(items)
        for it in back.history.items:
            want = items[it.key]
            got_v = getattr(it.value, it.value.WhichOneof("kind"))
            if isinstance(want, float) and math.isnan(want):
                assert math.isnan(got_v)
            else:
                assert got_v == want and type(got_v) is type(want)


def test_key_cache_is_bounded():
    enc = HistoryEncoder("c")
    enc._MAX_KEYS = 10
    for i in range(25):
        assert enc.record(1, 1, {f"k{i}": 1.0}) == reference("c", 1, 1, {f"k{i}": 1.0})
    assert len(enc._key) <= 10
