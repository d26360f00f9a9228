"""vertkp's one image decoder (vertkp.data.imaging.images): windowing, colour, EXIF orientation, bad
files; and that conversion, training, evaluation and prediction see the same pixels and sizes."""
import json

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.helpers import DETECTRON2_SKIP_REASON, REPO
from tests.helpers.raw import mendeley_tree, quad
from vertkp.data.imaging.images import (ImageReadError, ImageRecord, decode_image, image_size, load_image,
                                        model_image, read_xray, to_gray8)

EXIF_ORIENTATION = 0x0112


def test_16bit_grey_is_windowed_between_percentiles_to_8bit(tmp_path):
    a = np.arange(100 * 100, dtype=np.uint16).reshape(100, 100) * 6  # 0 .. 59994, uniform
    cv2.imwrite(str(tmp_path / "a.png"), a)
    g = read_xray(tmp_path / "a.png")
    assert g.dtype == np.uint8 and g.shape == (100, 100)
    lo, hi = np.percentile(a.astype(float), (0.5, 99.5))
    expected = np.clip((a - lo) * 255.0 / (hi - lo), 0, 255).round().astype(np.uint8)
    assert np.array_equal(g, expected)
    assert np.array_equal(to_gray8(a), expected)  # same from an array
    assert np.array_equal(load_image(a)[0], expected)


def test_what_is_given_of_an_image_wins_over_what_its_file_says():
    dicom = ImageRecord(0.2, "dicom:PixelSpacing", dicom_ids={"PatientID": "x"})
    skewed = ImageRecord(notes=("pixels that are not square",))
    assert dicom.given(ImageRecord(0.3)) == ImageRecord(0.3, "given", dicom_ids={"PatientID": "x"})
    assert skewed.given(ImageRecord(0.3, "--pixel-spacing")) == ImageRecord(0.3, "--pixel-spacing")
    assert dicom.given(ImageRecord(view="ap", data_facing="left")) == ImageRecord(
        0.2, "dicom:PixelSpacing", "ap", "left", {"PatientID": "x"})
    assert skewed.given(ImageRecord(pixel_spacing_source="--gt")) == skewed  # no spacing given: the file's stays
    assert ImageRecord(view="ap").given(ImageRecord()) == ImageRecord(view="ap")
    assert load_image(np.zeros((4, 4), np.uint8))[1] == ImageRecord()


def test_colour_inputs_give_their_luminance_in_either_channel_order(tmp_path):
    rgb = np.zeros((8, 9, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    lum = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    assert np.array_equal(read_xray(tmp_path / "c.png"), lum)
    assert np.array_equal(decode_image(tmp_path / "c.png", "BGR"), rgb[..., ::-1])
    assert np.array_equal(to_gray8(rgb, "RGB"), lum)
    assert np.array_equal(to_gray8(rgb[..., ::-1], "BGR"), lum)
    rgba = np.concatenate([rgb, np.full((8, 9, 1), 7, np.uint8)], axis=2)
    Image.fromarray(rgba).save(tmp_path / "c4.png")
    assert np.array_equal(read_xray(tmp_path / "c4.png"), lum)
    grey = np.full((5, 6), 77, np.uint8)
    assert np.array_equal(to_gray8(grey[:, :, None]), grey)


def test_model_image_is_grey_replicated_unless_colour_is_asked_for():
    bgr = np.zeros((2, 3, 3), np.uint8)
    bgr[..., 2] = 200  # red in BGR
    g = model_image(bgr, "BGR")
    assert g.shape == (2, 3, 3) and (g == g[..., :1]).all() and g[0, 0, 0] == 60  # 0.299 * 200
    assert model_image(bgr[..., ::-1].copy(), "RGB")[0, 0, 0] == 60
    assert model_image(bgr[..., 0]).shape == (2, 3, 3)
    assert np.array_equal(model_image(bgr, "BGR", grayscale=False), bgr)


def _exif_jpeg(path, stored: np.ndarray, orientation: int):
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    Image.fromarray(stored).save(path, exif=exif.tobytes(), quality=95)


def test_exif_orientation_is_applied_and_sizes_follow_it(tmp_path):
    stored = np.zeros((96, 64), np.uint8)  # 64 wide, 96 high as stored
    stored[:10, :] = 255  # a bright top band as stored
    _exif_jpeg(tmp_path / "r.jpg", stored, 6)  # 6: shown rotated 90 degrees clockwise
    shown = read_xray(tmp_path / "r.jpg")
    assert shown.shape == (64, 96) and image_size(tmp_path / "r.jpg") == (96, 64)
    assert shown[:, -10:].mean() > 200 and shown[:, :10].mean() < 50  # the top band is on the right now
    _exif_jpeg(tmp_path / "n.jpg", stored, 1)
    assert read_xray(tmp_path / "n.jpg").shape == (96, 64) and image_size(tmp_path / "n.jpg") == (64, 96)


@pytest.mark.parametrize("content, what", [(b"", "empty"), (b"not an image", "not a readable image")])
def test_unreadable_files_are_named_errors(tmp_path, content, what):
    f = tmp_path / "x.png"
    f.write_bytes(content)
    with pytest.raises(ImageReadError, match=f"{f}.*{what}"):
        read_xray(f)
    with pytest.raises(ImageReadError, match=f"{f}.*{what}"):
        image_size(f)


def test_truncated_jpeg_is_an_error_not_a_half_grey_image(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(tmp_path / "f.jpg")
    data = (tmp_path / "f.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    for read in (read_xray, image_size):
        with pytest.raises(ImageReadError, match="t.jpg"):
            read(tmp_path / "t.jpg")
    with pytest.raises(ImageReadError, match="no such file"):
        read_xray(tmp_path / "missing.png")


def test_conversion_training_and_prediction_see_the_same_pixels_and_sizes(tmp_path):
    """An EXIF-rotated JPEG and a 16-bit PNG: the COCO sizes, the training mapper's and the test
    mapper's images and the predictor's model input are one and the same."""
    pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)
    import torch

    from vertkp.config import build_cfg
    from vertkp.data.datasets.spondylolisthesis import convert_spondylolisthesis
    from vertkp.data.loading.mapper import VertebraDatasetMapper
    from vertkp.data.loading.registration import register_dataset
    from vertkp.inference import VertebraPredictor

    root = tmp_path / "ds"
    shown = (64, 96)  # (height, width) as shown, after the EXIF rotation
    items = [("train", "exif", "json", [quad(48, 32, 30, 20)]), ("train", "deep", "json", [quad(40, 30, 30, 20)])]
    mendeley_tree(root, items, size=96)
    images = root / "Dataset/Train/Keypointrcnn_data/images/train"
    rng = np.random.default_rng(0)
    (images / "exif.jpg").unlink()
    (images / "deep.jpg").unlink()
    _exif_jpeg(images / "exif.jpg", rng.integers(0, 255, (96, 64), dtype=np.uint8), 6)
    deep = (rng.integers(0, 65535, (64, 96)).astype(np.uint16))
    cv2.imwrite(str(images / "deep.png"), deep)
    convert_spondylolisthesis(root, progress=False)
    coco = json.loads((root / "coco" / "train.json").read_text())
    assert {im["file_name"].rsplit("/", 1)[1]: (im["height"], im["width"]) for im in coco["images"]} == {
        "exif.jpg": shown, "deep.png": shown}

    register_dataset("vertkp_images_test", root / "coco" / "train.json", root)
    from detectron2.data import DatasetCatalog

    dicts = DatasetCatalog.get("vertkp_images_test")
    config = str(REPO / "configs" / "quick_schedules" / "kprcnn_r50_instant_test.yaml")
    cfg = build_cfg(config, ["DATASETS.TRAIN", "('vertkp_images_test',)", "INPUT.MIN_SIZE_TRAIN", "(64,)",
                             "INPUT.MIN_SIZE_TEST", "64", "INPUT.ROTATION.ENABLED", "False", "INPUT.CROP.ENABLED",
                             "False", "INPUT.RANDOM_FLIP", "none", "INPUT.INTENSITY.ENABLED", "False",
                             "MODEL.DEVICE", "cpu"])
    train_mapper, test_mapper = VertebraDatasetMapper(cfg, is_train=True), VertebraDatasetMapper(cfg, is_train=False)
    torch.manual_seed(0)
    predictor = VertebraPredictor.from_cfg(cfg)
    for d in dicts:
        expected = torch.as_tensor(np.repeat(read_xray(d["file_name"])[None], 3, axis=0))
        assert tuple(expected.shape[1:]) == shown == (d["height"], d["width"])
        assert torch.equal(train_mapper(d)["image"], expected)
        assert torch.equal(test_mapper(d)["image"], expected)
        assert torch.equal(predictor.prepare(predictor.load(d["file_name"])[0])["image"], expected)
