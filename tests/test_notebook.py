"""notebooks/quickstart.ipynb: committed without outputs, and runs top to bottom in its quick mode
(VERTKP_NOTEBOOK_QUICK=1) with every file and figure it promises."""
import json
from pathlib import Path

import pytest

from tests.helpers import DETECTRON2_SKIP_REASON

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "quickstart.ipynb"
CLEAR = "jupyter nbconvert --clear-output --inplace notebooks/quickstart.ipynb"
PLOTS = ("sdr_curve.png", "per_corner_error.png", "error_histogram.png", "grade_confusion.png")
# ground truth overlays, training curve, prediction overlays, the 4 evaluation plots
MIN_FIGURES = 3 + len(PLOTS)


def test_notebook_is_committed_as_valid_v4_without_outputs():
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOK, as_version=nbformat.NO_CONVERT)
    assert nb.nbformat == 4
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    dirty = [k for k, c in enumerate(code) if c.outputs or c.execution_count is not None]
    assert not dirty, f"code cells {dirty} carry outputs or execution counts; clear them: {CLEAR}"
    for parameter in ("VERTKP_NOTEBOOK_WORK", "VERTKP_NOTEBOOK_QUICK", "WEIGHTS = None"):
        assert parameter in code[0].source, f"the first code cell (parameters) lost {parameter}"


@pytest.mark.slow
def test_notebook_runs_top_to_bottom_in_quick_mode(tmp_path, monkeypatch):
    pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")

    work = tmp_path / "work"
    # the kernel is started with this process's environment
    for key, value in {"VERTKP_NOTEBOOK_QUICK": "1", "VERTKP_NOTEBOOK_WORK": str(work), "OMP_NUM_THREADS": "1",
                       "MPLBACKEND": "Agg"}.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=600,
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    try:
        client.execute()
    finally:
        nbformat.write(nb, tmp_path / "executed.ipynb")  # to look at when it fails

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) >= MIN_FIGURES
    tables = [o for o in outputs if "<table>" in o.get("data", {}).get("text/html", "")]
    assert len(tables) >= 4  # slip report, flagged images, headline metrics, GT vs predicted slip

    val = json.loads((work / "data" / "phantoms" / "coco" / "val.json").read_text())
    assert (work / "train" / "config.yaml").is_file()  # quick mode trains in the notebook
    predictions = json.loads((work / "predictions" / "predictions.json").read_text())
    assert len(predictions["images"]) == len(val["images"]) > 0
    assert (work / "predictions" / "report.csv").is_file()
    assert isinstance(json.loads((work / "predictions" / "coco_results.json").read_text()), list)
    metrics = json.loads((work / "evaluation" / "metrics.json").read_text())
    assert metrics["n_images"] == len(val["images"])
    assert metrics["n_gt_vertebrae"] == len(val["annotations"]) > 0
    for plot in PLOTS:
        assert (work / "evaluation" / plot).is_file()
