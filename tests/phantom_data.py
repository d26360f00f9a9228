"""A tiny phantom dataset for the training tests, made once per test session.

``phantom_root()`` runs the real tools (``tools/make_phantoms.py --layout
spondylolisthesis`` then ``tools/convert_to_coco.py``) into a temporary
folder laid out as ``$VERTKP_DATASETS``: ``<root>/phantoms/coco/{train,val}.json``.
8 labelled images of 128 px (about 6 train, 2 val); the same folder is
reused by every test module of the session and removed at exit.
"""
import atexit
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NUM_IMAGES, IMAGE_SIZE, SEED = 8, 128, 0
_ROOT = []


def _run(tool, *args):
    r = subprocess.run([sys.executable, str(REPO / "tools" / f"{tool}.py"), *map(str, args)],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"{tool} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")


def phantom_root() -> Path:
    """The session's phantom datasets root (made on first call)."""
    if not _ROOT:
        root = Path(tempfile.mkdtemp(prefix="vertkp_phantoms_"))
        atexit.register(shutil.rmtree, root, True)
        folder = root / "phantoms"
        _run("make_phantoms", "--layout", "spondylolisthesis", "--out", folder, "--num-images", NUM_IMAGES,
             "--seed", SEED, "--image-size", IMAGE_SIZE, "--no-progress")
        _run("convert_to_coco", "--dataset", "spondylolisthesis", "--root", folder)
        _ROOT.append(root)
    return _ROOT[0]


def register_phantoms():
    """Register phantoms_{train,val} from ``phantom_root()`` in this process; returns the root."""
    from vertkp.data.registration import register_dataset

    root = phantom_root()
    for split in ("train", "val"):
        register_dataset(f"phantoms_{split}", root / "phantoms" / "coco" / f"{split}.json", root / "phantoms")
    return root
