"""Every command in the docs is one the tools accept, and the README's Python example runs.

Command lines are taken from the fenced code blocks of README.md, datasets/README.md,
notebooks/README.md and docker/README.md (docker run/compose lines: their `vertkp ...`
part). Each `python tools/<script>.py ...`, `vertkp <command> ...` or `python -m vertkp ...`
line is parsed by that command's own argparse parser (vertkp.cli.command_parser), each
`make <target>` must be a Makefile target, and every configs/*.yaml named must exist. The
commands that tests or `make demo` actually run (quick start, demo, predict, evaluate) are
run there.
"""
import re
import shlex
import shutil
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers import DETECTRON2_SKIP_REASON
from vertkp.cli import COMMANDS, command_parser

REPO = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "datasets/README.md", "notebooks/README.md", "docker/README.md")
SCRIPTS = {spec[1]: name for name, spec in COMMANDS.items()}


def code_blocks(text: str):
    """(language, body) of every fenced code block."""
    return re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M)


def command_lines(text: str):
    """Shell lines of the non-Python code blocks, continuations joined, comments dropped."""
    out = []
    for lang, body in code_blocks(text):
        if lang == "python":
            continue
        for line in body.replace("\\\n", " ").splitlines():
            try:
                words = shlex.split(line, comments=True)
            except ValueError:  # a folder tree or other text, not a shell line
                words = line.split()
            if words:
                out.append(words)
    return out


def as_vertkp_command(words):
    """(command, args) when ``words`` run a vertkp tool, else None."""
    if "vertkp" in words and words[0] in ("docker", "sudo"):  # docker run ... vertkp <command> args
        if words[:2] == ["docker", "build"]:
            return None
        k = len(words) - 1 - words[::-1].index("vertkp")
        words = words[k:]
    if words[:3] == ["python", "-m", "vertkp"] or words[:3] == ["python3", "-m", "vertkp"]:
        words = ["vertkp", *words[3:]]
    if words and words[0] in ("python", "python3") and len(words) > 1 and words[1].startswith("tools/"):
        script = Path(words[1]).name
        if script not in SCRIPTS:
            return script, None
        return SCRIPTS[script], words[2:]
    if words and words[0] == "vertkp" and len(words) > 1 and words[1] in COMMANDS:
        return words[1], words[2:]
    return None


def documented_commands():
    found = []
    for doc in DOCS:
        for words in command_lines((REPO / doc).read_text(encoding="utf-8")):
            cmd = as_vertkp_command(words)
            if cmd is not None:
                found.append((doc, " ".join(words), *cmd))
    return found


COMMAND_CASES = documented_commands()


def test_the_docs_name_every_command():
    named = {c[2] for c in COMMAND_CASES}
    assert set(COMMANDS) <= named, f"commands no doc shows: {set(COMMANDS) - named}"
    assert len(COMMAND_CASES) >= 20


@pytest.mark.parametrize("doc, line, command, args", COMMAND_CASES, ids=[c[1][:80] for c in COMMAND_CASES])
def test_documented_command_parses(doc, line, command, args):
    assert args is not None, f"{doc}: {line}: no such tool"
    if command == "train":
        pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)
    try:
        command_parser(command).parse_args(args)
    except SystemExit as e:
        if e.code == 0 and "--help" in args:
            return
        pytest.fail(f"{doc}: `{line}` is rejected by `vertkp {command}` (exit {e.code})")
    for word in args:
        if re.fullmatch(r"configs/[\w/.-]+\.yaml", word):
            assert (REPO / word).is_file(), f"{doc}: {word} does not exist"


def test_documented_make_targets_exist():
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([\w-]+):", makefile, flags=re.M))
    for doc in DOCS:
        for words in command_lines((REPO / doc).read_text(encoding="utf-8")):
            if words[0] == "make":
                assert words[1] in targets, f"{doc}: make {words[1]} is not a Makefile target"


def test_rejected_commands_are_caught():
    """The check can fail: a misspelt flag and an unknown tool are reported."""
    assert as_vertkp_command(["python", "tools/no_such_tool.py"]) == ("no_such_tool.py", None)
    with pytest.raises(SystemExit):
        command_parser("predict").parse_args(["--config-file", "c.yaml", "--weight", "w.pth"])


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys, phantom_root):
    """The README's Python block, run as written in a folder laid out like after `make demo`
    (random weights of the same config stand in for the demo's)."""
    pytest.importorskip("detectron2", reason=DETECTRON2_SKIP_REASON)
    import torch
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    from vertkp.config import build_cfg

    blocks = [body for lang, body in code_blocks((REPO / "README.md").read_text()) if lang == "python"]
    assert len(blocks) == 1
    (tmp_path / "configs").symlink_to(REPO / "configs")
    torch.manual_seed(0)
    from vertkp.demo import DEFAULT_CONFIG

    cfg = build_cfg(str(REPO / DEFAULT_CONFIG), ["MODEL.DEVICE", "cpu"])
    (tmp_path / "output/demo/train").mkdir(parents=True)
    DetectionCheckpointer(build_model(cfg), save_dir=str(tmp_path / "output/demo/train")).save("model_best")
    test_dir = tmp_path / "output/demo/data/phantoms/Test"
    test_dir.mkdir(parents=True)
    shutil.copy(next((phantom_root / "phantoms" / "Test").glob("*.jpg")), test_dir)
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    printed = capsys.readouterr().out.splitlines()
    result = namespace["result"]
    from vertkp.inference import SpinePrediction

    assert isinstance(result, SpinePrediction) and result.image == namespace["image"]
    assert (result.height, result.width) == Image.open(namespace["image"]).size[::-1]
    assert printed == [f"{p.name} {p.slip_pct} {p.grade_name} {p.flags}" for p in result.pairs]


def test_the_readme_lists_every_metric_once_by_its_name():
    from vertkp.evaluation import METRICS

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]+) \|", readme, flags=re.M)
    listed = [name for name, _ in rows if name in METRICS or "@" in name or "<" in name]
    assert listed == list(METRICS), "the README's metric table must list vertkp.evaluation.METRICS, in order"
    assert {name: unit.strip() for name, unit in rows if name in METRICS} == {k: u for k, (u, _) in METRICS.items()}


def test_every_pip_install_of_the_makefile_keeps_setuptools_under_81_and_the_readme_says_the_same():
    """torch asks for setuptools>=77: a pip install of the project without the pin upgrades it past 80,
    which has no pkg_resources, and detectron2 (built next) fails to import (a fresh clone's `make test`)."""
    makefile = (REPO / "Makefile").read_text()
    installs = re.findall(r"^\t\$\(PIP\) install (.+)$", makefile, flags=re.M)
    project = [line for line in installs if "-e '.[" in line]
    assert project and all("'setuptools<81'" in line for line in project)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for line in project:
        assert f"pip install {line}" in readme, f"README, Install: `pip install {line}` (make install's line)"
