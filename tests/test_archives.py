"""Safe extraction of dataset archives (zips built here with zipfile): the Mendeley download's
nested Dataset.zip, reuse, refusals that leave nothing written, junk, checksums."""
import hashlib
import io
import stat
import struct
import warnings
import zipfile
from pathlib import Path

import pytest

from tests.helpers.raw import mendeley_tree, quad
from vertkp.data.datasets import SPECS
from vertkp.data.datasets.buu_lspine import find_buu_root
from vertkp.data.datasets.spondylolisthesis import KEYPOINTRCNN_DIR, convert_spondylolisthesis
from vertkp.data.raw import extraction
from vertkp.data.raw.archives import open_dataset, verify_sha256
from vertkp.data.raw.extraction import MARKER, ArchiveError, check_members, extract_zip, format_bytes, sha256_file
from vertkp.data.raw.sources import is_junk
from vertkp.files import read_json

KP = KEYPOINTRCNN_DIR
INNER = {  # Dataset.zip: 3 files, 2 junk entries
    f"{KP}/images/train/a.jpg": b"jpeg a",
    f"{KP}/labels/train/a.json": b'{"boxes": [], "keypoints": [], "labels": []}',
    "Dataset/Test/t.jpg": b"jpeg t",
    "__MACOSX/Dataset/._Test": b"apple double",
    "Dataset/.DS_Store": b"finder",
}

SPONDY = SPECS["spondylolisthesis"]


def zip_bytes(members, compression=zipfile.ZIP_DEFLATED) -> bytes:
    """A zip of {name: bytes, or a zipfile.ZipInfo: bytes} in order."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items() if isinstance(members, dict) else members:
            zf.writestr(name, data)
    return buf.getvalue()


def write_zip(path, members, compression=zipfile.ZIP_DEFLATED) -> Path:
    path = Path(path)
    path.write_bytes(zip_bytes(members, compression))
    return path


def mendeley_zip(path, inner=INNER) -> Path:
    """The outer Mendeley download: ``Some Folder/Dataset.zip`` (+ 1 junk entry)."""
    return write_zip(path, {"Some Folder/Dataset.zip": zip_bytes(inner),
                            "__MACOSX/Some Folder/._Dataset.zip": b"apple double"})


def listing(folder):
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*"))


def patch_declared_size(path, name, size):
    """Make member ``name`` declare ``size`` uncompressed bytes, in its local and central headers."""
    data = bytearray(Path(path).read_bytes())
    with zipfile.ZipFile(path) as zf:
        info, i = zf.getinfo(name), zf.start_dir
    struct.pack_into("<I", data, info.header_offset + 22, size)
    while data[i:i + 4] == b"PK\x01\x02":
        n, m, k = struct.unpack_from("<HHH", data, i + 28)
        if data[i + 46:i + 46 + n].decode() == name:
            struct.pack_into("<I", data, i + 24, size)
        i += 46 + n + m + k
    Path(path).write_bytes(bytes(data))


def symlink(name, target="/etc/passwd"):
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target


def test_a_folder_root_is_returned_as_is(tmp_path):
    got = open_dataset(tmp_path, SPONDY)
    assert got.folder == tmp_path
    assert (got.archive, got.sha256, got.verified, got.extraction, got.notes) == (None, None, None, None, [])
    assert listing(tmp_path) == []


def test_the_mendeley_zip_extracts_beside_itself_with_its_dataset_zip_in_place(tmp_path):
    outer = mendeley_zip(tmp_path / "spondylolisthesis_v1.zip")
    got = open_dataset(outer, SPONDY, progress=False)
    target = tmp_path / "spondylolisthesis"
    assert got.folder == target and got.archive == outer
    assert got.sha256 == hashlib.sha256(outer.read_bytes()).hexdigest()
    assert got.verified is False
    published = SPONDY.published.sha256
    assert got.notes[0] == f"not the published v1 archive (sha256 {got.sha256}, expected {published})"
    assert got.notes[1].startswith("extracted 3 files (")
    assert got.notes[1].endswith(f"from {outer.name} to {target} (3 junk entries skipped)")
    assert listing(tmp_path) == sorted([
        "spondylolisthesis_v1.zip", "spondylolisthesis", f"spondylolisthesis/{MARKER}",
        "spondylolisthesis/Some Folder", "spondylolisthesis/Some Folder/Dataset",
        "spondylolisthesis/Some Folder/Dataset/Test", "spondylolisthesis/Some Folder/Dataset/Test/t.jpg",
        *(f"spondylolisthesis/Some Folder/{p}" for p in ("Dataset/Train", f"{KP}", f"{KP}/images", f"{KP}/images/train",
                                                         f"{KP}/images/train/a.jpg", f"{KP}/labels",
                                                         f"{KP}/labels/train", f"{KP}/labels/train/a.json")),
    ])  # the nested Dataset.zip removed once extracted, no junk, no temporary folder
    assert (target / "Some Folder" / KP / "images/train/a.jpg").read_bytes() == b"jpeg a"
    ex = got.extraction
    assert (ex.folder, ex.n_files, ex.n_junk_skipped, ex.reused, ex.n_bytes) == (target, 3, 3, False, sum(
        len(v) for k, v in INNER.items() if not is_junk(k)))
    marker = read_json(target / MARKER)
    assert (marker["archive"], marker["size"], marker["sha256"]) == (outer.name, outer.stat().st_size, got.sha256)


def test_an_extracted_mendeley_zip_converts(tmp_path):
    raw = tmp_path / "raw"
    mendeley_tree(raw, [("train", "0001-F-037Y1", "json", [quad(320, 200, 90, 55)]),
                        ("val", "0002-M-051Y1", "txt", [quad(320, 300, 90, 55)])], test=["0003-F-060Y1.jpg"])
    inner = {str(p.relative_to(raw)): p.read_bytes() for p in sorted(raw.rglob("*")) if p.is_file()}
    got = open_dataset(mendeley_zip(tmp_path / "download.zip", inner), SPONDY, progress=False)
    report = convert_spondylolisthesis(got.folder, progress=False)
    assert report.images == {"train": 1, "val": 1, "test": 1}


def test_a_second_call_reuses_the_extraction_without_writing(tmp_path, monkeypatch):
    outer = mendeley_zip(tmp_path / "spondylolisthesis_v1.zip")
    first = open_dataset(outer, SPONDY, progress=False)
    stamps = {p: p.stat().st_mtime_ns for p in first.folder.rglob("*")}
    monkeypatch.setattr(extraction, "_unpack", lambda *a, **k: pytest.fail("extracted again"))
    second = open_dataset(outer, SPONDY, progress=False)
    assert second.folder == first.folder and second.extraction.reused is True
    assert (second.extraction.n_files, second.extraction.n_junk_skipped) == (3, 3)
    assert second.notes[1] == f"reused the complete extraction of {outer.name} in {first.folder}"
    assert {p: p.stat().st_mtime_ns for p in first.folder.rglob("*")} == stamps


def test_a_target_without_the_marker_is_refused_and_left_alone(tmp_path):
    outer = mendeley_zip(tmp_path / "spondylolisthesis_v1.zip")
    (tmp_path / "spondylolisthesis").mkdir()
    (tmp_path / "spondylolisthesis" / "mine.txt").write_text("keep me")
    with pytest.raises(ArchiveError) as e:
        open_dataset(outer, SPONDY, progress=False)
    assert e.value.path == str(tmp_path / "spondylolisthesis")
    assert e.value.what == (f"exists but is not a complete extraction of {outer.name} (it has no {MARKER}); "
                            "vertkp never overwrites it: remove it, or pass another --extract-to")
    assert listing(tmp_path) == ["spondylolisthesis", "spondylolisthesis/mine.txt", "spondylolisthesis_v1.zip"]


def test_a_target_holding_another_archive_is_refused(tmp_path):
    first = write_zip(tmp_path / "first.zip", {"a.txt": b"a"})
    other = write_zip(tmp_path / "other.zip", {"b.txt": b"b"})
    extract_zip(first, tmp_path / "out", progress=False)
    with pytest.raises(ArchiveError, match="holds the extraction of another archive .first.zip, sha256 [0-9a-f]{64}.,"
                                           " not of other.zip .*remove it, or pass another --extract-to"):
        extract_zip(other, tmp_path / "out", progress=False)
    assert listing(tmp_path / "out") == [MARKER, "a.txt"]


GOOD = ("Dataset/ok.txt", b"written first")
REFUSALS = {  # case -> (members after GOOD, max_bytes, message); the member refused is the last one
    "absolute": ([("/tmp/vertkp_evil.txt", b"x")], None,
                 "an absolute path (it would be written outside the extraction folder)"),
    "drive": ([("C:/evil.txt", b"x")], None,
              "a path with a drive letter (it would be written outside the extraction folder)"),
    "zip slip": ([("Dataset/../../evil.txt", b"x")], None,
                 "a '..' component (zip slip: it would be written outside the extraction folder)"),
    "backslash slip": ([("Dataset\\..\\..\\evil.txt", b"x")], None,
                       "a '..' component (zip slip: it would be written outside the extraction folder)"),
    "symlink": ([symlink("Dataset/link")], None,
                "a symbolic link (it could point outside the extraction folder; a dataset holds none)"),
    "declared size": ([("Dataset/big.bin", b"\0" * 2000)], 1000,
                      "the declared sizes add up to "),
}
ZIP_BOMB = ("more than the bound of {} one extraction may write: refused as a possible zip bomb, nothing is left "
            "written (if the archive is genuine, pass a larger max_bytes, or unpack it by hand and pass the folder)")


@pytest.mark.parametrize("case", sorted(REFUSALS))
@pytest.mark.parametrize("nested", [False, True], ids=["outer", "nested"])
def test_each_refusal_names_the_member_and_leaves_nothing_written(tmp_path, case, nested):
    members, max_bytes, message = REFUSALS[case]
    members = [GOOD, *members]
    if nested:  # the same member inside the Mendeley download's Dataset.zip: found after writing began
        path = write_zip(tmp_path / "download.zip", {"ok.txt": b"outer", "Some Folder/Dataset.zip": zip_bytes(members)})
        shown = f"{path}, member Some Folder/Dataset.zip"
    else:
        path, shown = write_zip(tmp_path / "download.zip", members), str(tmp_path / "download.zip")
    if max_bytes and nested:  # room for the outer archive's files, not for the nested one's
        max_bytes += sum(i.file_size for i in check_members(path))
    before = listing(tmp_path)
    with pytest.raises(ArchiveError) as e:
        open_dataset(path, SPONDY, progress=False, **({"max_bytes": max_bytes} if max_bytes else {}))
    name = members[-1][0].filename if isinstance(members[-1][0], zipfile.ZipInfo) else members[-1][0]
    assert (e.value.path, e.value.where) == (shown, f"member {name!r}")
    assert e.value.what.startswith(message)
    if max_bytes:
        assert e.value.what.endswith(ZIP_BOMB.format(format_bytes(max_bytes)))
    else:
        assert e.value.what == f"{message}; the archive is refused, nothing is left written"
    assert listing(tmp_path) == before
    assert not Path("/tmp/vertkp_evil.txt").exists()


def test_a_member_holding_more_than_it_declares_aborts_and_removes_everything(tmp_path):
    path = write_zip(tmp_path / "bomb.zip", [GOOD, ("Dataset/bomb.bin", b"\0" * 100_000)])
    patch_declared_size(path, "Dataset/bomb.bin", 100)
    assert sum(i.file_size for i in check_members(path)) == len(GOOD[1]) + 100  # the declared sizes pass the check
    before = listing(tmp_path)
    with pytest.raises(ArchiveError) as e:  # into a folder whose parents do not exist yet: they go too
        open_dataset(path, SPONDY, extract_to=tmp_path / "new" / "deeper", progress=False, max_bytes=1000)
    assert (e.value.path, e.value.where) == (str(path), "member 'Dataset/bomb.bin'")
    assert e.value.what == ("holds more than the 100 bytes it declares: the extraction is aborted and everything "
                            "written removed (a zip bomb, or a damaged archive)")
    assert listing(tmp_path) == before


def test_a_damaged_member_is_refused(tmp_path):
    path = write_zip(tmp_path / "damaged.zip", [GOOD, ("Dataset/b.txt", b"0123456789")], zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    data[data.index(b"0123456789")] = ord("X")
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="damaged: it holds 10 bytes .CRC-32 [0-9a-f]{8}. but declares 10") as e:
        extract_zip(path, tmp_path / "out", progress=False)
    assert e.value.where == "member 'Dataset/b.txt'"
    assert listing(tmp_path) == ["damaged.zip"]


def test_a_name_twice_is_refused(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile: "Duplicate name"
        path = write_zip(tmp_path / "twice.zip", [("a.txt", b"1"), ("a.txt", b"2")])
    with pytest.raises(ArchiveError, match="appears twice in the archive") as e:
        check_members(path)
    assert e.value.where == "member 'a.txt'"


def test_a_file_that_is_not_a_zip_is_refused(tmp_path):
    page = tmp_path / "spondylolisthesis_v1.zip"
    page.write_text("<html>Access denied</html>")
    with pytest.raises(ArchiveError, match="not a zip archive, or a damaged or incomplete one .*download it again"):
        open_dataset(page, SPONDY, progress=False)
    assert listing(tmp_path) == [page.name]
    (tmp_path / "x.tar").write_text("")
    with pytest.raises(ArchiveError, match="neither a folder nor a .zip archive"):
        open_dataset(tmp_path / "x.tar", SPONDY)
    with pytest.raises(ArchiveError, match="no such file or folder"):
        open_dataset(tmp_path / "missing.zip", SPONDY)


def test_junk_is_skipped_and_counted(tmp_path):
    path = write_zip(tmp_path / "junk.zip", {
        "__MACOSX/": b"", "__MACOSX/._a.jpg": b"j", "._b.jpg": b"j", "sub/.DS_Store": b"j", "sub/Thumbs.db": b"j",
        "desktop.ini": b"j", "sub/a.jpg": b"a", "sub/.hidden_but_kept": b"k",
    })
    assert [i.filename for i in check_members(path)] == ["sub/a.jpg", "sub/.hidden_but_kept"]
    ex = extract_zip(path, tmp_path / "out", progress=False)
    assert (ex.n_files, ex.n_junk_skipped, ex.reused) == (2, 6, False)
    assert listing(tmp_path / "out") == [MARKER, "sub", "sub/.hidden_but_kept", "sub/a.jpg"]


def test_the_checksum_is_verified_against_the_expected_one(tmp_path):
    outer = mendeley_zip(tmp_path / "spondylolisthesis_v1.zip")
    sha = hashlib.sha256(outer.read_bytes()).hexdigest()
    assert sha256_file(outer) == sha
    got = open_dataset(outer, SPONDY, progress=False, expected_sha256=sha.upper())
    assert (got.verified, got.notes[0]) == (True, f"verified: the expected archive (sha256 {sha})")
    assert open_dataset(outer, SPONDY, progress=False, expected_sha256=None).verified is None
    assert open_dataset(outer, SPONDY, progress=False).verified is False
    published = SPONDY.published.sha256
    assert verify_sha256(published, SPONDY) == (
        True, f"verified: the published v1 archive (sha256 {published})")
    assert verify_sha256(sha, SPECS["buu-lspine"]) == (None, f"sha256 {sha} (no published checksum for buu-lspine)")


def test_published_archives():
    spondy = SPONDY.published
    assert (spondy.doi, spondy.version, spondy.file_name) == ("10.17632/5jdfdgp762.1", 1, "spondylolisthesis_v1.zip")
    assert spondy.url == "https://data.mendeley.com/public-api/zip/5jdfdgp762/download/1"
    assert spondy.doi_url == "https://doi.org/10.17632/5jdfdgp762.1"
    assert [s.name for s in SPECS.values() if s.published] == ["spondylolisthesis"]
    assert {s.name: s.folder for s in SPECS.values()} == {"spondylolisthesis": "spondylolisthesis",
                                                          "buu-lspine": "buu_lspine"}
    with pytest.raises(AttributeError):
        spondy.sha256 = "0" * 64


@pytest.mark.parametrize("wrapper", ["", "BUU-LSPINE_400/"])
def test_a_buu_lspine_zip_extracts_to_buu_lspine_for_its_converter(tmp_path, wrapper):
    members = {f"{wrapper}AP/0001-F-037Y0.jpg": b"ap", f"{wrapper}AP/0001-F-037Y0.csv": b"",
               f"{wrapper}LA/0001-F-037Y1.jpg": b"la", "__MACOSX/._LA": b"junk"}
    path = write_zip(tmp_path / "buu.zip", members)
    got = open_dataset(path, SPECS["buu-lspine"], progress=False)
    assert got.folder == got.extraction.folder == tmp_path / "buu_lspine"
    assert (got.verified, got.extraction.n_files, got.extraction.n_junk_skipped) == (None, 3, 1)
    assert got.notes[0] == f"sha256 {got.sha256} (no published checksum for buu-lspine)"
    assert find_buu_root(got.folder) == tmp_path / "buu_lspine" / wrapper.rstrip("/")
