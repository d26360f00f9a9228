"""The package's layers (README, "Architecture"): no module imports from a layer above its own,
whether at its top or inside a function. Read from the source (ast), nothing is imported."""
import ast

from tests.helpers import REPO

# Module prefix -> layer (the longest prefix decides); the commands (vertkp.cli, vertkp.convert,
# vertkp.demo, vertkp.__main__ and every package's ``cli``) are the top layer, COMMANDS.
LAYERS = {
    # vocabulary
    "vertkp": 0, "vertkp.anatomy": 0, "vertkp.keypoints": 0, "vertkp.keypoint_decoding": 0, "vertkp.files": 0,
    "vertkp.drawing": 0,
    # what a spine is, a model, a phantom scene
    "vertkp.grading": 1, "vertkp.modeling": 1, "vertkp.phantoms": 1,
    # datasets: from the archive to detectron2's input (a dataset's phantom writer draws with vertkp.phantoms)
    "vertkp.data": 2,
    # built on the datasets: the detectron2 config, the review rules, making phantom sets
    "vertkp.config": 3, "vertkp.review": 3, "vertkp.phantoms.make": 3, "vertkp.phantoms.archive": 3,
    "vertkp.phantoms.dicom": 3,
    "vertkp.evaluation": 4, "vertkp.inference": 4,
    "vertkp.engine": 5, "vertkp.audit": 5, "vertkp.benchmark": 5,
}
COMMANDS = 6
TOP = ("vertkp.cli", "vertkp.convert", "vertkp.demo", "vertkp.__main__")


def layer(module: str) -> int:
    if module in TOP or module.endswith(".cli"):
        return COMMANDS
    parts = module.split(".")
    return next(LAYERS[".".join(parts[:k])] for k in range(len(parts), 0, -1) if ".".join(parts[:k]) in LAYERS)


def _imports(path, package: list):
    """(line, imported module or name) of every vertkp import in a source file."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            name = ".".join(base + ([node.module] if node.module else []))
            if name.split(".")[0] == "vertkp":
                for alias in node.names:  # "from .x import y": y may be a module (_known)
                    yield node.lineno, f"{name}.{alias.name}"
        elif isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "vertkp")


def _modules():
    """(path, module name, its package's parts) of every module of vertkp."""
    for path in sorted((REPO / "vertkp").rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        yield path, ".".join(parts[:-1] if parts[-1] == "__init__" else parts), parts[:-1]


def _known(name: str) -> str:
    """The longest prefix of ``name`` that is a module of the package (an imported name -> its module)."""
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        stem = REPO.joinpath(*parts[:k])
        if stem.with_suffix(".py").is_file() or (stem / "__init__.py").is_file():
            return ".".join(parts[:k])
    raise AssertionError(f"{name} is not a vertkp module")


def test_every_module_has_a_layer():
    for _, module, _ in _modules():
        assert isinstance(layer(module), int), module


def test_no_module_imports_from_a_layer_above_its_own():
    upward = []
    for path, module, package in _modules():
        for line, name in _imports(path, package):
            target = _known(name)
            if layer(target) > layer(module):
                upward.append(f"{path.relative_to(REPO)}:{line}: {module} (layer {layer(module)}) imports {target} "
                              f"(layer {layer(target)})")
    assert not upward, "\n".join(upward)


def test_the_layer_rule_catches_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from ..inference.predictor import VertebraPredictor\nimport vertkp.engine\n")
    found = [_known(n) for _, n in _imports(bad, ["vertkp", "data"])]
    assert found == ["vertkp.inference.predictor", "vertkp.engine"]
    assert all(layer(t) > layer("vertkp.data.bad") for t in found)
