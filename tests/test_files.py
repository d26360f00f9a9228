"""vertkp.files, the one writer of JSON and CSV outputs: the NaN policy, numpy values, atomicity; and
the one reader of text and JSON inputs, and the output folder check."""
import json
import math

import numpy as np
import pytest

from vertkp.files import (atomic_open, csv_cell, jsonable, output_folder, read_json, read_text, write_csv,
                          write_json, write_json_files, write_text)


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


def test_text_is_read_as_utf8_with_or_without_a_bom_and_other_encodings_are_named(tmp_path):
    f = tmp_path / "a.json"
    for data in ('{"name": "Ünï"}'.encode(), b"\xef\xbb\xbf" + '{"name": "Ünï"}'.encode()):
        f.write_bytes(data)
        assert read_json(f) == {"name": "Ünï"} and read_text(f) == '{"name": "Ünï"}'
    for encoding, named in (("utf-16", "UTF-16"), ("utf-32", "UTF-32")):
        f.write_bytes("{}".encode(encoding))
        with pytest.raises(ValueError, match=f"^the text is {named} .*: save it as UTF-8$"):
            read_json(f)
    f.write_bytes(b'{"a": "\xe9"}')  # Latin-1
    with pytest.raises(ValueError, match="^not UTF-8 text .byte 7 is 0xe9.: save it as UTF-8$"):
        read_text(f)
    f.write_text("{")
    with pytest.raises(json.JSONDecodeError):
        read_json(f)


def test_an_output_folder_with_a_file_in_its_way_is_refused(tmp_path):
    assert output_folder(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match=f"^--output {tmp_path / 'f'} is a file, not a folder"):
        output_folder(tmp_path / "f")
    with pytest.raises(ValueError, match=f"^--out {tmp_path / 'f' / 'sub'} cannot be made: {tmp_path / 'f'} is a file"):
        output_folder(tmp_path / "f" / "sub", "--out")
    assert not (tmp_path / "new").exists()  # checked, not made


def test_files_written_atomically_have_the_permissions_of_a_plain_open(tmp_path):
    """A temporary file is made 0o600; what is renamed into place must be readable as open() makes it."""
    import os
    import stat

    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    want = stat.S_IMODE(plain.stat().st_mode)
    written = [write_json(tmp_path / "a.json", {}), write_text(tmp_path / "b.txt", "b"),
               *write_json_files({tmp_path / "c.json": [], tmp_path / "d.json": []})]
    with atomic_open(tmp_path / "e.bin", "wb") as f:
        f.write(b"e")
    for path in [*written, tmp_path / "e.bin"]:
        assert stat.S_IMODE(os.stat(path).st_mode) == want, path
