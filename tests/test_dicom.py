"""DICOM in (vertkp.data.imaging.dicom through the one decoder, vertkp.data.imaging.images): photometric
inversion, rescale, window and VOI LUT, bit depths, colour as grey, refused and broken files, compressed
syntaxes, pixel spacing from the header; predict's spacing source, privacy and broken files;
and phantoms written as DICOM. Every file is written here with pydicom."""
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGLSLossless, RLELossless, SecondaryCaptureImageStorage, generate_uid

from tests.helpers import DETECTRON2_SKIP_REASON, REPO, run_main
from vertkp.data.imaging.dicom import DicomSpacing, dicom_ids, dicom_pixel_spacing, is_dicom_file
from vertkp.data.imaging.images import (ImageReadError, ImageRecord, decode_image, decode_thumbnail, image_size,
                                        load_image, read_xray, to_gray8)
from vertkp.phantoms.dicom import save_dicom

# A name no output may hold unless asked to (--keep-dicom-ids).
PATIENT = "Quixotic^Zebulon"


def write_dicom(path, pixels, *, photometric="MONOCHROME2", bits_stored=None, syntax=None, pixel_data=None,
                **attrs) -> Path:
    """A DICOM file of ``pixels`` ([H, W] grey, [F, H, W] frames, [H, W, 3] colour; uint8,
    uint16 or int16), with ``attrs`` set as header fields (None: the field left out)."""
    a = np.asarray(pixels)
    colour = photometric not in ("MONOCHROME1", "MONOCHROME2")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax or pydicom.uid.ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta, ds.preamble = meta, b"\0" * 128
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientName, ds.PatientID, ds.PatientBirthDate = "DX", PATIENT, "ID-8675309", "19450704"
    ds.StudyDate, ds.StudyInstanceUID, ds.SeriesInstanceUID = "20240131", generate_uid(), generate_uid()
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = photometric
    if colour:
        ds.PlanarConfiguration = 0
    rows, cols = a.shape[-3:-1] if colour else a.shape[-2:]
    ds.Rows, ds.Columns = rows, cols
    if a.ndim == (4 if colour else 3):
        ds.NumberOfFrames = a.shape[0]
    bits = a.dtype.itemsize * 8
    stored = bits_stored or bits
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, stored, stored - 1
    ds.PixelRepresentation = int(a.dtype.kind == "i")
    if pixel_data is None:
        ds.PixelData = a.astype(a.dtype.newbyteorder("<")).tobytes()
    else:
        ds.add_new(0x7FE00010, "OB", pixel_data)
        ds["PixelData"].is_undefined_length = True
    for k, v in attrs.items():
        if v is None:
            delattr(ds, k)
        else:
            setattr(ds, k, v)
    save_dicom(ds, str(path))
    return Path(path)


def ramp16(h=40, w=50, step=29):
    return (np.arange(h * w, dtype=np.int64).reshape(h, w) * step % 65536).astype(np.uint16)


# ---- pixels ---------------------------------------------------------------------------

def test_16bit_dicom_is_the_same_image_as_the_same_pixels_in_a_16bit_png(tmp_path):
    a = ramp16()
    write_dicom(tmp_path / "a.dcm", a)
    cv2.imwrite(str(tmp_path / "a.png"), a)
    png = decode_image(tmp_path / "a.png")
    assert png.dtype == np.uint8 and png.shape == a.shape
    assert np.array_equal(decode_image(tmp_path / "a.dcm"), png)
    assert np.array_equal(decode_image(tmp_path / "a.dcm", "BGR"), png)  # grey either way
    assert np.array_equal(read_xray(tmp_path / "a.dcm"), read_xray(tmp_path / "a.png"))
    assert image_size(tmp_path / "a.dcm") == (50, 40)
    thumb, size = decode_thumbnail(tmp_path / "a.dcm")
    assert np.array_equal(thumb, png) and size == (50, 40)


def test_monochrome1_is_inverted_so_that_bone_is_bright(tmp_path):
    shown = ramp16()  # what a viewer shows, bone bright
    write_dicom(tmp_path / "m1.dcm", 65535 - shown, photometric="MONOCHROME1")
    cv2.imwrite(str(tmp_path / "shown.png"), shown)
    assert np.array_equal(decode_image(tmp_path / "m1.dcm"), decode_image(tmp_path / "shown.png"))
    # 12 of 16 bits stored: inverted within 0..4095
    shown12 = shown >> 4
    write_dicom(tmp_path / "m12.dcm", 4095 - shown12, photometric="MONOCHROME1", bits_stored=12)
    cv2.imwrite(str(tmp_path / "shown12.png"), shown12)
    assert np.array_equal(decode_image(tmp_path / "m12.dcm"), decode_image(tmp_path / "shown12.png"))


def test_8bit_dicom_is_used_as_is_like_an_8bit_png(tmp_path):
    a = (np.arange(30 * 20) % 256).astype(np.uint8).reshape(30, 20)
    write_dicom(tmp_path / "m2.dcm", a)
    assert np.array_equal(decode_image(tmp_path / "m2.dcm"), a)
    write_dicom(tmp_path / "m1.dcm", a, photometric="MONOCHROME1")
    assert np.array_equal(decode_image(tmp_path / "m1.dcm"), 255 - a)


def test_rescale_slope_and_intercept_are_applied_before_the_window(tmp_path):
    stored = np.array([[250, 375, 625], [750, 751, 0]], np.uint16)
    # modality values 2x - 1000; the window [-500, 500] is in those units
    write_dicom(tmp_path / "r.dcm", stored, RescaleSlope=2, RescaleIntercept=-1000, WindowCenter=0.5,
                WindowWidth=1001)
    assert decode_image(tmp_path / "r.dcm").tolist() == [[0, 64, 191], [255, 255, 0]]
    # without a window, the rescaled values are windowed between their percentiles
    a = ramp16()
    write_dicom(tmp_path / "p.dcm", a, RescaleSlope=-2, RescaleIntercept=7)
    assert np.array_equal(decode_image(tmp_path / "p.dcm"), to_gray8(a.astype(np.float64) * -2 + 7))


def test_window_center_and_width_are_what_is_shown(tmp_path):
    stored = np.array([[500, 501, 1250], [1500, 1501, 0]], np.uint16)
    # LINEAR: x <= 500 black, x > 1500 white, linear between: ((x - 1000) / 1000 + 0.5) * 255
    write_dicom(tmp_path / "w.dcm", stored, WindowCenter=1000.5, WindowWidth=1001)
    expected = [[0, 0, 191], [255, 255, 0]]
    assert decode_image(tmp_path / "w.dcm").tolist() == expected
    write_dicom(tmp_path / "w1.dcm", stored, photometric="MONOCHROME1", WindowCenter=1000.5, WindowWidth=1001)
    assert decode_image(tmp_path / "w1.dcm").tolist() == (255 - np.array(expected)).tolist()
    # several windows: the first
    write_dicom(tmp_path / "w2.dcm", stored, WindowCenter=[1000.5, 3], WindowWidth=[1001, 2])
    assert decode_image(tmp_path / "w2.dcm").tolist() == expected
    # a window pydicom rejects (LINEAR width under 1) is not used: the percentile window is
    write_dicom(tmp_path / "w0.dcm", stored, WindowCenter=1000, WindowWidth=0)
    assert np.array_equal(decode_image(tmp_path / "w0.dcm"), to_gray8(stored))


def test_a_voi_lut_is_applied_and_preferred_over_a_window(tmp_path):
    x = np.arange(256, dtype=np.uint8).reshape(16, 16)
    lut = (np.arange(256) ** 2 // 64).astype(np.uint16)  # 0 .. 1016, not linear
    item = Dataset()
    item.add_new(0x00283002, "US", [256, 0, 16])  # LUTDescriptor: entries, first value mapped, bits
    item.add_new(0x00283006, "US", lut.tolist())  # LUTData
    write_dicom(tmp_path / "v.dcm", x, VOILUTSequence=[item], WindowCenter=10, WindowWidth=2)
    expected = np.round(lut[x] * 255.0 / 1016).astype(np.uint8)
    assert np.array_equal(decode_image(tmp_path / "v.dcm"), expected)


def rgb_picture(h=30, w=40) -> np.ndarray:
    """uint8 [H, W, 3] whose channels differ everywhere, so that the luminance weights matter."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 6, yy * 8, (xx * 5 + yy * 3) % 256], axis=2).astype(np.uint8)


def test_colour_dicom_is_read_grey_as_the_same_colour_png(tmp_path):
    rgb = rgb_picture()
    cv2.imwrite(str(tmp_path / "c.png"), rgb[:, :, ::-1])
    grey = read_xray(tmp_path / "c.png")
    f = write_dicom(tmp_path / "rgb.dcm", rgb, photometric="RGB")
    for read in (decode_image, read_xray):
        assert np.array_equal(read(f), grey)
    assert np.array_equal(decode_image(f, "BGR"), grey)  # grey either way
    assert image_size(f) == (40, 30) and np.array_equal(decode_thumbnail(f)[0], grey)
    # 16 bits a sample: windowed, then its luminance, as any colour array deeper than 8 bits
    rgb16 = rgb.astype(np.uint16) * 200 + 1000
    assert np.array_equal(decode_image(write_dicom(tmp_path / "rgb16.dcm", rgb16, photometric="RGB")),
                          to_gray8(rgb16, "RGB"))


def test_ybr_dicom_is_converted_to_rgb_before_its_luminance(tmp_path):
    rgb = rgb_picture().astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    ybr = np.stack([0.299 * r + 0.587 * g + 0.114 * b,  # YBR_FULL, DICOM PS3.3 C.7.6.3.1.2
                    -0.1687 * r - 0.3313 * g + 0.5 * b + 128,
                    0.5 * r - 0.4187 * g - 0.0813 * b + 128], axis=2)
    f = write_dicom(tmp_path / "ybr.dcm", np.clip(np.round(ybr), 0, 255).astype(np.uint8), photometric="YBR_FULL")
    got = decode_image(f).astype(int)
    assert np.abs(got - to_gray8(rgb_picture(), "RGB")).max() <= 1  # Y itself, within rounding
    assert np.abs(got - np.round(ybr[..., 0])).max() <= 1


def test_palette_colour_dicom_goes_through_its_lookup_table(tmp_path):
    x = (np.arange(30 * 40) % 256).astype(np.uint8).reshape(30, 40)
    tables = [(np.arange(256) * k % 65536).astype(np.uint16) for k in (257, 97, 31)]
    luts = {}
    for colour, table in zip(("Red", "Green", "Blue"), tables):
        luts[f"{colour}PaletteColorLookupTableDescriptor"] = [256, 0, 16]
        luts[f"{colour}PaletteColorLookupTableData"] = table.astype("<u2").tobytes()
    f = write_dicom(tmp_path / "pal.dcm", x, PhotometricInterpretation="PALETTE COLOR", **luts)
    assert np.array_equal(decode_image(f), to_gray8(np.stack([t[x] for t in tables], axis=2), "RGB"))
    write_dicom(f, x, PhotometricInterpretation="PALETTE COLOR")  # no tables
    with pytest.raises(ImageReadError, match=re.escape(f"{f}: its PALETTE COLOR pixels cannot be made RGB")):
        decode_image(f)


@pytest.mark.skipif(not hasattr(pydicom, "pixels"), reason="written with pydicom 3's save_as(implicit_vr=...)")
def test_a_dicom_file_without_file_meta_is_decoded_in_the_encoding_of_its_header(tmp_path):
    ds = pydicom.dcmread(write_dicom(tmp_path / "meta.dcm", ramp16()))
    del ds.file_meta
    ds.save_as(tmp_path / "bare.dcm", implicit_vr=True, little_endian=True)
    assert "TransferSyntaxUID" not in pydicom.dcmread(tmp_path / "bare.dcm", force=True).file_meta
    assert np.array_equal(decode_image(tmp_path / "bare.dcm"), decode_image(tmp_path / "meta.dcm"))


def patched(path, old: bytes, new: bytes) -> Path:
    """The file with the one occurrence of ``old`` replaced (a header value pydicom would not write)."""
    data = Path(path).read_bytes()
    assert data.count(old) == 1, old
    Path(path).write_bytes(data.replace(old, new))
    return Path(path)


@pytest.mark.parametrize("case, what", [
    ("frames", "a multi-frame DICOM (3 frames, 0 to 2): vertkp reads one radiograph per file"),
    ("no_pixels", "no pixel data (7FE0,0010): its SOP class is Secondary Capture Image Storage, but its pixels "
                  "were left out"),
    ("32bit", "32 bits stored in 32 allocated (Secondary Capture Image Storage): vertkp reads 8 to 16-bit DICOM"),
    ("no_photometric", "its PhotometricInterpretation (0028,0004) is absent: nothing says whether low values are "
                       "black (MONOCHROME2) or white (MONOCHROME1)"),
    ("no_rows", "its header lacks Rows (0028,0010), BitsStored (0028,0101): nothing says how its pixel data forms"),
    ("bad_frames", "its NumberOfFrames (0028,0008) is '1A', not an integer: the header is damaged"),
    ("bad_slope", "its RescaleSlope (0028,1053) is '2x', not a number: the header is damaged"),
    ("hsv", "PhotometricInterpretation HSV is not one vertkp reads (MONOCHROME1, MONOCHROME2, RGB, "),
    ("rgb_one_sample", "PhotometricInterpretation RGB, but SamplesPerPixel 1: the header contradicts itself"),
])
@pytest.mark.filterwarnings("ignore:Invalid value for VR")  # pydicom's, on reading the broken values
def test_refused_dicom_files_name_the_file_and_the_reason(tmp_path, case, what):
    f = tmp_path / f"{case}.dcm"
    if case == "frames":
        write_dicom(f, np.zeros((3, 8, 8), np.uint16))
    elif case == "no_pixels":
        write_dicom(f, np.zeros((8, 8), np.uint8), PixelData=None)
    elif case == "32bit":
        write_dicom(f, np.zeros((8, 8), np.uint32))
    elif case in ("no_photometric", "no_rows"):
        write_dicom(f, np.zeros((8, 8), np.uint16), **({"PhotometricInterpretation": None} if case == "no_photometric"
                                                        else {"Rows": None, "BitsStored": None}))
    elif case == "bad_frames":
        patched(write_dicom(f, np.zeros((8, 8), np.uint16), NumberOfFrames=1), b"IS\x02\x001 ", b"IS\x02\x001A")
    elif case == "bad_slope":
        patched(write_dicom(f, np.zeros((8, 8), np.uint16), RescaleSlope="2", RescaleIntercept=0),
                b"DS\x02\x002 ", b"DS\x02\x002x")
    elif case == "hsv":
        write_dicom(f, np.zeros((8, 8, 3), np.uint8), photometric="HSV")
    else:
        write_dicom(f, np.zeros((8, 8), np.uint8), PhotometricInterpretation="RGB")
    for read in (decode_image, image_size, read_xray, decode_thumbnail):
        with pytest.raises(ImageReadError, match=re.escape(f"{f}: ") + ".*" + re.escape(what)):
            read(f)


def test_a_multi_frame_error_says_how_to_save_one_frame_and_the_hint_works(tmp_path):
    frames = np.stack([ramp16(), 65535 - ramp16(), ramp16() // 2])
    f = write_dicom(tmp_path / "film.dcm", frames)
    with pytest.raises(ImageReadError) as e:
        decode_image(f)
    command = re.search(r'python -c "(.*)"$', str(e.value)).group(1)
    assert command.endswith(f"PIL.Image.fromarray(pydicom.dcmread({str(f)!r}).pixel_array[0]).save('frame0.png')")
    exec(command.replace("'frame0.png'", repr(str(tmp_path / "frame0.png"))), {})
    cv2.imwrite(str(tmp_path / "expected.png"), frames[0])
    assert np.array_equal(decode_image(tmp_path / "frame0.png"), decode_image(tmp_path / "expected.png"))


def test_truncated_dicom_files_are_errors(tmp_path):
    data = write_dicom(tmp_path / "full.dcm", ramp16()).read_bytes()
    (tmp_path / "half.dcm").write_bytes(data[: len(data) // 2])  # in the pixel data
    with pytest.raises(ImageReadError, match=rf"{tmp_path / 'half.dcm'}: the DICOM pixel data cannot be decoded"):
        decode_image(tmp_path / "half.dcm")
    (tmp_path / "head.dcm").write_bytes(data[:300])  # in the header
    with pytest.raises(ImageReadError, match=rf"{tmp_path / 'head.dcm'}: "):
        decode_image(tmp_path / "head.dcm")
    (tmp_path / "empty.dcm").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty"):
        image_size(tmp_path / "empty.dcm")


def test_a_compressed_syntax_without_its_decoder_says_what_to_install(tmp_path, monkeypatch):
    f = write_dicom(tmp_path / "jls.dcm", np.zeros((8, 8), np.uint16), syntax=JPEGLSLossless,
                    pixel_data=encapsulate([b"\xff\xd8 not really JPEG-LS \xff\xd9"]))
    try:  # make the decoder missing where the dicom extra is installed
        decoder = pydicom.pixels.get_decoder(JPEGLSLossless)
        monkeypatch.setattr(decoder, "_available", {})
    except AttributeError:  # pydicom 2
        for handler in pydicom.config.pixel_data_handlers:
            if handler.supports_transfer_syntax(JPEGLSLossless):
                monkeypatch.setattr(handler, "is_available", lambda: False)
    with pytest.raises(ImageReadError) as e:
        decode_image(f)
    msg = str(e.value)
    assert msg.startswith(f"{f}: its pixel data is compressed (JPEG-LS Lossless Image Compression)")
    assert "pylibjpeg-libjpeg" in msg and "pip install 'vertkp[dicom]'" in msg


def test_rle_compressed_dicom_decodes_without_the_extra(tmp_path):
    a = ramp16(12, 10)
    f = write_dicom(tmp_path / "plain.dcm", a)
    ds = pydicom.dcmread(f)
    ds.compress(RLELossless)
    save_dicom(ds, str(tmp_path / "rle.dcm"))
    assert pydicom.dcmread(tmp_path / "rle.dcm").file_meta.TransferSyntaxUID == RLELossless
    assert np.array_equal(decode_image(tmp_path / "rle.dcm"), decode_image(f))


def test_dicom_files_are_told_by_name_or_by_the_preamble(tmp_path):
    a = ramp16(10, 12)
    write_dicom(tmp_path / "IM0001", a)
    write_dicom(tmp_path / "1.2.840.113619.2.5", a)  # a UID file name: its "suffix" is ".5"
    cv2.imwrite(str(tmp_path / "x.png"), a)
    (tmp_path / "notes").write_text("DICM at the start is not the preamble " * 8)
    assert is_dicom_file(tmp_path / "IM0001") and is_dicom_file(tmp_path / "1.2.840.113619.2.5")
    assert is_dicom_file(tmp_path / "named.DCM")  # by name, before it exists
    assert not is_dicom_file(tmp_path / "x.png") and not is_dicom_file(tmp_path / "notes")
    png = decode_image(tmp_path / "x.png")
    assert np.array_equal(decode_image(tmp_path / "IM0001"), png)
    assert np.array_equal(decode_image(tmp_path / "1.2.840.113619.2.5"), png)


# ---- spacing and identifiers ----------------------------------------------------------------

@pytest.mark.parametrize("attrs, expected", [
    ({"PixelSpacing": [0.139, 0.139]}, DicomSpacing(0.139, "PixelSpacing")),
    ({"PixelSpacing": [0.2, 0.2], "ImagerPixelSpacing": [0.3, 0.3]}, DicomSpacing(0.2, "PixelSpacing")),
    ({"ImagerPixelSpacing": [0.18, 0.18]}, DicomSpacing(0.18, "ImagerPixelSpacing")),
    ({"ImagerPixelSpacing": [0.18, 0.18], "EstimatedRadiographicMagnificationFactor": 1.2},
     DicomSpacing(0.15, "ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor")),
    ({"PixelSpacing": [0.1430, 0.1432]}, DicomSpacing(0.1431, "PixelSpacing")),  # within 1%: the mean
    ({"PixelSpacing": [0.0, 0.0], "ImagerPixelSpacing": [0.25, 0.25]}, DicomSpacing(0.25, "ImagerPixelSpacing")),
    ({}, DicomSpacing(None, None)),
])
def test_pixel_spacing_comes_from_the_header(tmp_path, attrs, expected):
    f = write_dicom(tmp_path / "s.dcm", np.zeros((4, 4), np.uint8), **attrs)
    got = dicom_pixel_spacing(f)
    assert got.source == expected.source and got.note == ""
    assert got.mm == pytest.approx(expected.mm, rel=1e-12) if expected.mm else got.mm is None


def test_pixels_that_are_not_square_give_no_spacing_and_say_why(tmp_path):
    f = write_dicom(tmp_path / "a.dcm", np.zeros((4, 4), np.uint8), PixelSpacing=[0.1, 0.2])
    got = dicom_pixel_spacing(f)
    assert (got.mm, got.source) == (None, None)
    assert got.note.startswith("DICOM PixelSpacing is 0.1 mm between rows and 0.2 mm between columns")


def test_identifiers_are_read_only_by_dicom_ids(tmp_path):
    f = write_dicom(tmp_path / "a.dcm", np.zeros((4, 4), np.uint8))
    ids = dicom_ids(f)
    assert ids["PatientName"] == PATIENT and ids["PatientID"] == "ID-8675309" and ids["StudyDate"] == "20240131"
    assert "PatientSex" not in ids  # absent fields are left out


def counted_reads(monkeypatch) -> list:
    """The files pydicom parses from now on (every DICOM read of vertkp is ``pydicom.dcmread``)."""
    read, reads = pydicom.dcmread, []

    def counting(fp, *args, **kwargs):
        reads.append(Path(fp).name)
        return read(fp, *args, **kwargs)

    monkeypatch.setattr(pydicom, "dcmread", counting)
    return reads


def test_load_image_parses_a_dicom_once_for_its_pixels_and_its_record(tmp_path, monkeypatch):
    f = write_dicom(tmp_path / "s.dcm", xray16(), ImagerPixelSpacing=[0.3, 0.3],
                    EstimatedRadiographicMagnificationFactor=1.5)
    skewed = write_dicom(tmp_path / "k.dcm", xray16(), PixelSpacing=[0.1, 0.2])
    png = tmp_path / "x.png"
    cv2.imwrite(str(png), xray16())
    reads = counted_reads(monkeypatch)
    image, record = load_image(f, "RGB")
    assert reads == ["s.dcm"] and np.array_equal(image, decode_image(f))
    assert record == ImageRecord(pytest.approx(0.2),
                                 "dicom:ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor")
    record = load_image(f, keep_dicom_ids=True)[1]
    assert record.dicom_ids["PatientName"] == PATIENT and record.dicom_ids["PatientID"] == "ID-8675309"
    record = load_image(skewed)[1]
    assert record.pixel_spacing is None and record.pixel_spacing_source is None and record.dicom_ids is None
    assert len(record.notes) == 1 and "not square" in record.notes[0]
    assert load_image(png)[1] == ImageRecord()
    assert reads == ["s.dcm", "s.dcm", "s.dcm", "k.dcm"]  # decode_image's, then one per load_image


# ---- prediction ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def random_predictor_cfg():
    pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)
    from vertkp.config import build_cfg

    config = str(REPO / "configs" / "quick_schedules" / "kprcnn_r50_instant_test.yaml")
    return build_cfg(config, ["MODEL.DEVICE", "cpu", "INPUT.MIN_SIZE_TEST", "96", "INPUT.MAX_SIZE_TEST", "160"])


@pytest.fixture(scope="module")
def predictor(random_predictor_cfg, one_torch_thread):
    import torch

    from vertkp.inference import VertebraPredictor

    torch.manual_seed(0)
    return VertebraPredictor.from_cfg(random_predictor_cfg, score_threshold=0.0, facing="left")


def xray16(h=96, w=128):
    """A 16-bit picture with some structure (bright blocks on a gradient), black and white pixels included."""
    yy, xx = np.mgrid[0:h, 0:w]
    a = (xx * 200 + yy * 50).astype(np.float64)
    for k in range(4):
        a[10 + 20 * k:26 + 20 * k, 40 + 6 * k:90 + 6 * k] += 30000
    a[:2], a[-2:] = 0, 65535
    return np.clip(a, 0, 65535).astype(np.uint16)


def test_a_monochrome1_dicom_gives_the_same_model_input_and_corners_as_the_same_pixels_in_a_png(predictor, tmp_path):
    shown = xray16()
    write_dicom(tmp_path / "m1.dcm", 65535 - shown, photometric="MONOCHROME1")
    cv2.imwrite(str(tmp_path / "shown.png"), shown)
    (dcm, _), (png, _) = predictor.load(tmp_path / "m1.dcm"), predictor.load(tmp_path / "shown.png")
    assert dcm.shape == png.shape == (96, 128)
    assert np.array_equal(predictor.prepare(dcm)["image"].numpy(), predictor.prepare(png)["image"].numpy())
    a, b = predictor(tmp_path / "m1.dcm"), predictor(tmp_path / "shown.png")
    assert len(a.vertebrae) > 0
    assert np.array_equal(a.corners, b.corners) and np.array_equal(a.scores, b.scores)


def test_the_predictor_uses_a_dicom_files_spacing_unless_given_one(predictor, tmp_path):
    f = write_dicom(tmp_path / "s.dcm", xray16(), PixelSpacing=[0.2, 0.2])
    res = predictor(f)
    assert (res.pixel_spacing, res.pixel_spacing_source) == (0.2, "dicom:PixelSpacing")
    assert res.dicom_ids is None and "dicom_ids" not in res.as_dict()
    assert all(p.disc_height_anterior_mm is not None for p in res.pairs if p.disc_height_anterior_px is not None)
    res = predictor(f, pixel_spacing=0.3)
    assert (res.pixel_spacing, res.pixel_spacing_source) == (0.3, "given")
    res = predictor(write_dicom(tmp_path / "a.dcm", xray16(), PixelSpacing=[0.1, 0.2]))
    assert res.pixel_spacing is None and res.pixel_spacing_source is None
    assert any("not square" in n for n in res.notes)
    png = tmp_path / "x.png"
    cv2.imwrite(str(png), xray16())
    assert predictor(png).pixel_spacing_source is None


def test_predicting_a_dicom_parses_it_once_and_what_is_given_wins_over_its_header(
        predictor, random_predictor_cfg, tmp_path, monkeypatch):
    from vertkp.inference import VertebraPredictor

    f = write_dicom(tmp_path / "s.dcm", xray16(), PixelSpacing=[0.2, 0.2])
    skewed = write_dicom(tmp_path / "k.dcm", xray16(), PixelSpacing=[0.1, 0.2])
    reads = counted_reads(monkeypatch)
    res = predictor(f)
    assert reads == ["s.dcm"]
    assert (res.pixel_spacing, res.pixel_spacing_source) == (0.2, "dicom:PixelSpacing")
    batch = predictor.predict_batch([f, skewed, skewed, f], batch_size=2, records=[
        ImageRecord(view="ap"), None, ImageRecord(0.3, "--gt"), ImageRecord(0.3, data_facing="right")])
    assert reads == ["s.dcm", "s.dcm", "k.dcm", "k.dcm", "s.dcm"]
    assert [(r.pixel_spacing, r.pixel_spacing_source, r.view) for r in batch] == [
        (0.2, "dicom:PixelSpacing", "ap"), (None, None, "lateral"), (0.3, "--gt", "lateral"),
        (0.3, "given", "lateral")]
    assert [any("not square" in n for n in r.notes) for r in batch] == [False, True, False, False]
    # the predictor's spacing wins over the header's, the call's over both
    given = VertebraPredictor.from_cfg(random_predictor_cfg, score_threshold=0.0, facing="auto", pixel_spacing=0.25,
                                       keep_dicom_ids=True)
    reads.clear()
    res, right = given(skewed), given(f, pixel_spacing=0.3, data_facing="right")
    assert reads == ["k.dcm", "s.dcm"]
    assert (res.pixel_spacing, res.pixel_spacing_source) == (0.25, "given")
    assert not any("not square" in n for n in res.notes)
    assert res.dicom_ids["PatientID"] == "ID-8675309"
    assert (right.pixel_spacing, right.pixel_spacing_source) == (0.3, "given")
    assert (right.facing, right.facing_source) == ("right", "data")


@pytest.fixture
def cli_predictor(random_predictor_cfg, monkeypatch, one_torch_thread):
    """``vertkp predict``'s main with the randomly initialised instant model (no checkpoint file)."""
    import torch

    import vertkp.inference.cli as cli
    from vertkp.inference import VertebraPredictor

    def build(config_file, weights, device=None, **kwargs):
        torch.manual_seed(0)
        return VertebraPredictor.from_cfg(random_predictor_cfg, **kwargs)

    monkeypatch.setattr(cli, "VertebraPredictor", build, raising=False)
    return cli.main


def _predict(main, tmp_path, inputs, out, *extra):
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"")
    config = REPO / "configs" / "quick_schedules" / "kprcnn_r50_instant_test.yaml"
    return run_main(main, "--config-file", config, "--weights", weights, "--input", *inputs, "--output", out,
                    "--score-threshold", "0.0", "--facing", "left", "--no-progress", *extra)


def test_predict_reads_dicom_folders_records_spacing_skips_broken_files_and_writes_no_identifier(
        cli_predictor, tmp_path, monkeypatch):
    src = tmp_path / "xrays"
    (src / "sub").mkdir(parents=True)
    write_dicom(src / "a.dcm", xray16(), PixelSpacing=[0.2, 0.2])
    write_dicom(src / "sub" / "IM0001", xray16(), ImagerPixelSpacing=[0.3, 0.3],
                EstimatedRadiographicMagnificationFactor=1.5)
    cv2.imwrite(str(src / "c.png"), xray16())
    data = write_dicom(src / "broken.dcm", xray16()).read_bytes()
    (src / "broken.dcm").write_bytes(data[: len(data) // 2])
    write_dicom(src / "film.dcm", np.zeros((3, 8, 8), np.uint16))
    (src / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    reads = counted_reads(monkeypatch)
    r = _predict(cli_predictor, tmp_path, [src], out)
    assert r.returncode == 1, r.stdout + r.stderr  # some failed, the rest written
    assert sorted(reads) == ["IM0001", "a.dcm", "broken.dcm", "film.dcm"]  # each DICOM parsed once
    pred = json.loads((out / "predictions.json").read_text())
    got = {Path(p["image"]).name: (p["pixel_spacing"], p["pixel_spacing_source"]) for p in pred["images"]}
    assert got == {"a.dcm": (0.2, "dicom:PixelSpacing"),
                   "IM0001": (pytest.approx(0.2), "dicom:ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor"),
                   "c.png": (None, None)}
    failed = {Path(f["image"]).name: f["error"] for f in pred["failures"]}
    assert set(failed) == {"broken.dcm", "film.dcm"}  # notes.txt is not an image: not looked at
    assert "pixel data cannot be decoded" in failed["broken.dcm"] and "multi-frame" in failed["film.dcm"]
    assert f"skipped: {src / 'broken.dcm'}: " in r.stdout
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["IM0001.png", "a.png", "c.png"]
    assert all("dicom_ids" not in p for p in pred["images"])
    files = [f for f in out.rglob("*") if f.is_file()]
    assert {f.name for f in files} >= {"predictions.json", "report.csv", "coco_results.json"}
    for f in files:
        data = f.read_bytes()
        for secret in (PATIENT, PATIENT.split("^")[0], "ID-8675309", "19450704", "20240131"):
            assert secret.encode() not in data, f"{secret} is in {f}"
    # the overlay of a DICOM is the overlay of its pixels: nothing from the header is drawn
    assert np.array_equal(cv2.imread(str(out / "overlays" / "a.png")), cv2.imread(str(out / "overlays" / "c.png")))

    # the flag wins over the header; --keep-dicom-ids records the identifiers
    out2 = tmp_path / "out2"
    r = _predict(cli_predictor, tmp_path, [src / "a.dcm"], out2, "--pixel-spacing", "0.25", "--keep-dicom-ids")
    assert r.returncode == 0, r.stdout + r.stderr
    (image,) = json.loads((out2 / "predictions.json").read_text())["images"]
    assert (image["pixel_spacing"], image["pixel_spacing_source"]) == (0.25, "--pixel-spacing")
    assert image["dicom_ids"]["PatientName"] == PATIENT and image["dicom_ids"]["PatientID"] == "ID-8675309"


# ---- phantoms as DICOM -------------------------------------------------------------------------

def test_phantoms_format_dicom_writes_every_image_with_its_truth_spacing(tmp_path):
    from vertkp.phantoms.cli import main

    out = tmp_path / "set"
    r = run_main(main, "--layout", "buu-lspine", "--output", out, "--num-images", "2", "--seed", "0",
                 "--image-size", "256", "--format", "dicom", "--no-progress")
    assert r.returncode == 0, r.stdout + r.stderr
    truth = json.loads((out / "phantom_truth.json").read_text())
    dicom = tmp_path / "set_dicom"
    assert f"DICOM: 2 files in {dicom} (2 with PixelSpacing)" in r.stdout
    assert sorted(str(p.relative_to(dicom)) for p in dicom.rglob("*.dcm")) == \
        sorted(str(Path(rec["file_name"]).with_suffix(".dcm")) for rec in truth["images"])
    assert not list(out.rglob("*.dcm"))  # the set keeps the real dataset's layout
    for rec in truth["images"]:
        f = dicom / Path(rec["file_name"]).with_suffix(".dcm")
        assert dicom_pixel_spacing(f) == DicomSpacing(rec["pixel_spacing"], "PixelSpacing")
        assert np.array_equal(decode_image(f), read_xray(out / rec["file_name"]))
        assert dicom_ids(f).keys() == {"StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"}
    again = run_main(main, "--layout", "buu-lspine", "--output", tmp_path / "other", "--num-images", "2",
                     "--seed", "0", "--image-size", "256", "--format", "dicom", "--no-progress")
    assert again.returncode == 0
    first = sorted(dicom.rglob("*.dcm"))
    assert [p.read_bytes() for p in first] == [(tmp_path / "other_dicom" / p.relative_to(dicom)).read_bytes()
                                               for p in first]  # same set, same bytes
    r = run_main(main, "--layout", "buu-lspine", "--output", tmp_path / "p.zip", "--archive", "--num-images", "2",
                 "--seed", "0", "--format", "dicom")
    assert r.returncode == 2 and "not with --archive" in r.stderr
    (tmp_path / "new_dicom").mkdir()
    (tmp_path / "new_dicom" / "x").write_text("")
    r = run_main(main, "--layout", "buu-lspine", "--output", tmp_path / "new", "--num-images", "2", "--seed", "0",
                 "--format", "dicom")
    assert r.returncode == 2 and "new_dicom exists and is not empty" in r.stderr
    assert not (tmp_path / "new").exists()
