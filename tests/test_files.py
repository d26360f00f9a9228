"""vertkp.files, the one writer of JSON and CSV outputs: the NaN policy, numpy values, atomicity."""
import json
import math

import numpy as np
import pytest

from vertkp.files import csv_cell, jsonable, write_csv, write_json, write_json_files


def test_nan_policy_null_or_error_naming_where():
    obj = {"a": [1.0, float("nan")], "b": {"c": np.float32(np.inf)}, "d": np.arange(3), "e": (np.int64(2), None)}
    assert jsonable(obj) == {"a": [1.0, None], "b": {"c": None}, "d": [0, 1, 2], "e": [2, None]}
    with pytest.raises(ValueError, match=r"nan at \$\.a\[1\]"):
        jsonable(obj, nan="error")
    with pytest.raises(ValueError, match="nan must be one of"):
        jsonable(obj, nan="zero")
    with pytest.raises(TypeError, match=r"set at \$\.s"):
        jsonable({"s": {1}})


def test_write_json_is_atomic_and_leaves_nothing_on_error(tmp_path):
    f = write_json(tmp_path / "sub" / "m.json", {"x": float("nan"), "y": np.float64(1.5)})
    assert json.loads(f.read_text()) == {"x": None, "y": 1.5}
    with pytest.raises(ValueError):
        write_json(tmp_path / "sub" / "m.json", {"x": float("nan")}, nan="error")
    assert json.loads(f.read_text()) == {"x": None, "y": 1.5}  # the old file is untouched
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["m.json"]  # no temporary left


def test_write_json_files_writes_all_or_none(tmp_path):
    with pytest.raises(ValueError, match=r"\$\.v"):
        write_json_files({tmp_path / "a.json": {"v": 1}, tmp_path / "b.json": {"v": math.inf}})
    assert list(tmp_path.iterdir()) == []
    write_json_files({tmp_path / "a.json": {"v": 1}, tmp_path / "b.json": {"v": 2}})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]


def test_csv_cells_and_columns(tmp_path):
    assert [csv_cell(v) for v in (None, float("nan"), -0.0, 1 / 3, np.float32(2.5), 7, "x")] == [
        "", "", "0.0", "0.333333", "2.5", "7", "x"]
    assert csv_cell(12.3456, "{:.4g}") == "12.35"
    path = write_csv(tmp_path / "t.csv", [{"a": 1.0, "b": "z"}, {"b": None}], ("a", "b"))
    assert path.read_text().splitlines() == ["a,b", "1.0,z", ","]
