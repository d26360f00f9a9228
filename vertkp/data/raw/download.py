"""``vertkp download`` / ``tools/download.py``: fetch a public dataset archive (verify it, extract it)
or initial weights (convert them for detectron2). It is the only vertkp command that touches the
network (besides a weights URL a user names in ``MODEL.WEIGHTS``).

    vertkp download spondylolisthesis [--to DIR] [--url URL] [--extract-to FOLDER] [--no-extract]
            [--timeout S] [--no-progress]
    vertkp download buu-lspine      (no public download: says how to get it)
    vertkp download hrnet-w32-imagenet [--to DIR] [--url URL]   (weights/hrnet_w32_imagenet.pth)
    vertkp download mobilenetv4-conv-small-imagenet [--to DIR] [--url URL]
                                       (weights/mobilenetv4_conv_small_imagenet.pth)
    vertkp download kprcnn-r50-coco    [--to DIR] [--url URL]   (weights/model_final_a6e10b.pkl)

The archive is saved as ``DIR/<file name>`` (``DatasetSpec.published``): downloaded into
``<file name>.part``, renamed when complete, so a file under the final name is
always whole; an interrupted download is resumed with an HTTP Range request.
Its SHA-256 is compared with the published one (a mismatch is a warning), then
``open_dataset`` extracts it safely and the command to convert it is printed.

Weights (``vertkp.modeling.published.PUBLISHED_WEIGHTS``) go to ``DIR`` (default ``weights/``,
the folder the configs name them in); a timm checkpoint is then converted into the
detectron2 weights file the configs name (``vertkp.modeling.weights``). A source file
already in ``DIR`` (copied there by hand on an offline machine) is converted without
any download.

Exit status: 0 done, 1 the download failed (offline, unreachable, an HTTP error:
the manual steps are printed), 2 bad arguments, BUU-LSPINE, or an archive or
checkpoint refused.
"""
from __future__ import annotations

import argparse
import http.client
import os
import shlex
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Optional

from tqdm import tqdm

from ... import __version__
from ...files import InvalidInput, output_folder
from ..datasets import SPECS
from ...modeling.published import PUBLISHED_WEIGHTS, WEIGHTS_FOLDER
from .archives import open_dataset, verify_sha256
from .extraction import format_bytes, sha256_file

__all__ = ["USER_AGENT", "TIMEOUT", "DownloadError", "download", "build_parser", "main"]

# Sent with every request: vertkp's own, honest name (Mendeley's CDN refuses Python's default).
USER_AGENT = f"vertkp/{__version__} (+dataset download)"
TIMEOUT = 60.0  # seconds without data (connecting, or between reads) before a download gives up
CHUNK = 1 << 20  # bytes per read


class DownloadError(OSError):
    """A response that cannot complete the download (the connection closed early)."""


def _stderr(message: str) -> None:
    tqdm.write(message, file=sys.stderr)


def _content_range_total(value: Optional[str]) -> Optional[int]:
    """The full length in a ``Content-Range: bytes */N`` (or ``bytes a-b/N``) header."""
    total = (value or "").rpartition("/")[2].strip()
    return int(total) if total.isdigit() else None


def _fetch(url: str, part: Path, progress: bool, timeout: float, log: Callable[[str], None]) -> bool:
    """Download ``url`` into ``part``, resuming what it holds. Returns whether earlier bytes were kept."""
    start = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code != 416 or not start:
            raise
        total = _content_range_total(e.headers.get("Content-Range"))
        e.close()
        if total == start:  # nothing after the last byte: the partial file was complete
            return True
        log(f"the server cannot resume at byte {start} (HTTP 416): downloading again from byte 0")
        part.unlink()
        return _fetch(url, part, progress, timeout, log)
    with response:
        if start and response.status == 206:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {start}-"):
                log(f"the server resumed at {content_range!r}, not byte {start}: downloading again from byte 0")
                part.unlink()
                response.close()
                return _fetch(url, part, progress, timeout, log)
            log(f"resuming {part.name} at {format_bytes(start)}")
        elif start:
            log(f"the server ignored the resume request (HTTP {response.status}, not 206): "
                "downloading again from byte 0")
            start = 0
        length = response.headers.get("Content-Length", "")
        length = int(length) if length.isdigit() else None
        received = 0
        part.parent.mkdir(parents=True, exist_ok=True)  # only now: a failed request leaves no folder behind
        with open(part, "ab" if start else "wb") as f, tqdm(
                total=None if length is None else start + length, initial=start, unit="B", unit_scale=True,
                unit_divisor=1024, desc=part.name[:-len(".part")], disable=not progress) as bar:
            while chunk := response.read(CHUNK):
                f.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        if length is not None and received < length:
            raise DownloadError(f"the connection closed after {format_bytes(start + received)} of "
                                f"{format_bytes(start + length)}")
    return bool(start)


def download(url: str, dest, expected_sha256: Optional[str] = None, progress: bool = True,
             timeout: float = TIMEOUT, log: Optional[Callable[[str], None]] = None) -> Path:
    """Download ``url`` to the file ``dest``, resumably; an existing ``dest`` is returned as is.

    The bytes go to ``dest.part``, renamed to ``dest`` when complete. A ``.part`` left by an
    interrupted run is resumed with ``Range: bytes=<its size>-``; a server that answers 200
    instead of 206 sends the whole file, written from byte 0.

    Args:
        expected_sha256: when a *resumed* download does not match it, the file is downloaded
            once more from byte 0 (a resume can join two versions of a file). A whole download
            that does not match is kept: the caller reports it.
        timeout: seconds without data (connecting, or between reads) before giving up.
        log: takes one-line messages (resume, restart); default: stderr.

    Raises:
        urllib.error.URLError (HTTPError included), OSError (TimeoutError, DownloadError),
        http.client.HTTPException: the download failed; the ``.part`` is kept to resume.
        ValueError: ``url`` is not a URL.
    """
    dest = Path(dest)
    if dest.is_file():
        return dest
    log = log or _stderr
    part = dest.with_name(dest.name + ".part")
    resumed = _fetch(url, part, progress, timeout, log)
    if resumed and expected_sha256 and sha256_file(part, progress) != expected_sha256.lower():
        log("the resumed download does not have the expected sha256: downloading it again from byte 0")
        part.unlink()
        _fetch(url, part, progress, timeout, log)
    os.replace(part, dest)
    return dest


def _reason(error: BaseException, timeout: float) -> str:
    """Why a download failed, in one phrase."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    unreachable = isinstance(error, urllib.error.URLError)
    if unreachable:
        error = error.reason  # the socket error, or a string
    if isinstance(error, TimeoutError):
        return f"no answer for {timeout:g} s (timed out: offline, or the server is unreachable?)"
    if unreachable:
        return f"{error} (offline, or the server is unreachable?)"
    return str(error) or type(error).__name__


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Download a public dataset archive (resumable, SHA-256 verified) and extract it safely, or "
                    "initial weights (converted for detectron2). Nothing else in vertkp downloads, unless you name a "
                    "weights URL (MODEL.WEIGHTS, --weights).",
    )
    weights = "; ".join(f"{k}: {w.description} ({WEIGHTS_FOLDER}/{w.output})" for k, w in PUBLISHED_WEIGHTS.items())
    datasets = "; ".join(f"{s.name}: {s.title} (DOI {s.published.doi})" if s.published else
                         f"{s.name}: {s.title}, says how to get it (no public download)" for s in SPECS.values())
    p.add_argument("dataset", metavar="NAME", choices=[*SPECS, *PUBLISHED_WEIGHTS], help=f"{datasets}; {weights}")
    p.add_argument("--to", type=Path, default=None,
                   help="folder the download is saved in (default: datasets $VERTKP_DATASETS, else datasets/; "
                        f"weights {WEIGHTS_FOLDER}/)")
    p.add_argument("--url", default=None,
                   help="download from this URL instead of the published one (a mirror); "
                        "the checksum is still compared with the published one")
    p.add_argument("--extract-to", type=Path, default=None,
                   help="folder to extract into (default DIR/spondylolisthesis)")
    p.add_argument("--no-extract", action="store_true",
                   help="download and verify only (vertkp convert --root also takes the zip)")
    p.add_argument("--timeout", type=float, default=TIMEOUT,
                   help=f"seconds without data before giving up (default {TIMEOUT:g})")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return p


def main(argv=None) -> int:
    """Exit 0 done, 1 the download failed, 2 bad arguments, BUU-LSPINE, or an archive refused."""
    parser = build_parser()
    args = parser.parse_args(argv)
    spec = SPECS.get(args.dataset)
    if spec is not None and spec.published is None:
        print(f"{parser.prog}: {spec.access}", file=sys.stderr)
        return 2
    if args.no_extract and args.extract_to is not None:
        parser.error("--extract-to and --no-extract exclude each other")
    if args.timeout <= 0:
        parser.error(f"--timeout must be positive, got {args.timeout:g}")
    if args.dataset in PUBLISHED_WEIGHTS:
        return _download_weights(args, parser)
    published = spec.published
    folder = _folder(args.to, Path(os.environ.get("VERTKP_DATASETS", "datasets")), parser)
    dest = folder / published.file_name
    url = args.url or published.url
    progress = not args.no_progress
    convert = f"vertkp convert --dataset {args.dataset} --root"
    if dest.is_file():
        print(f"{dest} is already downloaded: not fetched again")
    else:
        by_hand = (f"To download it by hand: open {published.doi_url} (or {url}) in a browser, save the file "
                   f"as {dest}, then run:\n  {convert} {shlex.quote(str(dest))}")
        if not _download_told(url, dest, published.sha256, args, parser, by_hand):
            return 1
        print(f"downloaded {dest}")
    try:
        if args.no_extract:
            verified, note = verify_sha256(sha256_file(dest, progress), spec)
            root, notes = dest, [note]
        else:
            dataset = open_dataset(dest, spec, args.extract_to, progress)
            verified, root, notes = dataset.verified, dataset.folder, dataset.notes
    except InvalidInput as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        if e.path == str(dest):
            print(f"if {dest.name} is damaged, remove it and run this command again", file=sys.stderr)
        return 2
    for i, note in enumerate(notes):
        print(f"warning: {note}" if i == 0 and verified is False else note)
    print(f"convert it with:\n  {convert} {shlex.quote(str(root))}")
    return 0


def _folder(given: Optional[Path], default: Path, parser) -> Path:
    """The folder ``--to`` names (``default`` without it); a file there is a usage error."""
    try:
        return output_folder(given if given is not None else default, "--to")
    except ValueError as e:
        parser.error(str(e))


def _download_told(url: str, dest: Path, sha256: Optional[str], args, parser, by_hand: str) -> bool:
    """:func:`download` with the command's flags; a bad URL is a usage error, a failed download
    is told with its reason, ``by_hand`` (how to get the file without this command) and the
    partial download kept for a resume. True when the file is there."""
    try:
        download(url, dest, sha256, not args.no_progress, args.timeout)
        return True
    except ValueError as e:
        parser.error(f"--url {url}: {e}")
    except (OSError, http.client.HTTPException) as e:
        part = dest.with_name(dest.name + ".part")
        print(f"{parser.prog}: cannot download {url}: {_reason(e, args.timeout)}", file=sys.stderr)
        print(by_hand, file=sys.stderr)
        if part.is_file():
            print(f"(the partial download {part} is kept: run this command again to resume it)", file=sys.stderr)
        return False


def _download_weights(args, parser) -> int:
    """``vertkp download <weights>``: fetch the file into ``--to`` (default weights/), convert a timm
    checkpoint into the detectron2 weights file the configs name."""
    w = PUBLISHED_WEIGHTS[args.dataset]
    if args.no_extract or args.extract_to is not None:
        parser.error(f"--extract-to and --no-extract are for dataset archives, not for {args.dataset}")
    folder = _folder(args.to, Path(WEIGHTS_FOLDER), parser)
    source, output = folder / w.file_name, folder / w.output
    files = Path(os.path.realpath(folder))  # through a link to a folder not made yet (the Docker image's weights/)
    use = (f"the configs name {output} and use it as is" if folder == Path(WEIGHTS_FOLDER)
           else f"use it with MODEL.WEIGHTS {output}")
    if output.is_file():
        print(f"{output} is already there: not fetched again; {use}")
        return 0
    url = args.url or w.url
    if source.is_file():
        print(f"{source} is already downloaded: not fetched again")
    else:
        by_hand = (f"To get it by hand: download {url} where there is network, save it as {source}, then run "
                   f"this command again (it converts the file without downloading)")
        if not _download_told(url, files / w.file_name, None, args, parser, by_hand):
            return 1
        print(f"downloaded {source} (sha256 {sha256_file(source, False)})")
    if w.timm_model:
        from ...modeling.weights import WeightsError, convert_timm_checkpoint  # torch and timm: only here

        try:
            counts = convert_timm_checkpoint(source, files / w.output, w.timm_model)
        except WeightsError as e:
            print(f"{parser.prog}: error: {e}", file=sys.stderr)
            print(f"if {source} is damaged, remove it and run this command again", file=sys.stderr)
            return 2
        print(f"converted it into {output} ({counts['tensors']} tensors of timm's {w.timm_model} backbone)")
    print(f"{output} is ready: {use}")
    return 0
