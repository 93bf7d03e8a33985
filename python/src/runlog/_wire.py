"""Protobuf encoding of history records, written by hand for speed.

Building a HistoryRow from generated classes costs several microseconds per
row; concatenating cached byte prefixes costs a fraction of that. The output
is byte for byte what the generated classes serialise (tests check this), so
the service cannot tell the difference. Everything other than history rows is
rare and uses the generated classes.

Wire facts used here (proto/runlog/v1/record.proto):

  Record      client_id = 4 (bytes, tag 0x22), client_seq = 5 (varint, 0x28),
              history = 12 (message, 0x62)
  HistoryRow  step = 1 (varint, 0x08), items = 2 (message, 0x12)
  Item        key = 1 (bytes, 0x0a), value = 2 (message, 0x12)
  Value       double = 1 (fixed64, 0x09), int = 2 (varint, 0x10),
              bool = 3 (varint, 0x18), string = 4 (bytes, 0x22)

Value's fields are a oneof, so a zero value is still written; the row's step
is a plain proto3 field, so step 0 is left out.
"""

from __future__ import annotations

import struct
from typing import Any, Dict, List

_pack_double = struct.Struct("<d").pack
_SMALL = [bytes((i,)) for i in range(128)]


def uvarint(n: int) -> bytes:
    """Encodes a non-negative integer below 2**64 as a protobuf varint."""
    if n < 128:
        return _SMALL[n]
    # Steps and sequences rarely need more than four bytes: unrolled, these
    # cost half of the loop below.
    if n < 16384:
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    if n < 2097152:
        return bytes(((n & 0x7F) | 0x80, ((n >> 7) & 0x7F) | 0x80, n >> 14))
    if n < 268435456:
        return bytes(
            (
                (n & 0x7F) | 0x80,
                ((n >> 7) & 0x7F) | 0x80,
                ((n >> 14) & 0x7F) | 0x80,
                n >> 21,
            )
        )
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def varint64(n: int) -> bytes:
    """Encodes an int64 (negative numbers take ten bytes, as in protobuf)."""
    if n < 0:
        n += 1 << 64
    return uvarint(n)


class HistoryEncoder:
    """Encodes history records for one client of one run.

    Per-key prefixes are cached, so a loop that logs the same keys pays for
    each key's encoding once. The caches are bounded: a program that invents
    new keys forever clears them when they grow large. Not safe for concurrent
    use: the sender thread owns it.
    """

    _MAX_KEYS = 100_000

    def __init__(self, client_id: str):
        cid = client_id.encode("utf-8")
        self._head = b"\x22" + uvarint(len(cid)) + cid + b"\x28"
        # key -> Item prefix for a double value: everything before the 8 bytes.
        self._double: Dict[str, bytes] = {}
        # key -> encoded Item.key field (tag, length, bytes).
        self._key: Dict[str, bytes] = {}

    def _key_field(self, k: str) -> bytes:
        kf = self._key.get(k)
        if kf is None:
            if len(self._key) >= self._MAX_KEYS:
                self._key.clear()
                self._double.clear()
            kb = k.encode("utf-8")
            kf = b"\x0a" + uvarint(len(kb)) + kb
            self._key[k] = kf
        return kf

    def _item(self, k: str, v: Any) -> bytes:
        """Encodes one Item as a HistoryRow.items field, tag included."""
        t = type(v)
        if t is float:
            pre = self._double.get(k)
            if pre is None:
                kf = self._key_field(k)
                pre = b"\x12" + uvarint(len(kf) + 11) + kf + b"\x12\x09\x09"
                self._double[k] = pre
            return pre + _pack_double(v)
        kf = self._key_field(k)
        if t is bool:
            val = b"\x18\x01" if v else b"\x18\x00"
        elif t is int:
            val = b"\x10" + varint64(v)
        else:
            sb = v.encode("utf-8")
            val = b"\x22" + uvarint(len(sb)) + sb
        body = kf + b"\x12" + uvarint(len(val)) + val
        return b"\x12" + uvarint(len(body)) + body

    def record(self, client_seq: int, step: int, items: Dict[str, Any]) -> bytes:
        """Returns the encoded Record for one history row."""
        item = self._item
        dbl = self._double
        pack = _pack_double
        parts: List[bytes] = []
        add = parts.append
        for k, v in items.items():
            if type(v) is float:
                pre = dbl.get(k)
                if pre is not None:
                    add(pre + pack(v))
                    continue
            add(item(k, v))
        if step:
            parts.insert(0, b"\x08" + varint64(step))
        row = b"".join(parts)
        return b"".join(
            (self._head, uvarint(client_seq), b"\x62", uvarint(len(row)), row)
        )
