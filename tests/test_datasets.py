"""Every dataset's spec (vertkp.data.datasets) is complete and consistent, and the commands and the
detectron2 registration take their datasets from the registry."""
import inspect
from dataclasses import fields
from pathlib import Path

import pytest

from tests.helpers import DETECTRON2_SKIP_REASON
from vertkp import convert
from vertkp.data import datasets
from vertkp.data.datasets import SPECS, DatasetSpec
from vertkp.data.raw import download
from vertkp.phantoms import cli as phantoms_cli

REGISTERED = ["spondylolisthesis_train", "spondylolisthesis_val", "spondylolisthesis_test",
              "buu_lspine_lateral_train", "buu_lspine_lateral_val", "buu_lspine_ap_train", "buu_lspine_ap_val"]


def _choices(parser, dest: str):
    return next(a for a in parser._actions if a.dest == dest).choices


def test_the_registry_holds_every_dataset_folder_under_its_command_line_name():
    assert list(SPECS) == ["spondylolisthesis", "buu-lspine"]  # user contracts
    here = Path(datasets.__file__).parent
    assert {spec.phantom_writer.__module__.split(".")[-2] for spec in SPECS.values()} == {
        p.name for p in here.iterdir() if (p / "__init__.py").is_file()}  # each folder's spec is registered
    assert [n for spec in SPECS.values() for n in spec.registered] == REGISTERED


@pytest.mark.parametrize("name", list(SPECS))
def test_a_spec_is_complete_and_consistent(name):
    spec = SPECS[name]
    assert isinstance(spec, DatasetSpec) and spec.name == name and spec.title and spec.folder
    optional = {"published", "phantom_nested_folder", "access", "options", "bottom_level"}
    assert all(getattr(spec, f.name) not in (None, "", ()) for f in fields(spec) if f.name not in optional)
    assert bool(spec.access) == (spec.published is None)  # an unpublished dataset says how to get it
    if spec.published is not None:
        assert len(spec.published.sha256) == 64 and int(spec.published.sha256, 16) >= 0
    assert {"output", "skip_invalid", "progress", *spec.options} <= set(inspect.signature(spec.convert).parameters)
    parser = convert.build_parser()
    assert set(spec.options) <= set(vars(parser.parse_args(["--dataset", name, "--root", "x"])))  # each a flag
    # every registered COCO file is one a conversion writes, made by the flags the spec gives
    for json_file, flags in spec.registered.values():
        args = parser.parse_args(["--dataset", name, "--root", "x", *flags])
        folder = spec.coco_folder.format(**{o: getattr(args, o) for o in spec.options})
        assert Path(json_file).parent.as_posix() == folder and Path(json_file).stem in spec.splits
    assert spec.phantom_writer.__module__.startswith("vertkp.data.datasets.") and callable(spec.phantom_writer)
    assert spec.phantom_image_size >= 128


def test_the_commands_take_their_datasets_from_the_registry():
    assert _choices(convert.build_parser(), "dataset") == tuple(SPECS)
    assert _choices(phantoms_cli.build_parser(), "layout") == tuple(SPECS)
    assert set(SPECS) <= set(_choices(download.build_parser(), "dataset"))


def test_every_registered_name_is_in_detectron2s_catalog():
    pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from vertkp.data.loading import registration

    for spec in SPECS.values():
        for name, (json_file, _) in spec.registered.items():
            assert name in DatasetCatalog.list() and name in registration.DATASETS
            assert MetadataCatalog.get(name).json_file.endswith(f"{spec.folder}/{json_file}")
