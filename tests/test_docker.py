"""The Docker files, checked without Docker: docker/Dockerfile, docker/docker-compose.yml,
docker/README.md and .dockerignore agree with each other, with the Makefile, setup.py, the
``vertkp`` command and the configs. No engine, network or detectron2 needed.

Each ``check_*`` function returns the problems it finds (empty: none). One test runs each check on
the real files; ``test_check_catches`` runs it on a copy broken on purpose, to show it can fail.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import json
import posixpath
import re
import shlex
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest
import yaml

from vertkp import cli
from vertkp.cli import COMMANDS

REPO = Path(__file__).resolve().parents[1]

# The GPU architectures detectron2's CUDA ops must be compiled for: Volta, Ampere (8.6), Ada, Hopper.
REQUIRED_ARCHS = ("7.0", "8.6", "8.9", "9.0")
# Files the image needs from the build context: setup.py reads README.md, and the Dockerfile moves
# datasets/README.md into /data.
REQUIRED_CONTEXT = ("setup.py", "README.md", "datasets/README.md", "vertkp/cli.py")
# Paths .dockerignore must keep out of the build context.
MUST_BE_IGNORED = (".git", ".git/config", "output", "output/kprcnn_r50/model_final.pth", ".make/deps",
                   "datasets/spondylolisthesis/Dataset/Train/a.jpg", "datasets/phantoms/coco/train.json",
                   "weights/model_final_a6e10b.pkl", "vertkp/__pycache__/cli.cpython-311.pyc",
                   "vertkp.egg-info/PKG-INFO", "notebooks/.ipynb_checkpoints/a-checkpoint.ipynb")
MOUNT_POINTS = ("/data", "/output")


# --------------------------------------------------------------------------- Dockerfile parsing

@dataclasses.dataclass
class Instruction:
    keyword: str  # upper case: FROM, RUN, ...
    args: str  # the rest, continuation lines joined
    line: int
    env: Dict[str, str]  # ARG and ENV values in effect before it
    workdir: str  # WORKDIR in effect before it


_VAR = re.compile(r"\$(?:\{(\w+)(?::?([-+])([^}]*))?\}|(\w+))")


def substitute(text: str, env: Dict[str, str]) -> str:
    """``$X``, ``${X}``, ``${X:-default}``, ``${X:+alternative}`` from env; unknown variables stay as they are."""
    def one(m):
        name = m.group(1) or m.group(4)
        op, word = m.group(2), m.group(3) or ""
        value = env.get(name)
        if op == "-":
            return value if value else substitute(word, env)
        if op == "+":
            return substitute(word, env) if value else ""
        return m.group(0) if value is None else value
    return _VAR.sub(one, text)


def _pairs(args: str, env: Dict[str, str], keyword: str) -> List[Tuple[str, Optional[str]]]:
    """``ARG NAME[=default]`` / ``ENV KEY=VALUE ...`` (or the old ``ENV KEY VALUE``), variables resolved."""
    words = shlex.split(substitute(args, env))
    if keyword == "ENV" and words and "=" not in words[0]:
        return [(words[0], " ".join(words[1:]))]
    return [(w.split("=", 1)[0], w.split("=", 1)[1]) if "=" in w else (w, None) for w in words]


def parse_dockerfile(text: str) -> List[Instruction]:
    """Instructions with line continuations joined and comments dropped, each with the ARG/ENV
    values and WORKDIR in effect before it (ARGs declared before the first FROM only reach FROM)."""
    raw: List[Tuple[str, str, int]] = []
    parts: List[str] = []
    start = 0
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("#") or (parts and not stripped):
            continue  # comments (also inside a continued instruction) and blank continuation lines
        if not stripped:
            continue
        if not parts:
            start = n
        if stripped.endswith("\\"):
            parts.append(stripped[:-1].strip())
            continue
        parts.append(stripped)
        keyword, _, args = " ".join(parts).partition(" ")
        raw.append((keyword.upper(), args.strip(), start))
        parts = []
    if parts:
        raise ValueError(f"Dockerfile line {start}: a continuation runs past the end of the file")

    out: List[Instruction] = []
    global_args: Dict[str, str] = {}
    env: Dict[str, str] = {}
    workdir, in_stage = "/", False
    for keyword, args, line in raw:
        out.append(Instruction(keyword, args, line, dict(env if in_stage else global_args), workdir))
        if keyword == "FROM":
            env, workdir, in_stage = {}, "/", True
        elif keyword == "ARG":
            target = env if in_stage else global_args
            for name, value in _pairs(args, env if in_stage else global_args, keyword):
                if value is not None:
                    target[name] = value
                elif in_stage and name in global_args:
                    target[name] = global_args[name]
                else:
                    target.setdefault(name, "")
        elif keyword == "ENV":
            env.update((k, v or "") for k, v in _pairs(args, env, keyword))
        elif keyword == "WORKDIR":
            workdir = posixpath.normpath(posixpath.join(workdir, substitute(args, env)))
    return out


def shell_commands(run: Instruction) -> List[Tuple[Dict[str, str], List[str]]]:
    """A RUN's simple commands (split at ``&&``, ``||``, ``;``, ``|``), variables resolved, each as
    (its leading ``NAME=value`` assignments, its words)."""
    lexer = shlex.shlex(substitute(run.args, run.env), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands, words = [], []
    for token in list(lexer) + [";"]:
        if token in ("&&", "||", ";", "|", "&"):
            assigned = {}
            while words and re.match(r"^\w+=", words[0]):
                name, value = words.pop(0).split("=", 1)
                assigned[name] = value
            if words or assigned:
                commands.append((assigned, words))
            words = []
        else:
            words.append(token)
    return commands


# pip options that take a value (the value is not a requirement)
_PIP_VALUE_OPTIONS = {"-c", "--constraint", "-r", "--requirement", "-i", "--index-url", "--extra-index-url",
                      "-f", "--find-links", "-t", "--target", "--prefix", "--root", "--platform"}


@dataclasses.dataclass
class PipInstall:
    run: Instruction
    env: Dict[str, str]  # the RUN's environment plus the command's own assignments
    options: Dict[str, List[str]]  # option -> its values ([] for a flag)
    requirements: List[str]  # also -e/--editable targets


def pip_installs(instructions: List[Instruction]) -> List[PipInstall]:
    found = []
    for ins in instructions:
        if ins.keyword != "RUN":
            continue
        for assigned, words in shell_commands(ins):
            if words[:1] in (["pip"], ["pip3"]):
                rest = words[1:]
            elif len(words) > 3 and re.fullmatch(r"python3?(\.\d+)?", words[0]) and words[1:3] == ["-m", "pip"]:
                rest = words[3:]
            else:
                continue
            if rest[:1] != ["install"]:
                continue
            options: Dict[str, List[str]] = {}
            requirements: List[str] = []
            it = iter(rest[1:])
            for word in it:
                if word in ("-e", "--editable"):
                    requirements.append(next(it, ""))
                elif word.startswith("-"):
                    name, eq, value = word.partition("=")
                    values = [value] if eq else [next(it, "")] if name in _PIP_VALUE_OPTIONS else []
                    options.setdefault(name, []).extend(values)
                else:
                    requirements.append(word)
            found.append(PipInstall(ins, {**ins.env, **assigned}, options, requirements))
    return found


def requirement_name(req: str) -> str:
    return re.split(r"[\s\[<>=!~;@]", req, maxsplit=1)[0].lower()


def exec_form(args: str) -> Optional[List[str]]:
    try:
        value = json.loads(args)
    except ValueError:
        return None
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


# --------------------------------------------------------------------------- .dockerignore

def _ignore_regex(pattern: str) -> "re.Pattern[str]":
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                out.append("(?:.*/)?")
                i += 1
            else:
                out.append(".*")
            continue
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and "]" in pattern[i:]:
            j = pattern.index("]", i)
            out.append("[" + pattern[i + 1:j].replace("!", "^", 1) + "]")
            i = j
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


class DockerIgnore:
    """Docker's rules: the last pattern that matches a path or one of its parent folders decides;
    ``!`` puts a path back."""

    def __init__(self, text: str):
        self.rules = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            pattern = posixpath.normpath(line[1:].strip() if negate else line).lstrip("/")
            self.rules.append((negate, _ignore_regex(pattern)))

    def excludes(self, path: str) -> bool:
        parts = path.strip("/").split("/")
        prefixes = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
        excluded = False
        for negate, rx in self.rules:
            if any(rx.match(p) for p in prefixes):
                excluded = not negate
        return excluded


# --------------------------------------------------------------------------- the project's files

COMPOSE_VAR = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def compose_defaults(value):
    """Compose interpolation with every variable unset: ``${X:-default}`` -> default, ``${X}`` -> ''."""
    if isinstance(value, str):
        return COMPOSE_VAR.sub(lambda m: m.group(2) or "", value)
    if isinstance(value, list):
        return [compose_defaults(v) for v in value]
    if isinstance(value, dict):
        return {k: compose_defaults(v) for k, v in value.items()}
    return value


@dataclasses.dataclass
class Project:
    dockerfile: str
    dockerignore: str
    compose: str
    readme: str
    makefile: str
    setup_py: str

    @classmethod
    def read(cls) -> "Project":
        def text(rel):
            return (REPO / rel).read_text(encoding="utf-8")
        return cls(text("docker/Dockerfile"), text(".dockerignore"), text("docker/docker-compose.yml"),
                   text("docker/README.md"), text("Makefile"), text("setup.py"))

    @functools.cached_property
    def instructions(self) -> List[Instruction]:
        return parse_dockerfile(self.dockerfile)

    def last(self, keyword: str) -> Optional[Instruction]:
        found = [i for i in self.instructions if i.keyword == keyword]
        return found[-1] if found else None

    @functools.cached_property
    def final(self) -> Instruction:
        """A probe after the last instruction: its env and workdir are the ones the tools run with."""
        return parse_dockerfile(self.dockerfile + "\nLABEL probe=1\n")[-1]

    @functools.cached_property
    def pip(self) -> List[PipInstall]:
        return pip_installs(self.instructions)

    @functools.cached_property
    def detectron2_source(self) -> str:
        m = re.search(r"^DETECTRON2_SOURCE\s*[?:]?=\s*(\S.*?)\s*$", self.makefile, re.M)
        assert m, "the Makefile no longer sets DETECTRON2_SOURCE"
        return m.group(1)

    @functools.cached_property
    def compose_data(self) -> dict:
        return yaml.safe_load(self.compose)

    @functools.cached_property
    def ignore(self) -> DockerIgnore:
        return DockerIgnore(self.dockerignore)


def code_spans(markdown: str) -> List[str]:
    """The fenced blocks and inline code of a Markdown text, continuation lines joined."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", markdown, re.S | re.M)
    rest = re.sub(r"^```[^\n]*\n.*?^```", "", markdown, flags=re.S | re.M)
    spans = blocks + re.findall(r"`([^`\n]+)`", rest)
    return [re.sub(r"\\\n\s*", " ", s) for s in spans]


def comment_commands(text: str) -> List[str]:
    """Command lines quoted in ``#`` comments (YAML, Dockerfile), continuation lines joined."""
    comments = "\n".join(re.sub(r"^\s*#\s?", "", line) for line in text.splitlines() if line.strip().startswith("#"))
    comments = re.sub(r"\\\n\s*", " ", comments)
    return [line for line in comments.splitlines() if re.search(r"\bdocker (run|compose|build)\b", line)]


def command_texts(p: Project) -> List[str]:
    """Every command the Docker files show to users."""
    return [line for span in code_spans(p.readme) for line in span.splitlines()] + \
        comment_commands(p.dockerfile) + comment_commands(p.compose)


def split_words(line: str) -> List[str]:
    try:
        return shlex.split(line, comments=True)
    except ValueError:
        return line.split()


# --------------------------------------------------------------------------- checks

def from_image(p: Project) -> str:
    ins = p.last("FROM")
    words = [w for w in substitute(ins.args, ins.env).split() if not w.startswith("--")] if ins else []
    return words[0] if words else ""


NVIDIA_TAG = re.compile(r"nvidia/cuda:(?P<major>\d+)\.(?P<minor>\d+)\.\d+-(?:cudnn\d*-)?devel-"
                        r"(?:ubuntu\d\d\.\d\d|ubi\d+|rockylinux\d+)")


def check_base_image(p: Project) -> List[str]:
    image = from_image(p)
    m = NVIDIA_TAG.fullmatch(image)
    if not m:
        return [f"FROM {image!r} is not an NVIDIA CUDA devel image (nvidia/cuda:12.X.Y[-cudnn]-devel-ubuntuXX.YY): "
                "detectron2's CUDA ops need nvcc"]
    if m.group("major") != "12":
        return [f"FROM {image!r}: vertkp's image is built on CUDA 12.x"]
    return []


def torch_install(p: Project) -> Optional[PipInstall]:
    found = [pi for pi in p.pip if "torch" in map(requirement_name, pi.requirements)]
    return found[0] if found else None


def _pins(pi: PipInstall) -> Dict[str, str]:
    pins = {}
    for req in pi.requirements:
        m = re.fullmatch(r"([\w-]+)==(\d+(?:\.\d+)*)(?:\+\w+)?", req)
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def _min_versions(setup_py: str) -> Dict[str, Tuple[int, ...]]:
    tree = ast.parse(setup_py)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "INSTALL_REQUIRES" for t in node.targets):
            reqs = ast.literal_eval(node.value)
            return {m.group(1).lower(): tuple(int(x) for x in m.group(2).split("."))
                    for m in (re.fullmatch(r"([\w-]+)>=([\d.]+)", r) for r in reqs) if m}
    return {}


def check_torch_build(p: Project) -> List[str]:
    pi = torch_install(p)
    if pi is None:
        return ["no RUN pip install installs torch"]
    problems = []
    pins = _pins(pi)
    torch_v, vision_v = pins.get("torch"), pins.get("torchvision")
    if not torch_v or not vision_v:
        problems.append(f"torch and torchvision must be pinned with == in one pip install: {pi.requirements}")
    else:
        t, v = [int(x) for x in torch_v.split(".")[:2]], [int(x) for x in vision_v.split(".")[:2]]
        if t[0] != 2 or v != [0, t[1] + 15]:
            problems.append(f"torchvision {vision_v} is not the release that goes with torch {torch_v} "
                            f"(torch 2.N pairs with torchvision 0.N+15)")
        minimum = _min_versions(p.setup_py)
        for name, version in (("torch", torch_v), ("torchvision", vision_v)):
            have = tuple(int(x) for x in version.split("."))
            if name in minimum and have < minimum[name]:
                wanted = ".".join(map(str, minimum[name]))
                problems.append(f"{name} {version} is older than setup.py's {name}>={wanted}")
    index = (pi.options.get("--index-url") or pi.options.get("-i") or [""])[-1]
    m = re.fullmatch(r"https://download\.pytorch\.org/whl/cu(\d\d)(\d+)/?", index)
    base = NVIDIA_TAG.fullmatch(from_image(p))
    if not m:
        problems.append(f"torch must come from PyTorch's CUDA wheel index (--index-url "
                        f"https://download.pytorch.org/whl/cuXYZ), not {index!r}")
    elif base:
        wheel, image = (int(m.group(1)), int(m.group(2))), (int(base.group("major")), int(base.group("minor")))
        if wheel[0] != image[0] or wheel[1] > image[1]:
            problems.append(f"torch's wheels are for CUDA {wheel[0]}.{wheel[1]} but the base image has CUDA "
                            f"{image[0]}.{image[1]}: nvcc must be the same major and not older than torch's CUDA")
    return problems


def detectron2_install(p: Project) -> Optional[PipInstall]:
    found = [pi for pi in p.pip if any("detectron2" in r for r in pi.requirements)]
    return found[0] if found else None


def check_detectron2_source(p: Project) -> List[str]:
    pi = detectron2_install(p)
    if pi is None:
        return ["no RUN pip install installs detectron2"]
    problems = []
    if "--no-build-isolation" not in pi.options:
        problems.append("detectron2's setup imports torch: install it with --no-build-isolation")
    if pi.requirements != [p.detectron2_source]:
        problems.append(f"detectron2 is installed from {pi.requirements}, the Makefile from "
                        f"{p.detectron2_source!r}: use the same source (DETECTRON2_SOURCE)")
    return problems


def _arch_entries(value: str) -> List[str]:
    return [a.strip().replace("+PTX", "") for a in re.split(r"[;\s]+", value) if a.strip()]


def check_detectron2_cuda_build(p: Project) -> List[str]:
    pi = detectron2_install(p)
    if pi is None:
        return ["no RUN pip install installs detectron2"]
    problems = []
    if pi.env.get("FORCE_CUDA") != "1":
        problems.append("FORCE_CUDA=1 is not set when detectron2 is built: without a visible GPU (docker build) "
                        "it would be built without its CUDA ops")
    archs = _arch_entries(pi.env.get("TORCH_CUDA_ARCH_LIST", ""))
    missing = [a for a in REQUIRED_ARCHS if a not in archs]
    if missing:
        problems.append(f"TORCH_CUDA_ARCH_LIST {archs} lacks {missing} when detectron2 is built")
    torch_pi = torch_install(p)
    if torch_pi is None or torch_pi.run.line > pi.run.line:
        problems.append("torch must be installed before detectron2 is built")
    return problems


def check_setuptools_pin(p: Project) -> List[str]:
    d2 = detectron2_install(p)
    if d2 is None:
        return ["no RUN pip install installs detectron2"]
    before = [pi for pi in p.pip if pi.run.line <= d2.run.line]
    pinned = [r for pi in before for r in pi.requirements if re.fullmatch(r"setuptools\s*<\s*81", r)]
    if not pinned:
        return ["'setuptools<81' must be installed before detectron2 (it imports pkg_resources)"]
    return []


def check_non_root_user(p: Project) -> List[str]:
    ins = p.last("USER")
    if ins is None:
        return ["no USER: the tools would run as root"]
    user = substitute(ins.args, ins.env).split(":")[0]
    if user in ("", "root", "0") or "$" in user:
        return [f"USER {ins.args!r} resolves to {user!r}: run as a non-root user"]
    return []


def _volumes(p: Project) -> List[str]:
    out = []
    for ins in p.instructions:
        if ins.keyword == "VOLUME":
            args = substitute(ins.args, ins.env)
            out += exec_form(args) or args.split()
    return out


def check_mount_points(p: Project) -> List[str]:
    problems = []
    missing = [m for m in MOUNT_POINTS if m not in _volumes(p)]
    if missing:
        problems.append(f"VOLUME does not declare {missing}")
    for name, value in (("VERTKP_DATASETS", "/data"), ("VERTKP_OUTPUT", "/output")):
        if p.final.env.get(name) != value:
            problems.append(f"ENV {name} is {p.final.env.get(name)!r}, not {value!r}")
    user = p.last("USER")
    owner = substitute(user.args, user.env).split(":")[0] if user else None
    chowned = set()
    for ins in p.instructions:
        if ins.keyword == "RUN":
            for _, words in shell_commands(ins):
                args = [w for w in words[1:] if not w.startswith("-")]
                if words[:1] == ["chown"] and args and args[0].split(":")[0] == owner:
                    chowned.update(posixpath.normpath(a) for a in args[1:])
    missing = [m for m in MOUNT_POINTS if m not in chowned]
    if missing:
        problems.append(f"{missing} are not chowned to the image user {owner!r}: it could not write there")
    return problems


def check_links_to_mounts(p: Project) -> List[str]:
    """<WORKDIR>/output -> /output (configs write output/<run>), <WORKDIR>/datasets -> /data and
    <WORKDIR>/weights -> /data/weights (configs name weights/<file>, vertkp download writes there)."""
    links = {}
    for ins in p.instructions:
        if ins.keyword == "RUN":
            for _, words in shell_commands(ins):
                flags = "".join(w[1:] for w in words[1:] if w.startswith("-") and not w.startswith("--"))
                args = [w for w in words[1:] if not w.startswith("-")]
                if words[:1] == ["ln"] and "s" in flags and len(args) == 2:
                    links[posixpath.normpath(posixpath.join(ins.workdir, args[1]))] = args[0]
    problems = []
    for name, target in (("output", "/output"), ("datasets", "/data"), ("weights", "/data/weights")):
        link = posixpath.join(p.final.workdir, name)
        if links.get(link) != target:
            problems.append(f"{link} is not a symlink to {target} (found links: {links})")
    return problems


def _console_scripts(setup_py: str) -> List[str]:
    for node in ast.walk(ast.parse(setup_py)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup":
            for kw in node.keywords:
                if kw.arg == "entry_points":
                    return list(ast.literal_eval(kw.value).get("console_scripts", []))
    return []


def check_entrypoint(p: Project) -> List[str]:
    problems = []
    scripts = {s.split("=")[0].strip(): s.split("=")[1].strip() for s in _console_scripts(p.setup_py) if "=" in s}
    if scripts.get("vertkp") != "vertkp.cli:main" or not callable(getattr(cli, "main", None)):
        problems.append(f"setup.py's console_scripts {scripts} lack 'vertkp = vertkp.cli:main'")
    ins = p.last("ENTRYPOINT")
    entry = exec_form(ins.args) if ins else None
    if not entry or posixpath.basename(entry[0]) != "vertkp":
        problems.append(f"ENTRYPOINT {ins.args if ins else None} must run the vertkp command in exec form: "
                        '["vertkp"]')
    cmd_ins = p.last("CMD")
    cmd = exec_form(cmd_ins.args) if cmd_ins else None
    if not cmd or not (cmd[0] in COMMANDS or cmd[0] in ("--help", "-h")):
        problems.append(f"CMD {cmd_ins.args if cmd_ins else None} must be exec form, a vertkp command or --help")
    return problems


def check_no_caches(p: Project) -> List[str]:
    problems = []
    for pi in p.pip:
        if pi.env.get("PIP_NO_CACHE_DIR", "").lower() not in ("1", "true", "yes", "on") \
                and "--no-cache-dir" not in pi.options:
            problems.append(f"line {pi.run.line}: pip install keeps its cache (set PIP_NO_CACHE_DIR=1)")
    for ins in p.instructions:
        if ins.keyword == "RUN" and re.search(r"\bapt-get\s+install\b", ins.args) \
                and not re.search(r"\brm\s+-rf\s+/var/lib/apt/lists", ins.args):
            problems.append(f"line {ins.line}: apt-get install without removing /var/lib/apt/lists in the same RUN")
    return problems


def _copies(p: Project) -> List[Tuple[Instruction, List[str]]]:
    out = []
    for ins in p.instructions:
        if ins.keyword in ("COPY", "ADD"):
            args = substitute(ins.args, ins.env)
            words = exec_form(args) or args.split()
            if any(w.startswith("--from") for w in words):
                continue
            words = [w for w in words if not w.startswith("--")]
            out.append((ins, words[:-1]))
    return out


def check_layer_order(p: Project) -> List[str]:
    """Dependencies before the source: after the whole context is copied, pip installs only vertkp."""
    whole = [ins for ins, sources in _copies(p) if any(posixpath.normpath(s) == "." for s in sources)]
    if not whole:
        return ["the repository is never copied into the image (COPY . ...)"]
    return [f"line {pi.run.line}: pip installs {pi.requirements} after the source is copied (line {whole[0].line}); "
            "install dependencies before it, or pass --no-deps"
            for pi in p.pip if pi.run.line > whole[0].line and "--no-deps" not in pi.options]


def context_files() -> List[str]:
    """The repository's files the image must get: the package, configs, tools and REQUIRED_CONTEXT."""
    files = set(REQUIRED_CONTEXT)
    for folder in ("vertkp", "configs", "tools"):
        files.update(f.relative_to(REPO).as_posix() for f in (REPO / folder).rglob("*")
                     if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc")
    return sorted(files)


def check_dockerignore(p: Project) -> List[str]:
    problems = []
    for ins, sources in _copies(p):
        for s in sources:
            path = posixpath.normpath(s)
            if path == ".":
                continue
            if not (REPO / path).exists():
                problems.append(f"line {ins.line}: COPY {s}: no such file in the repository")
            elif p.ignore.excludes(path):
                problems.append(f"line {ins.line}: COPY {s}, but .dockerignore excludes it")
    excluded = [f for f in context_files() if p.ignore.excludes(f)]
    if excluded:
        problems.append(f".dockerignore excludes files the image needs: {excluded[:10]}")
    kept = [f for f in MUST_BE_IGNORED if not p.ignore.excludes(f)]
    if kept:
        problems.append(f".dockerignore lets these into the build context: {kept}")
    return problems


def _shm_bytes(value) -> int:
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmg]?)b?\s*", str(value), re.I)
    if not m:
        return 0
    return int(float(m.group(1)) * 1024 ** " kmg".index(m.group(2).lower() or " "))


def _volume_target(volume) -> str:
    if isinstance(volume, dict):
        return posixpath.normpath(volume.get("target", ""))
    parts = str(compose_defaults(volume)).split(":")
    return posixpath.normpath(parts[1]) if len(parts) > 1 else posixpath.normpath(parts[0])


def check_compose(p: Project) -> List[str]:
    services = (p.compose_data or {}).get("services") or {}
    if not services:
        return ["docker-compose.yml has no services"]
    problems = []
    compose_dir = REPO / "docker"
    for name, svc in services.items():
        svc = compose_defaults(svc)
        build = svc.get("build")
        if isinstance(build, dict):
            context = (compose_dir / build.get("context", ".")).resolve()
            dockerfile = (context / build.get("dockerfile", "Dockerfile")).resolve()
            if context != REPO or dockerfile != REPO / "docker" / "Dockerfile":
                problems.append(f"{name}: builds {dockerfile} in {context}, not docker/Dockerfile in the repository")
        elif not svc.get("image"):
            problems.append(f"{name}: neither image nor build")
        targets = {_volume_target(v) for v in svc.get("volumes", [])}
        missing = [m for m in MOUNT_POINTS if m not in targets]
        if missing:
            problems.append(f"{name}: nothing is mounted on {missing}")
        devices = (((svc.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get("devices") or []
        if not any(d.get("driver") == "nvidia" and "gpu" in (d.get("capabilities") or []) for d in devices):
            problems.append(f"{name}: no GPU reservation (deploy.resources.reservations.devices: driver nvidia, "
                            "capabilities [gpu])")
        if _shm_bytes(svc.get("shm_size", 0)) < 1024 ** 3:
            problems.append(f"{name}: shm_size {svc.get('shm_size')!r} is too small for dataloader workers")
        command = svc.get("command") or []
        command = command if isinstance(command, list) else split_words(command)
        if command and not (command[0] in COMMANDS or command[0] in ("--help", "-h")):
            problems.append(f"{name}: command {command} does not start with a vertkp command")
    commands = [compose_defaults(s.get("command") or [""]) for s in services.values()]
    if not any(c[:1] == ["train"] for c in commands if isinstance(c, list)):
        problems.append("no compose service runs `train`")
    return problems


_COMPOSE_RUN_OPTIONS = {"-e", "--env", "-v", "--volume", "-w", "--workdir", "-u", "--user", "--name",
                        "--entrypoint", "-p", "--publish", "-l", "--label", "--env-from-file"}


def _compose_problems(words: List[str], services: Dict) -> List[str]:
    if "compose" not in words:
        return []
    i = words.index("compose") + 1
    while i < len(words) and words[i].startswith("-"):
        i += 2 if words[i] in ("-f", "--file", "-p", "--project-name", "--profile", "--env-file") else 1
    if i >= len(words) or words[i] not in ("run", "up", "build", "create", "start"):
        return []
    verb, rest = words[i], words[i + 1:]
    names, j = [], 0
    while j < len(rest):
        if rest[j].startswith("-"):
            j += 2 if rest[j] in _COMPOSE_RUN_OPTIONS else 1
            continue
        names.append(rest[j])
        if verb == "run":
            break
        j += 1
    problems = [f"`{' '.join(words)}`: no compose service {n!r}" for n in names if n not in services]
    if verb == "run" and names and j + 1 < len(rest):
        command = rest[j + 1]
        if not (command.startswith("-") or command in COMMANDS):
            problems.append(f"`{' '.join(words)}`: {command!r} is not a vertkp command")
    return problems


def check_documented_commands(p: Project) -> List[str]:
    """Every `vertkp <command>` is a key of vertkp.cli.COMMANDS, every configs/*.yaml exists, every
    `docker compose run|up <service>` names a service, every --build-arg is an ARG of the Dockerfile."""
    problems = []
    texts = command_texts(p)
    for text in texts:
        for m in re.finditer(r"(?<![\w./:-])vertkp[ \t]+([^\s`'\"]+)", text):
            word = m.group(1)
            if re.fullmatch(r"[a-z][\w-]*", word) and word not in COMMANDS:
                problems.append(f"`{text.strip()}`: {word!r} is not a vertkp command ({sorted(COMMANDS)})")
        problems += _compose_problems(split_words(text), (p.compose_data or {}).get("services") or {})
    for source in (p.readme, p.compose, p.dockerfile):
        for path in set(re.findall(r"\bconfigs/[\w./-]*?\.yaml\b", source)):
            if not (REPO / path).is_file():
                problems.append(f"{path} is mentioned but does not exist")
    args = {name for ins in p.instructions if ins.keyword == "ARG" for name, _ in _pairs(ins.args, {}, "ARG")}
    builds = "\n".join(t for t in texts if "docker build" in t)
    for name in set(re.findall(r"--build-arg[ =]([A-Za-z_]\w*)=", builds)):
        if name not in args:
            problems.append(f"--build-arg {name}: the Dockerfile has no ARG {name} ({sorted(args)})")
    return problems


def command_options(command: str) -> Optional[set]:
    """The option strings of a vertkp command whose module has a ``build_parser()`` (None: unknown).
    The module's file is read first, so commands without one (train: detectron2) are not imported."""
    module = COMMANDS[command][0]
    path = REPO.joinpath(*module.split("."))
    source = path.with_suffix(".py") if path.with_suffix(".py").is_file() else path / "__init__.py"
    if not source.is_file() or "def build_parser(" not in source.read_text(encoding="utf-8"):
        return None
    try:
        parser = importlib.import_module(module).build_parser()
    except ImportError:
        return None
    return {s for action in parser._actions for s in action.option_strings}


def check_documented_flags(p: Project) -> List[str]:
    """Every --flag after `vertkp <command>` is one of that command's options (where it has a parser)."""
    problems = []
    for text in command_texts(p):
        words = split_words(text)
        for k, word in enumerate(words[:-1]):
            command = words[k + 1]
            if word != "vertkp" or command not in COMMANDS:
                continue
            options = command_options(command)
            flags = [w.split("=")[0] for w in words[k + 2:] if w.startswith("--")]
            unknown = [f for f in flags if options is not None and f not in options]
            if unknown:
                problems.append(f"`{text.strip()}`: vertkp {command} has no option {unknown}")
    return problems


def check_readme_facts(p: Project) -> List[str]:
    """docker/README.md states the versions the Dockerfile uses, and how to build and run with GPUs."""
    problems = []
    image = from_image(p)
    if image not in p.readme:
        problems.append(f"docker/README.md does not name the base image {image}")
    tag = NVIDIA_TAG.fullmatch(image)
    for m in re.finditer(r"nvidia/cuda:(\d+\.\d+\.\d+)", p.readme):
        if tag and not image.startswith(f"nvidia/cuda:{m.group(1)}-"):
            problems.append(f"docker/README.md mentions CUDA image {m.group(0)}, the Dockerfile uses {image}")
    pi = torch_install(p)
    pins = _pins(pi) if pi else {}
    for name in ("torch", "torchvision"):
        said = set(re.findall(rf"\b{name} (\d+\.\d+\.\d+)", p.readme))
        if not said or said != {pins.get(name)}:
            problems.append(f"docker/README.md says {name} {sorted(said)}, the Dockerfile pins {pins.get(name)}")
    index = (pi.options.get("--index-url") or [""])[-1] if pi else ""
    wheel_tag = index.rstrip("/").rsplit("/", 1)[-1]
    said = set(re.findall(r"\bcu\d{3}\b", p.readme))
    if said != {wheel_tag}:
        problems.append(f"docker/README.md mentions {sorted(said)}, the Dockerfile's index is {wheel_tag}")
    d2 = detectron2_install(p)
    archs = d2.env.get("TORCH_CUDA_ARCH_LIST", "") if d2 else ""
    for fact in (p.detectron2_source, archs, "NVIDIA Container Toolkit", "--user", "--build-arg TORCH_CUDA_ARCH_LIST"):
        if not fact or fact not in p.readme:
            problems.append(f"docker/README.md does not mention {fact!r}")
    lines = [line for span in code_spans(p.readme) for line in span.splitlines()]
    builds = [split_words(line) for line in lines if line.startswith("docker build")]
    if not any(w[-1:] == ["."] and "docker/Dockerfile" in w and "vertkp" in w for w in builds):
        problems.append("docker/README.md lacks the build command: docker build -f docker/Dockerfile -t vertkp .")
    for line in lines:
        if not line.startswith("docker run"):
            continue
        if re.search(r"\bvertkp (train|demo|predict|benchmark)\b", line) and "--gpus" not in line:
            problems.append(f"`{line}` runs on the GPU but does not pass --gpus")
        words = split_words(line)
        targets = [words[k + 1].split(":")[1] for k, w in enumerate(words[:-1])
                   if w in ("-v", "--volume") and words[k + 1].count(":") >= 1]
        wrong = [t for t in targets if t not in MOUNT_POINTS + ("/cache",)]
        if wrong:
            problems.append(f"`{line}` mounts on {wrong}, not on {MOUNT_POINTS} or /cache")
    return problems


CHECKS = [check_base_image, check_torch_build, check_detectron2_source, check_detectron2_cuda_build,
          check_setuptools_pin, check_non_root_user, check_mount_points, check_links_to_mounts, check_entrypoint,
          check_no_caches, check_layer_order, check_dockerignore, check_compose, check_documented_commands,
          check_documented_flags, check_readme_facts]


@pytest.fixture(scope="module")
def project() -> Project:
    return Project.read()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__[len("check_"):])
def test_docker_files(project, check):
    assert check(project) == []


# (check, file, text in it, replacement): each breaks one thing the check guards.
MUTATIONS = [
    (check_base_image, "dockerfile", "12.8.1-devel-", "12.8.1-runtime-"),
    (check_base_image, "dockerfile", "nvidia/cuda:12.8.1", "nvidia/cuda:11.8.0"),
    (check_base_image, "dockerfile", "FROM nvidia/cuda:", "FROM pytorch/cuda:"),
    (check_torch_build, "dockerfile", "whl/cu128", "whl/cu129"),
    (check_torch_build, "dockerfile", "whl/cu128", "whl/cpu"),
    (check_torch_build, "dockerfile", "TORCHVISION_VERSION=0.23.0", "TORCHVISION_VERSION=0.22.0"),
    (check_torch_build, "dockerfile", '"torch==$TORCH_VERSION"', "torch"),
    (check_torch_build, "setup_py", '"torch>=2.1"', '"torch>=2.9"'),
    (check_detectron2_source, "dockerfile", "--no-build-isolation -c", "-c"),
    (check_detectron2_source, "dockerfile", "detectron2.git\n", "detectron2.git@main\n"),
    (check_detectron2_source, "makefile", "?= git+https://github.com/facebookresearch/detectron2.git",
     "?= git+https://github.com/someone/detectron2.git"),
    (check_detectron2_cuda_build, "dockerfile", "FORCE_CUDA=1", "FORCE_CUDA=0"),
    (check_detectron2_cuda_build, "dockerfile", "8.6;8.9;", "8.6;"),
    (check_detectron2_cuda_build, "dockerfile", "7.0;7.5;", "7.5;"),
    (check_setuptools_pin, "dockerfile", "'setuptools<81'", "setuptools"),
    (check_non_root_user, "dockerfile", "USER ${VERTKP_UID}:${VERTKP_GID}", "USER root"),
    (check_non_root_user, "dockerfile", "ARG VERTKP_UID=1000", "ARG VERTKP_UID=0"),
    (check_mount_points, "dockerfile", 'VOLUME ["/data", "/output"]', 'VOLUME ["/data"]'),
    (check_mount_points, "dockerfile", "VERTKP_DATASETS=/data", "VERTKP_DATASETS=/datasets"),
    (check_mount_points, "dockerfile", "VERTKP_OUTPUT=/output", "VERTKP_OUTPUT=output"),
    (check_mount_points, "dockerfile", "chown -R", "echo -R"),
    (check_links_to_mounts, "dockerfile", "ln -s /output output", "ln -s /output out"),
    (check_links_to_mounts, "dockerfile", "ln -s /data datasets", "mkdir datasets"),
    (check_entrypoint, "dockerfile", 'ENTRYPOINT ["vertkp"]', 'ENTRYPOINT ["python"]'),
    (check_entrypoint, "dockerfile", 'ENTRYPOINT ["vertkp"]', "ENTRYPOINT vertkp"),
    (check_entrypoint, "dockerfile", 'CMD ["--help"]', 'CMD ["fit"]'),
    (check_entrypoint, "setup_py", "vertkp = vertkp.cli:main", "vertkp = vertkp.main:main"),
    (check_no_caches, "dockerfile", "PIP_NO_CACHE_DIR=1", "PIP_NO_CACHE_DIR="),
    (check_no_caches, "dockerfile", "\n    && rm -rf /var/lib/apt/lists/*", ""),
    (check_layer_order, "dockerfile", "# Later installs are constrained", "COPY . .\n# Later installs are constrained"),
    (check_layer_order, "dockerfile", "pip install --no-deps --no-build-isolation -e .",
     "pip install --no-build-isolation -e ."),
    (check_dockerignore, "dockerignore", "!datasets/README.md\n", ""),
    (check_dockerignore, "dockerignore", "# editors and OS", "configs/*.yaml\n# editors and OS"),
    (check_dockerignore, "dockerignore", ".git\n", ""),
    (check_dockerignore, "dockerignore", "\noutput\n", "\n"),
    (check_dockerignore, "dockerignore", "datasets/*\n", ""),
    (check_dockerignore, "dockerfile", "COPY setup.py /tmp", "COPY setup.cfg /tmp"),
    (check_compose, "compose", ":/output", ":/outputs"),
    (check_compose, "compose", "capabilities: [gpu]", "capabilities: [compute]"),
    (check_compose, "compose", "shm_size: 8gb", "shm_size: 64mb"),
    (check_compose, "compose", 'command: ["demo"]', 'command: ["demos"]'),
    (check_compose, "compose", "dockerfile: docker/Dockerfile", "dockerfile: Dockerfile"),
    (check_compose, "compose", '["train", "--config-file"', '["evaluate", "--config-file"'),
    (check_documented_commands, "readme", "vertkp demo", "vertkp demos"),
    (check_documented_commands, "readme", "configs/kprcnn_hrnet_w32.yaml", "configs/kprcnn_hrnet_w48.yaml"),
    (check_documented_commands, "compose", "configs/kprcnn_r50.yaml", "configs/kprcnn_r51.yaml"),
    (check_documented_commands, "readme", "run --rm demo", "run --rm demos"),
    (check_documented_commands, "readme", "run --rm vertkp evaluate", "run --rm vertkp score"),
    (check_documented_commands, "readme", "--build-arg TORCH_CUDA_ARCH_LIST=", "--build-arg CUDA_ARCHS="),
    (check_documented_commands, "compose", "run --rm vertkp convert", "run --rm vertkp import"),
    (check_documented_commands, "dockerfile", "vertkp demo", "vertkp show"),
    (check_documented_flags, "readme", "--weights output/", "--checkpoint output/"),
    (check_documented_flags, "readme", "--score-threshold 0.3", "--min-score 0.3"),
    (check_readme_facts, "readme", "torch 2.8.0", "torch 2.7.1"),
    (check_readme_facts, "readme", "/whl/cu128", "/whl/cu126"),
    (check_readme_facts, "readme", "nvidia/cuda:12.8.1-devel", "nvidia/cuda:12.6.3-devel"),
    (check_readme_facts, "readme", "--gpus all --shm-size 8g --user", "--shm-size 8g --user"),
    (check_readme_facts, "readme", "-v \"$PWD/output:/output\"", "-v \"$PWD/output:/out\""),
    (check_readme_facts, "readme", "docker build -f docker/Dockerfile", "docker build -f Dockerfile"),
]


@pytest.mark.parametrize("check, field, old, new", MUTATIONS,
                         ids=[f"{c.__name__[len('check_'):]}-{i}" for i, (c, *_) in enumerate(MUTATIONS)])
def test_check_catches(project, check, field, old, new):
    text = getattr(project, field)
    assert old in text, f"the mutation no longer applies: {old!r} is not in {field}; update MUTATIONS"
    broken = dataclasses.replace(project, **{field: text.replace(old, new)})
    assert check(broken), f"{check.__name__} did not notice {old!r} -> {new!r} in {field}"


def test_dockerignore_rules():
    ignore = DockerIgnore("# c\n.git\n/output\n**/*.pth\ndatasets/*\n!datasets/README.md\n**/__pycache__\n")
    assert ignore.excludes(".git/objects/ab") and ignore.excludes("output/run/x.json")
    assert ignore.excludes("model.pth") and ignore.excludes("a/b/model.pth") and ignore.excludes("datasets/x/y.jpg")
    assert ignore.excludes("vertkp/data/__pycache__/x.pyc")
    assert not ignore.excludes("datasets/README.md") and not ignore.excludes("vertkp/output.py")
    assert not ignore.excludes("tools/train_net.py") and not ignore.excludes("gitignore")


def test_dockerfile_parser():
    ins = parse_dockerfile('ARG A=1\nFROM img:${A}\nARG B="x;y" \\\n  # note\n    C=\nENV D=$B E=${C:-e}\n'
                           'WORKDIR /w\nRUN X=1 pip install -c c.txt "p==$A" && ln -s /o o\n')
    assert [i.keyword for i in ins] == ["ARG", "FROM", "ARG", "ENV", "WORKDIR", "RUN"]
    assert substitute(ins[1].args, ins[1].env) == "img:1"
    assert ins[5].env == {"B": "x;y", "C": "", "D": "x;y", "E": "e"} and ins[5].workdir == "/w"
    (pi,) = pip_installs(ins)
    assert pi.options == {"-c": ["c.txt"]} and pi.requirements == ["p==$A"] and pi.env["X"] == "1"
    assert shell_commands(ins[5])[1] == ({}, ["ln", "-s", "/o", "o"])
