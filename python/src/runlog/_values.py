"""Checking and converting user values before they are queued.

History rows keep native Python values (float, int, bool, str) so the call
path stays cheap; the sender encodes them. Config and summary values become
protobuf Items right away, since they are rare.

Every error names the key it is about: TypeError for a value or key of the
wrong type, ValueError for one of the right type that cannot be stored.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any, Dict, Iterable, Mapping, Set, Tuple

from runlog.v1 import record_pb2

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1

# Sentinel for "not a numpy value".
_NOT_NUMPY = object()


def check_key(key: Any, what: str) -> str:
    """Returns key as a plain str, or raises naming it."""
    if type(key) is not str:
        if not isinstance(key, str):
            raise TypeError(
                f"{what} key {key!r} is a {type(key).__name__}, not a string"
            )
        key = str(key)
    if not key:
        raise ValueError(f"{what} key is empty; every key needs a name")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(
            f"{what} key {key!r} is not valid UTF-8 ({e.reason} at {e.start})"
        ) from None
    return key


def _from_numpy(key: str, v: Any, what: str) -> Any:
    """Converts a numpy scalar or 0-d array to a Python value.

    Returns _NOT_NUMPY when v is no numpy object. numpy is never imported
    here: when the program has not imported it, v cannot be a numpy value.
    """
    np = sys.modules.get("numpy")
    if np is None:
        return _NOT_NUMPY
    if isinstance(v, np.ndarray):
        if v.ndim != 0:
            raise TypeError(
                f"{what} value for key {key!r} is an array of shape {v.shape}; "
                "log a scalar (for example its mean) instead"
            )
        v = v[()]
    if not isinstance(v, np.generic):
        return _NOT_NUMPY
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.str_):
        return str(v)
    raise TypeError(
        f"{what} value for key {key!r} is a numpy {type(v).__name__}, which "
        "runlog cannot store; log a float, int, bool or str"
    )


def scalar(key: str, v: Any, what: str = "history") -> Any:
    """Returns v as a float, int, bool or str, or raises naming key.

    Exact types are accepted as they are; subclasses (IntEnum, numpy.float64)
    and numpy scalars are converted.
    """
    t = type(v)
    if t is float or t is bool:
        return v
    if t is int:
        if INT64_MIN <= v <= INT64_MAX:
            return v
        raise ValueError(
            f"{what} value for key {key!r} ({v}) does not fit in 64 bits; "
            "log it as a float"
        )
    if t is str:
        try:
            v.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(
                f"{what} value for key {key!r} is not valid UTF-8 "
                f"({e.reason} at {e.start})"
            ) from None
        return v
    n = _from_numpy(key, v, what)
    if n is not _NOT_NUMPY:
        return scalar(key, n, what)
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, int):
        return scalar(key, int(v), what)
    if isinstance(v, float):
        return float(v)
    if isinstance(v, str):
        return scalar(key, str(v), what)
    if what == "history":
        kinds = "int, float, bool and str (and numpy scalars); nested dicts are flattened with '/'"
    else:
        kinds = "int, float, bool, str, None, and lists and dicts of these"
    raise TypeError(f"{what} value for key {key!r} is a {t.__name__}; runlog stores {kinds}")


def flatten(
    data: Mapping[Any, Any],
    known: Set[str],
    what: str = "history",
    leaf=scalar,
) -> Dict[str, Any]:
    """Checks and flattens a user mapping into {key: value}.

    Nested mappings become "parent/child" keys. Keys that pass the check are
    added to known, so later calls can skip it. leaf converts each value.
    """
    out: Dict[str, Any] = {}
    _flatten_into(out, "", data, known, what, leaf)
    return out


def _flatten_into(out, prefix, data, known, what, leaf):
    for k, v in data.items():
        if prefix:
            if type(k) is not str and not isinstance(k, str):
                raise TypeError(
                    f"{what} key {k!r} under {prefix[:-1]!r} is a "
                    f"{type(k).__name__}, not a string"
                )
            key = prefix + str(k)
        else:
            key = k
        if key not in known:
            key = check_key(key, what)
            known.add(key)
        if isinstance(v, Mapping):
            _flatten_into(out, key + "/", v, known, what, leaf)
            continue
        out[key] = leaf(key, v, what)


def _jsonable(key: str, v: Any, what: str) -> Any:
    """Returns v made of JSON types only, converting numpy values."""
    t = type(v)
    if v is None or t is bool or t is str or t is int:
        return v
    if t is float:
        if math.isnan(v) or math.isinf(v):
            raise ValueError(
                f"{what} value for key {key!r} holds {v} inside a list or "
                "dict; JSON has no NaN or infinity (log it as a separate "
                "scalar key, which keeps it)"
            )
        return v
    if isinstance(v, Mapping):
        out = {}
        for k, x in v.items():
            if not isinstance(k, str):
                raise TypeError(
                    f"{what} value for key {key!r} has a non-string key {k!r}"
                )
            out[str(k)] = _jsonable(f"{key}/{k}", x, what)
        return out
    if isinstance(v, (list, tuple)):
        return [_jsonable(key, x, what) for x in v]
    np = sys.modules.get("numpy")
    if np is not None and isinstance(v, np.ndarray):
        return _jsonable(key, v.tolist(), what)
    return _jsonable(key, scalar(key, v, what), what)


def to_value(key: str, v: Any, what: str) -> record_pb2.Value:
    """Converts one config or summary value to a protobuf Value.

    Scalars keep their type; lists, tuples, dicts and None travel as JSON.
    """
    if v is None or isinstance(v, (list, tuple, Mapping)):
        doc = _jsonable(key, v, what)
        return record_pb2.Value(
            json_value=json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
            .encode("utf-8")
        )
    np = sys.modules.get("numpy")
    if np is not None and isinstance(v, np.ndarray) and v.ndim != 0:
        return to_value(key, v.tolist(), what)
    v = scalar(key, v, what)
    t = type(v)
    if t is float:
        return record_pb2.Value(double_value=v)
    if t is bool:
        return record_pb2.Value(bool_value=v)
    if t is int:
        return record_pb2.Value(int_value=v)
    return record_pb2.Value(string_value=v)


def _any_leaf(key: str, v: Any, what: str) -> Any:
    # Checked now so the error comes at the call; converted again by to_value.
    to_value(key, v, what)
    return v


def config_items(data: Mapping[Any, Any], known: Set[str]) -> Dict[str, Any]:
    """Checks a config mapping. Nested dicts stay nested: each top-level key
    holds one value, and dicts and lists travel as JSON."""
    out: Dict[str, Any] = {}
    for k, v in data.items():
        key = k if k in known else check_key(k, "config")
        known.add(key)
        to_value(key, v, "config")
        out[key] = v
    return out


def summary_items(data: Mapping[Any, Any], known: Set[str]) -> Dict[str, Any]:
    """Checks a summary mapping. Nested dicts are flattened with "/" like
    history keys; lists travel as JSON."""
    return flatten(data, known, "summary", _any_leaf)


def items_pb(
    data: Iterable[Tuple[str, Any]], what: str
) -> "list[record_pb2.Item]":
    return [record_pb2.Item(key=k, value=to_value(k, v, what)) for k, v in data]
