"""Value checks and conversion: no service needed."""

import enum
import json
import math

import pytest

from runlog._values import config_items, flatten, summary_items, to_value


def test_scalars_keep_type_and_special_floats():
    row = flatten(
        {"f": 0.5, "i": 3, "b": True, "s": "x", "nan": float("nan"),
         "inf": float("inf"), "ninf": float("-inf"), "zero": 0, "no": False},
        set(),
    )
    assert type(row["f"]) is float and row["f"] == 0.5
    assert type(row["i"]) is int and row["i"] == 3
    assert row["b"] is True and row["no"] is False
    assert row["s"] == "x"
    assert math.isnan(row["nan"])
    assert row["inf"] == math.inf and row["ninf"] == -math.inf
    assert type(row["zero"]) is int


def test_nested_dicts_flatten_with_slash():
    row = flatten({"train": {"loss": 1.0, "opt": {"lr": 0.1}}, "epoch": 2}, set())
    assert row == {"train/loss": 1.0, "train/opt/lr": 0.1, "epoch": 2}


def test_known_keys_are_remembered():
    known = set()
    flatten({"a": {"b": 1}}, known)
    assert "a/b" in known


@pytest.mark.parametrize(
    "data, key",
    [
        ({"loss": None}, "loss"),
        ({"loss": [1.0, 2.0]}, "loss"),
        ({"loss": object()}, "loss"),
        ({"train": {"loss": {1, 2}}}, "train/loss"),
        ({"c": 1 + 2j}, "c"),
        ({"b": b"bytes"}, "b"),
    ],
)
def test_bad_values_raise_type_error_naming_the_key(data, key):
    with pytest.raises(TypeError, match=repr(key)):
        flatten(data, set())


def test_bad_keys():
    with pytest.raises(TypeError, match="3"):
        flatten({3: 1.0}, set())
    with pytest.raises(ValueError, match="empty"):
        flatten({"": 1.0}, set())
    with pytest.raises(ValueError, match="UTF-8"):
        flatten({"bad\udc80": 1.0}, set())
    with pytest.raises(TypeError, match="under 'train'"):
        flatten({"train": {7: 1.0}}, set())


def test_values_that_do_not_fit():
    with pytest.raises(ValueError, match="'big'.*64 bits"):
        flatten({"big": 1 << 63}, set())
    assert flatten({"edge": (1 << 63) - 1, "low": -(1 << 63)}, set())["low"] == -(1 << 63)
    with pytest.raises(ValueError, match="'s'.*UTF-8"):
        flatten({"s": "x\ud800"}, set())


def test_subclasses_are_converted():
    class Color(enum.IntEnum):
        RED = 4

    class MyFloat(float):
        pass

    row = flatten({"c": Color.RED, "f": MyFloat(1.5)}, set())
    assert type(row["c"]) is int and row["c"] == 4
    assert type(row["f"]) is float and row["f"] == 1.5


def test_numpy_scalars_and_zero_d_arrays():
    np = pytest.importorskip("numpy")
    row = flatten(
        {
            "f32": np.float32(0.25),
            "f64": np.float64("nan"),
            "i64": np.int64(-7),
            "u8": np.uint8(200),
            "b": np.bool_(True),
            "s": np.str_("hi"),
            "arr": np.array(1.5),
            "iarr": np.array(3),
        },
        set(),
    )
    assert type(row["f32"]) is float and row["f32"] == 0.25
    assert math.isnan(row["f64"])
    assert type(row["i64"]) is int and row["i64"] == -7
    assert row["u8"] == 200
    assert row["b"] is True
    assert type(row["s"]) is str and row["s"] == "hi"
    assert type(row["arr"]) is float and row["arr"] == 1.5
    assert type(row["iarr"]) is int and row["iarr"] == 3
    with pytest.raises(TypeError, match="'vec'.*shape"):
        flatten({"vec": np.zeros(3)}, set())
    with pytest.raises(ValueError, match="'u'.*64 bits"):
        flatten({"u": np.uint64(1 << 63)}, set())
    with pytest.raises(TypeError, match="'z'"):
        flatten({"z": np.complex64(1)}, set())


def test_config_keeps_nesting_as_json():
    items = config_items({"lr": 1e-3, "layers": [64, 64], "opt": {"name": "adam", "betas": (0.9, 0.99)}, "none": None}, set())
    assert to_value("lr", items["lr"], "config").double_value == 1e-3
    v = to_value("layers", items["layers"], "config")
    assert v.WhichOneof("kind") == "json_value"
    assert json.loads(v.json_value) == [64, 64]
    assert json.loads(to_value("opt", items["opt"], "config").json_value) == {"name": "adam", "betas": [0.9, 0.99]}
    assert json.loads(to_value("none", None, "config").json_value) is None


def test_config_bad_values_name_the_key():
    with pytest.raises(TypeError, match="'opt/fn'"):
        config_items({"opt": {"fn": object()}}, set())
    with pytest.raises(ValueError, match="'grid'.*NaN"):
        config_items({"grid": [1.0, float("nan")]}, set())


def test_summary_flattens_like_history():
    items = summary_items({"best": {"acc": 0.9, "epochs": [1, 2]}}, set())
    assert set(items) == {"best/acc", "best/epochs"}
    assert json.loads(to_value("best/epochs", items["best/epochs"], "summary").json_value) == [1, 2]
