"""Initial weights the detectron2 way: one ``MODEL.WEIGHTS`` file, made once, never fetched at build.

Building a model (``build_model``) makes random weights and touches no network;
the weights come afterwards from ``MODEL.WEIGHTS``, a file or an explicit URL,
through detectron2's checkpointer. A checkpoint of another library is converted
once into that form (as detectron2's ``tools/convert-torchvision-to-d2.py`` does
for torchvision): :func:`convert_timm_checkpoint` turns a timm HRNet checkpoint
into a detectron2 weights file whose keys are the model's
(``backbone.bottom_up.body.<timm key>``).

``vertkp.modeling.published.PUBLISHED_WEIGHTS`` names the initial weights ``vertkp
download`` can fetch (the only command besides a user-named weights URL that
touches the network), and the local file a config names for each
(``weights/...``, relative to the working folder, as ``datasets/`` and
``output/`` are).

:func:`load_trained_weights` loads a trained model for prediction and refuses weights
that do not fit it. Everything else here needs torch and timm, not detectron2
(``vertkp.modeling`` imports its detectron2 parts only where detectron2 is
installed): ``vertkp convert-weights`` and ``vertkp download`` work without it.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch

from .published import PUBLISHED_WEIGHTS, WEIGHTS_FOLDER, PublishedWeights
from ..files import atomic_open

__all__ = ["D2_TIMM_PREFIX", "WeightsError", "read_state_dict", "timm_feature_keys", "timm_to_detectron2",
           "convert_timm_checkpoint", "timm_features_kwargs", "fetch_hint", "check_weights", "fetching",
           "load_trained_weights"]

# Where the timm module sits in vertkp's model: FPN.bottom_up = TimmBackbone, .body = timm.
D2_TIMM_PREFIX = "backbone.bottom_up.body."


class WeightsError(FileNotFoundError):
    """Weights that cannot be read, found or fetched; the message says how to get them."""


def read_state_dict(path) -> dict:
    """{name: tensor} of a checkpoint file (.safetensors, or a torch file holding the dict itself,
    or under "state_dict" / "model"); a "module." prefix (DataParallel) is removed.

    Raises:
        WeightsError: missing, or not a checkpoint.
    """
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"{p}: no such file")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(p))
        else:
            sd = torch.load(str(p), map_location="cpu", weights_only=True)
            for key in ("state_dict", "model"):
                if isinstance(sd, dict) and isinstance(sd.get(key), dict):
                    sd = sd[key]
    except Exception as e:  # torch and safetensors raise many types for a file that is not theirs
        raise WeightsError(f"{p}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise WeightsError(f"{p}: not a checkpoint of named tensors")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}


def timm_features_kwargs(name: str, feature_location: str = "") -> dict:
    """The keyword arguments of ``timm.create_model`` for the ``features_only`` model vertkp's
    timm backbone builds: HRNet always gets its ``feature_location`` (timm's default for it is
    "incre", vertkp's ""), any other model only a non-empty one (most take none)."""
    kwargs = dict(pretrained=False, features_only=True)
    if feature_location or name.startswith("hrnet"):
        kwargs["feature_location"] = feature_location
    return kwargs


def timm_feature_keys(name: str, feature_location: str = "") -> Dict[str, Tuple[int, ...]]:
    """{key: shape} of the state dict of timm's ``features_only`` model ``name`` (random
    weights, built offline), the keys vertkp's timm backbone loads."""
    import timm

    model = timm.create_model(name, **timm_features_kwargs(name, feature_location))
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def timm_to_detectron2(state_dict: dict, expected: Dict[str, Tuple[int, ...]], source: str = "<state dict>",
                       prefix: str = D2_TIMM_PREFIX) -> dict:
    """The tensors of a timm checkpoint under the names of vertkp's model.

    Args:
        state_dict: {timm key: tensor} of the classification (or features) model.
        expected: {timm key: shape} the backbone needs (:func:`timm_feature_keys`); other keys
            (the classifier) are left out.
        source: the checkpoint's name, for errors.
        prefix: where the timm module sits in the detectron2 model.

    Returns:
        {prefix + key: tensor} for every expected key.

    Raises:
        WeightsError: a needed key is missing, or has another shape (another model).
    """
    missing = [k for k in expected if k not in state_dict]
    if missing:
        raise WeightsError(f"{source} lacks {len(missing)} of the {len(expected)} weights the backbone needs "
                           f"(first: {missing[0]}): is it a checkpoint of this timm model? Give --model the "
                           "model it was saved from")
    wrong = [k for k, shape in expected.items() if tuple(state_dict[k].shape) != shape]
    if wrong:
        k = wrong[0]
        raise WeightsError(f"{source}: {len(wrong)} weights have other shapes than the model's (first: {k}, "
                           f"{tuple(state_dict[k].shape)} instead of {expected[k]}): another width of the model?")
    return {prefix + k: state_dict[k].detach().clone().contiguous() for k in expected}


def convert_timm_checkpoint(source, output, name: str = "hrnet_w32", feature_location: str = "") -> dict:
    """Write a detectron2 weights file (``MODEL.WEIGHTS``) from a timm checkpoint file.

    The file is a torch dict {"model": {key: tensor}, "__author__": ..., "matching_heuristics":
    False}, written atomically (``vertkp.files.atomic_open``), so ``output`` is whole or absent.

    Returns:
        {"tensors": number written, "left_out": number of source keys not needed}.

    Raises:
        WeightsError: the source is missing, not a checkpoint, or of another model.
    """
    sd = read_state_dict(source)
    converted = timm_to_detectron2(sd, timm_feature_keys(name, feature_location), str(source))
    with atomic_open(os.path.realpath(output), "wb") as f:  # realpath: through a link to a folder not made yet
        torch.save({"model": converted, "__author__": f"timm {name} ({Path(source).name}), converted by vertkp",
                    "matching_heuristics": False}, f)
    return {"tensors": len(converted), "left_out": len(sd) - len(converted)}


def _is_url(weights: str) -> bool:
    return "://" in weights


def _published_for(weights: str) -> Optional[Tuple[str, PublishedWeights]]:
    name = Path(weights).name
    return next(((k, w) for k, w in PUBLISHED_WEIGHTS.items() if name in (w.output, w.file_name)), None)


def fetch_hint(weights: str) -> str:
    """What to run to get ``weights`` (a path or URL) on a machine without network."""
    known = _published_for(weights)
    if known:
        key, w = known
        get = f"`vertkp download {key}` (once, with network; it writes {WEIGHTS_FOLDER}/{w.output})"
        if w.timm_model:
            get += (f", or copy timm's {w.timm_model} checkpoint here and run `vertkp convert-weights FILE "
                    f"--model {w.timm_model} --output {WEIGHTS_FOLDER}/{w.output}`")
        return f"get it with {get}, then set MODEL.WEIGHTS to that file"
    return ("copy the file onto this machine and set MODEL.WEIGHTS to its path; MODEL.WEIGHTS \"\" starts from "
            "random weights (train with GroupNorm then, as the phantom configs do)")


def check_weights(weights: str) -> None:
    """Raise :class:`WeightsError` (saying how to get them) when ``MODEL.WEIGHTS`` names a local
    file that is not there; "" and URLs pass (a URL is fetched when loaded: see :func:`fetching`)."""
    if not weights or _is_url(weights) or os.path.isfile(weights):
        return
    what = "is a folder, not a file" if os.path.isdir(weights) else "does not exist"
    raise WeightsError(f"MODEL.WEIGHTS {weights} {what}: {fetch_hint(weights)}")


@contextmanager
def fetching(weights: str):
    """Around loading ``weights``: a URL that cannot be fetched (offline, HTTP error) raises
    :class:`WeightsError` saying how to get the file onto this machine, not urllib's traceback."""
    try:
        yield
    except OSError as e:
        if not _is_url(weights) or isinstance(e, WeightsError):
            raise
        raise WeightsError(f"could not fetch MODEL.WEIGHTS {weights} ({e}): {fetch_hint(weights)}") from None


def load_trained_weights(model, weights: str) -> None:
    """Load a trained model's ``weights`` (a file or URL) into ``model`` (vertkp's detectron2
    model), refusing what does not fit it instead of predicting with random tensors.

    Raises:
        WeightsError: a missing file, or a URL that cannot be fetched (:func:`check_weights`,
            :func:`fetching`).
        ValueError: a local file that is not a checkpoint, or a checkpoint that leaves some of the
            model's tensors unloaded (missing, or of another shape: another model or config).
    """
    from detectron2.checkpoint import DetectionCheckpointer  # the only detectron2 use of this module

    class FitCheckpointer(DetectionCheckpointer):
        """Keeps what did not fit (``incompatible``) and logs it only when nothing is missing."""

        incompatible = None

        def _log_incompatible_keys(self, incompatible) -> None:
            self.incompatible = incompatible
            if not incompatible.missing_keys:  # else refused below, in one line
                super()._log_incompatible_keys(incompatible)

    check_weights(weights)
    checkpointer = FitCheckpointer(model)
    with fetching(weights):
        try:
            checkpointer.load(weights)
        except Exception as e:  # torch.load and pickle raise many types for a file that is not theirs
            if _is_url(weights):  # fetching() says what went wrong
                raise
            detail = next(iter(str(e).strip().splitlines()), "").split(". ")[0][:120]  # its first sentence
            raise ValueError(f"weights {weights} cannot be loaded as a checkpoint ({type(e).__name__}"
                             f"{': ' + detail if detail else ''}): give the model_final.pth or model_best.pth "
                             "a vertkp train run wrote") from None
    missing = list(checkpointer.incompatible.missing_keys) if checkpointer.incompatible else []
    if missing:
        raise ValueError(f"weights {weights} do not fit the config's model: {len(missing)} of its "
                         f"{len(model.state_dict())} tensors are missing from them or of another shape (first: "
                         f"{missing[0]}); were they trained with another config? Give the config file of the run "
                         "that wrote them")
