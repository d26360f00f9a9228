"""pydicom's own test corpus (``pydicom/data/test_files``: many vendors and tools, broken files
among them) through every public DICOM reader of vertkp: each file is read, or refused with
vertkp's error naming the file and the reason; no other exception escapes. Properties only:
how many files decode depends on the pydicom version and on the ``dicom`` extra."""
import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

from vertkp.data.imaging.dicom import DICOM_EXTRA, DicomError, dicom_ids, dicom_pixel_spacing, dicom_pixels, is_dicom_file, \
    read_dicom
from vertkp.data.imaging.images import ImageReadError, decode_image, decode_thumbnail, image_size, read_xray

CORPUS = Path(pydicom.__file__).parent / "data" / "test_files"
READERS = (decode_image, image_size, decode_thumbnail, read_xray, dicom_pixels, dicom_pixel_spacing, dicom_ids,
           read_dicom)
# Whether the dicom extra's JPEG decoder is installed (pylibjpeg with pylibjpeg-libjpeg).
HAS_LIBJPEG = all(importlib.util.find_spec(m) is not None for m in ("pylibjpeg", "libjpeg"))

pytestmark = [pytest.mark.skipif(not CORPUS.is_dir(), reason=f"pydicom's test corpus is not installed ({CORPUS})"),
              pytest.mark.filterwarnings("ignore::UserWarning")]  # pydicom's, on the corpus's broken values


def corpus_files():
    """Every file there that vertkp treats as DICOM (by name or by the preamble: DICOMDIR, IM0001, ...)."""
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and is_dicom_file(p))


def outcome(read, path):
    """("ok", result) or ("refused", reason); any other exception propagates."""
    try:
        return "ok", read(path)
    except (DicomError, ImageReadError) as e:
        assert str(e).startswith(f"{path}: ") and len(e.what) > 20, str(e)
        return "refused", e.what


def reason(name: str) -> str:
    kind, what = outcome(decode_image, CORPUS / name)
    assert kind == "refused", f"{name} was decoded"
    return what


def test_every_corpus_file_is_read_or_refused_by_name_by_every_reader():
    files = corpus_files()
    assert len(files) > 100  # the DICOMDIR folders and their extension-less files are found too
    counts = {"ok": 0, "refused": 0}
    for path in files:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = {read.__name__: outcome(read, path) for read in READERS}
        kind, image = results["decode_image"]
        counts[kind] += 1
        if kind == "ok":
            assert image.dtype == np.uint8 and image.ndim == 2 and image.size > 0, path
            assert results["image_size"] == ("ok", (image.shape[1], image.shape[0])), path
            assert np.array_equal(results["read_xray"][1], image), path
        else:  # one reason, whichever reader is asked
            assert {results[r.__name__] for r in (image_size, decode_thumbnail, read_xray)} == {(kind, image)}, path
        assert results["dicom_pixel_spacing"][0] == results["dicom_ids"][0] == results["read_dicom"][0], path
    print(f"pydicom {pydicom.__version__} corpus: {len(files)} DICOM files, {counts['ok']} decoded, "
          f"{counts['refused']} refused (dicom extra {'installed' if HAS_LIBJPEG else 'not installed'})")


def test_colour_secondary_captures_of_one_picture_give_nearly_one_grey_image():
    grey = {p.name: outcome(decode_image, p) for p in sorted(CORPUS.glob("SC_rgb*.dcm"))}
    reference = grey["SC_rgb_rle.dcm"][1]  # lossless RGB
    same_picture = {n: a for n, (kind, a) in grey.items() if kind == "ok" and a.shape == reference.shape}
    # RGB and YBR (full, 4:2:2), uncompressed, RLE, JPEG and JPEG 2000 from DCMTK and GDCM, 8 and 16 bits
    assert {"SC_rgb_dcmtk_+eb+cr.dcm", "SC_rgb_dcmtk_+eb+cy+np.dcm", "SC_rgb_dcmtk_+eb+cy+s2.dcm",
            "SC_rgb_gdcm_KY.dcm", "SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_rle_16bit.dcm"} <= set(same_picture)
    for name, a in same_picture.items():
        diff = np.abs(a.astype(int) - reference)
        assert diff.mean() < 1.0 and diff.max() <= 10, (name, diff.mean(), diff.max())  # lossy JPEG: a few levels
    assert np.array_equal(same_picture["SC_rgb_rle_16bit.dcm"], reference)


@pytest.mark.parametrize("name", ["SC_ybr_full_422_uncompressed.dcm", "SC_rgb_small_odd.dcm", "examples_rgb_color.dcm",
                                  "examples_palette.dcm", "examples_jpeg2k.dcm", "ExplVR_BigEnd.dcm"])
def test_colour_files_are_decoded(name):
    kind, image = outcome(decode_image, CORPUS / name)
    assert kind == "ok" and image.dtype == np.uint8 and image.ndim == 2


def test_compressed_copies_decode_to_the_uncompressed_image():
    plain = decode_image(CORPUS / "MR_small.dcm")
    for name in ("MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm"):
        assert np.array_equal(decode_image(CORPUS / name), plain), name
    if HAS_LIBJPEG:
        assert np.array_equal(decode_image(CORPUS / "MR_small_jpeg_ls_lossless.dcm"), plain)
    else:
        what = reason("MR_small_jpeg_ls_lossless.dcm")
        assert "(JPEG-LS Lossless Image Compression)" in what and DICOM_EXTRA in what


def test_a_12_bit_jpeg_is_decoded_with_the_extra_or_its_error_says_to_install_it():
    if HAS_LIBJPEG:
        assert outcome(decode_image, CORPUS / "JPGExtended.dcm")[0] == "ok"
    else:
        what = reason("JPGExtended.dcm")
        assert "12-bit precision" in what and "JPEG Extended" in what and DICOM_EXTRA in what


@pytest.mark.parametrize("name, what", [
    ("badVR.dcm", "its NumberOfFrames (0028,0008) is '1A', not an integer"),
    ("examples_ybr_color.dcm", "a multi-frame DICOM (30 frames, 0 to 29)"),
    ("rtdose.dcm", "a multi-frame DICOM (15 frames, 0 to 14)"),
    ("rtdose_1frame.dcm", "32 bits stored in 32 allocated (RT Dose Storage)"),
    ("liver_1frame.dcm", "1 bit per pixel (Segmentation Storage): a binary mask"),
    ("MR_truncated.dcm", "it is cut short, 8130 of the 8192 bytes of 64 x 64 pixels"),
    ("meta_missing_tsyntax.dcm", "its header lacks Rows (0028,0010), Columns (0028,0011)"),
    ("rtplan.dcm", "no pixel data (7FE0,0010): its SOP class, RT Plan Storage, is not an image"),
    ("test-SR.dcm", "its SOP class, Comprehensive SR Storage, is not an image"),
    ("dicomdirtests/DICOMDIR", "it is a DICOMDIR, the index of a DICOM disc or folder"),
    ("JPEG2000-embedded-sequence-delimiter.dcm", "the DICOM pixel data cannot be decoded"),
])
def test_refusals_name_the_reason(name, what):
    assert what in reason(name)
    assert outcome(dicom_pixel_spacing, CORPUS / name)[0] == "ok"  # the header alone is readable
