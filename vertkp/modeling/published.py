"""The initial weights with a public download: what ``vertkp download <name>`` fetches and where
the configs find them (torch-free: ``vertkp download``'s parser lists them; the conversion of a
timm checkpoint is ``vertkp.modeling.weights``).
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PublishedWeights", "PUBLISHED_WEIGHTS", "WEIGHTS_FOLDER", "timm_weights_name"]


# The folder (relative to the working folder) initial weights are downloaded to and configs name them in.
WEIGHTS_FOLDER = "weights"


def timm_weights_name(model: str) -> str:
    """The file name of timm ``model``'s converted ImageNet weights, as the configs name it
    (``WEIGHTS_FOLDER/<name>``) and ``vertkp convert-weights`` writes it by default."""
    return f"{model}_imagenet.pth"


@dataclass(frozen=True)
class PublishedWeights:
    """Initial weights with a public download.

    Attributes:
        url: what ``vertkp download`` fetches.
        file_name: the downloaded file's name in the weights folder.
        output: the detectron2 weights file the configs name (``weights/<output>``); equal to
            ``file_name`` when the download is one already.
        timm_model: the timm model of a timm checkpoint (converted into ``output``), or "".
        description: one line for ``--help``.
    """

    url: str
    file_name: str
    output: str
    timm_model: str
    description: str


# Name (vertkp download NAME) -> initial weights with a public download (vertkp.modeling.weights).
PUBLISHED_WEIGHTS = {
    "hrnet-w32-imagenet": PublishedWeights(
        url="https://huggingface.co/timm/hrnet_w32.ms_in1k/resolve/main/model.safetensors",
        file_name="hrnet_w32.ms_in1k.safetensors",
        output=timm_weights_name("hrnet_w32"),
        timm_model="hrnet_w32",
        description="timm's ImageNet HRNet-W32 (hrnet_w32.ms_in1k), converted for the HRNet configs",
    ),
    "mobilenetv4-conv-small-imagenet": PublishedWeights(
        url="https://huggingface.co/timm/mobilenetv4_conv_small.e2400_r224_in1k/resolve/main/model.safetensors",
        file_name="mobilenetv4_conv_small.e2400_r224_in1k.safetensors",
        output=timm_weights_name("mobilenetv4_conv_small"),
        timm_model="mobilenetv4_conv_small",
        description="timm's ImageNet MobileNetV4-Conv-Small (mobilenetv4_conv_small.e2400_r224_in1k), converted for "
                    "the light CPU config configs/kprcnn_mobilenetv4.yaml",
    ),
    "kprcnn-r50-coco": PublishedWeights(
        url="https://dl.fbaipublicfiles.com/detectron2/COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x/137849621/"
            "model_final_a6e10b.pkl",
        file_name="model_final_a6e10b.pkl",
        output="model_final_a6e10b.pkl",
        timm_model="",
        description="detectron2's COCO Keypoint R-CNN R50-FPN 3x (what the R50 configs' URL names), for offline use",
    ),
}
