"""``vertkp download`` against a local HTTP server (127.0.0.1, a thread) serving a zip built here:
whole and resumed downloads, a server that ignores Range, failures, the User-Agent, the whole command."""
import hashlib
import json
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers import REPO, run_tool
from tests.test_archives import mendeley_zip
from vertkp import cli
from vertkp.data.datasets import SPECS
from vertkp.data.datasets.spondylolisthesis import KEYPOINTRCNN_DIR
from vertkp.modeling.published import PUBLISHED_WEIGHTS
from vertkp.data.raw.download import USER_AGENT, DownloadError, build_parser, download, main
from vertkp.data.raw.extraction import MARKER

SPONDY = SPECS["spondylolisthesis"].published


class Handler(BaseHTTPRequestHandler):
    """Serves ``server.body`` with Range support; records each request's Range and User-Agent."""

    def do_GET(self):
        srv = self.server
        srv.requests.append({"range": self.headers.get("Range"), "user_agent": self.headers.get("User-Agent")})
        if srv.status != 200:
            self.send_error(srv.status)
            return
        body, start = srv.body, 0
        asked = self.headers.get("Range")
        if asked and not srv.ignore_range:
            start = int(asked.removeprefix("bytes=").rstrip("-"))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        chunk = body[start:]
        self.send_header("Content-Length", str(len(chunk)))
        self.end_headers()
        if srv.drop_first and len(srv.requests) == 1:  # half the body, then the connection drops
            chunk = chunk[:len(chunk) // 2]
            self.close_connection = True
        self.wfile.write(chunk)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """A local server; set ``.body`` (bytes), and optionally ``.drop_first``, ``.ignore_range``, ``.status``."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.body, srv.requests, srv.drop_first, srv.ignore_range, srv.status = b"", [], False, False, 200
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/download/1"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join()


@pytest.fixture
def body(tmp_path):
    return mendeley_zip(tmp_path / "fixture.zip").read_bytes() + bytes(range(256)) * 64  # some KiB to split


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_whole_download_with_vertkps_user_agent(server, body, tmp_path):
    server.body = body
    dest = download(server.url, tmp_path / "d" / "a.zip", progress=False, timeout=5)
    assert dest == tmp_path / "d" / "a.zip" and dest.read_bytes() == body
    assert sorted(p.name for p in dest.parent.iterdir()) == ["a.zip"]
    assert server.requests == [{"range": None, "user_agent": USER_AGENT}]
    assert USER_AGENT.startswith("vertkp/") and "Python-urllib" not in USER_AGENT


def test_a_dropped_download_resumes_with_a_range_request(server, body, tmp_path):
    server.body, server.drop_first = body, True
    dest, logs = tmp_path / "a.zip", []
    with pytest.raises(DownloadError, match="the connection closed after"):
        download(server.url, dest, progress=False, timeout=5, log=logs.append)
    part = tmp_path / "a.zip.part"
    half = len(body) // 2
    assert not dest.exists() and part.read_bytes() == body[:half]
    download(server.url, dest, expected_sha256=hashlib.sha256(body).hexdigest(), progress=False, timeout=5,
             log=logs.append)
    assert dest.read_bytes() == body and not part.exists()
    assert [r["range"] for r in server.requests] == [None, f"bytes={half}-"]
    assert logs == [f"resuming a.zip.part at {half / 1024:.1f} KiB"]


def test_a_server_that_ignores_range_restarts_from_byte_zero(server, body, tmp_path):
    server.body, server.ignore_range = body, True
    (tmp_path / "a.zip.part").write_bytes(b"stale bytes")
    logs = []
    download(server.url, tmp_path / "a.zip", progress=False, timeout=5, log=logs.append)
    assert (tmp_path / "a.zip").read_bytes() == body
    assert server.requests[0]["range"] == "bytes=11-"
    assert logs == ["the server ignored the resume request (HTTP 200, not 206): downloading again from byte 0"]


def test_a_complete_part_is_renamed_without_fetching_its_bytes(server, body, tmp_path):
    server.body = body
    (tmp_path / "a.zip.part").write_bytes(body)
    download(server.url, tmp_path / "a.zip", progress=False, timeout=5)
    assert (tmp_path / "a.zip").read_bytes() == body
    assert [r["range"] for r in server.requests] == [f"bytes={len(body)}-"]  # answered 416, no body


def test_a_resume_that_does_not_match_the_checksum_is_downloaded_again(server, body, tmp_path):
    server.body = body
    (tmp_path / "a.zip.part").write_bytes(b"another version of the file")  # a resume would join two files
    logs = []
    download(server.url, tmp_path / "a.zip", hashlib.sha256(body).hexdigest(), progress=False, timeout=5,
             log=logs.append)
    assert (tmp_path / "a.zip").read_bytes() == body
    assert [r["range"] for r in server.requests] == ["bytes=27-", None]
    assert logs[-1] == "the resumed download does not have the expected sha256: downloading it again from byte 0"


def test_an_archive_already_complete_is_not_fetched_again(server, body, tmp_path, capsys):
    server.body = body
    (tmp_path / SPONDY.file_name).write_bytes(b"whatever is there")
    assert download(server.url, tmp_path / SPONDY.file_name, progress=False) == tmp_path / SPONDY.file_name
    assert main(["spondylolisthesis", "--url", server.url, "--to", str(tmp_path), "--no-extract", "--no-progress"]) == 0
    assert server.requests == []
    out = capsys.readouterr().out
    assert out.startswith(f"{tmp_path / SPONDY.file_name} is already downloaded: not fetched again\n")


def manual_steps(dest):
    return (f"To download it by hand: open https://doi.org/{SPONDY.doi} (or {{url}}) in a browser, save the file "
            f"as {dest}, then run:\n  vertkp convert --dataset spondylolisthesis --root {dest}\n")


def test_an_http_error_exits_1_with_the_manual_steps(server, tmp_path, capsys):
    server.status = 404
    assert main(["spondylolisthesis", "--url", server.url, "--to", str(tmp_path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    prog = build_parser().prog
    assert err == f"{prog}: cannot download {server.url}: HTTP 404 Not Found\n" + manual_steps(
        tmp_path / SPONDY.file_name).format(url=server.url)
    assert list(tmp_path.iterdir()) == []
    assert server.requests[0]["user_agent"] == USER_AGENT


def test_a_refused_connection_exits_1_with_the_manual_steps(tmp_path, capsys):
    url, to = f"http://127.0.0.1:{free_port()}/download/1", tmp_path / "datasets"
    assert main(["spondylolisthesis", "--url", url, "--to", str(to), "--no-progress", "--timeout", "5"]) == 1
    first, rest = capsys.readouterr().err.split("\n", 1)
    assert first.startswith(f"{build_parser().prog}: cannot download {url}: ")
    assert first.endswith("Connection refused (offline, or the server is unreachable?)")
    assert rest == manual_steps(to / SPONDY.file_name).format(url=url)
    assert list(tmp_path.iterdir()) == []  # not even the folder


def test_a_dropped_connection_keeps_the_part_and_says_so(server, body, tmp_path, capsys):
    server.body, server.drop_first = body, True
    assert main(["spondylolisthesis", "--url", server.url, "--to", str(tmp_path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "the connection closed after" in err.splitlines()[0]
    part = tmp_path / f"{SPONDY.file_name}.part"
    assert err.endswith(f"(the partial download {part} is kept: run this command again to resume it)\n")


def test_the_command_downloads_extracts_and_prints_the_convert_command(server, body, tmp_path, capsys):
    server.body = mendeley_zip(tmp_path / "fixture.zip").read_bytes()
    to = tmp_path / "datasets"
    assert main(["spondylolisthesis", "--url", server.url, "--to", str(to), "--no-progress"]) == 0
    out = capsys.readouterr().out.splitlines()
    folder = to / "spondylolisthesis"
    sha = hashlib.sha256(server.body).hexdigest()
    assert out[0] == f"downloaded {to / SPONDY.file_name}"
    assert out[1] == f"warning: not the published v1 archive (sha256 {sha}, expected {SPONDY.sha256})"
    assert out[2].startswith("extracted 3 files (") and out[2].endswith(f"to {folder} (3 junk entries skipped)")
    assert out[3:] == ["convert it with:", f"  vertkp convert --dataset spondylolisthesis --root {folder}"]
    assert (folder / "Some Folder" / KEYPOINTRCNN_DIR / "images" / "train" / "a.jpg").read_bytes() == b"jpeg a"
    assert json.loads((folder / MARKER).read_text())["sha256"] == sha
    assert sorted(p.name for p in to.iterdir()) == ["spondylolisthesis", SPONDY.file_name]
    assert main(["spondylolisthesis", "--url", server.url, "--to", str(to), "--no-progress"]) == 0  # again: reused
    again = capsys.readouterr().out.splitlines()
    assert again[2] == f"reused the complete extraction of {SPONDY.file_name} in {folder}"
    assert len(server.requests) == 1


def test_the_default_folder_is_vertkp_datasets(server, tmp_path, monkeypatch, capsys):
    server.body = mendeley_zip(tmp_path / "fixture.zip").read_bytes()
    monkeypatch.setenv("VERTKP_DATASETS", str(tmp_path / "elsewhere"))
    assert main(["spondylolisthesis", "--url", server.url, "--no-extract", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "elsewhere" / SPONDY.file_name).read_bytes() == server.body
    assert out.endswith(f"--root {tmp_path / 'elsewhere' / SPONDY.file_name}\n")


def test_an_archive_refused_by_the_checks_exits_2(server, tmp_path, capsys):
    server.body = b"<html>Access denied</html>"
    assert main(["spondylolisthesis", "--url", server.url, "--to", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "not a zip archive" in err
    assert err.endswith(f"if {SPONDY.file_name} is damaged, remove it and run this command again\n")


def test_buu_lspine_needs_the_authors_permission(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", sys.argv[:])  # vertkp.cli sets sys.argv[0] to the command run
    assert cli.main(["download", "buu-lspine"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vertkp download: BUU-LSPINE has no public download: it needs the authors' permission "
                          "(Klinwichit et al., Applied Sciences 2023, 13(15):8646")
    assert err.endswith("convert it with:\n  vertkp convert --dataset buu-lspine --root <zip or folder>\n")


@pytest.mark.parametrize("argv", [[], ["mnist"], ["spondylolisthesis", "--no-extract", "--extract-to", "x"],
                                  ["spondylolisthesis", "--url", "not a url"], ["spondylolisthesis", "--timeout", "0"],
                                  ["spondylolisthesis", "--to", __file__]])
def test_bad_arguments_exit_2(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv + ["--to", str(tmp_path)] if argv and "--to" not in argv else argv)
    assert e.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_the_tool_wrapper_and_the_import_contract():
    r = run_tool("download", "--help", timeout=120)
    assert r.returncode == 0 and "--no-extract" in r.stdout
    code = ("import json, sys, vertkp.data.raw.download, vertkp.data.raw.archives\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'detectron2'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


# ---------------------------------------------------------------------------------------------- weights

HRNET_W = PUBLISHED_WEIGHTS["hrnet-w32-imagenet"]


@pytest.fixture(scope="module")
def hrnet_safetensors():
    """The bytes of a timm hrnet_w32 classification checkpoint, as the hub serves it (random values)."""
    torch = pytest.importorskip("torch")
    timm = pytest.importorskip("timm")
    from safetensors.torch import save

    torch.manual_seed(0)
    return save(timm.create_model("hrnet_w32").state_dict())


def test_hrnet_weights_download_and_convert_into_the_file_the_config_names(server, hrnet_safetensors, tmp_path,
                                                                          monkeypatch, capsys):
    from vertkp.modeling.weights import D2_TIMM_PREFIX, read_state_dict

    server.body = hrnet_safetensors
    monkeypatch.chdir(tmp_path)
    assert main(["hrnet-w32-imagenet", "--url", server.url, "--no-progress"]) == 0
    out = capsys.readouterr().out
    made = tmp_path / "weights" / HRNET_W.output
    assert (REPO / "configs" / "kprcnn_hrnet_w32.yaml").read_text().count(f'WEIGHTS: "weights/{HRNET_W.output}"') == 1
    assert out.splitlines()[-1] == f"weights/{HRNET_W.output} is ready: the configs name weights/{HRNET_W.output} " \
                                   "and use it as is"
    assert f"sha256 {hashlib.sha256(hrnet_safetensors).hexdigest()}" in out
    sd = read_state_dict(made)
    assert all(k.startswith(D2_TIMM_PREFIX) for k in sd) and f"{D2_TIMM_PREFIX}conv1.weight" in sd
    assert main(["hrnet-w32-imagenet", "--url", server.url, "--no-progress"]) == 0  # again: nothing fetched
    assert "is already there: not fetched again" in capsys.readouterr().out
    assert len(server.requests) == 1


def test_a_checkpoint_copied_by_hand_is_converted_without_network(hrnet_safetensors, tmp_path, no_network, capsys):
    (tmp_path / HRNET_W.file_name).write_bytes(hrnet_safetensors)
    assert main(["hrnet-w32-imagenet", "--to", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path / HRNET_W.file_name} is already downloaded: not fetched again" in out
    assert out.endswith(f"use it with MODEL.WEIGHTS {tmp_path / HRNET_W.output}\n")
    assert no_network == []


def test_a_damaged_weights_download_is_refused_and_an_unreachable_one_says_how(server, tmp_path, capsys):
    server.body = b"<html>rate limited</html>"
    assert main(["hrnet-w32-imagenet", "--url", server.url, "--to", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "not a readable checkpoint" in err and f"if {tmp_path / HRNET_W.file_name} is damaged, remove it" in err
    assert not (tmp_path / HRNET_W.output).exists()
    url = f"http://127.0.0.1:{free_port()}/model.safetensors"
    assert main(["hrnet-w32-imagenet", "--url", url, "--to", str(tmp_path / "w"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"cannot download {url}" in err and f"save it as {tmp_path / 'w' / HRNET_W.file_name}" in err


def test_detectron2_weights_are_downloaded_as_they_are(server, tmp_path, capsys):
    w = PUBLISHED_WEIGHTS["kprcnn-r50-coco"]
    server.body = b"pickled weights"
    assert main(["kprcnn-r50-coco", "--url", server.url, "--to", str(tmp_path), "--no-progress"]) == 0
    assert (tmp_path / w.output).read_bytes() == server.body
    assert capsys.readouterr().out.endswith(f"use it with MODEL.WEIGHTS {tmp_path / w.output}\n")
    with pytest.raises(SystemExit):
        main(["kprcnn-r50-coco", "--no-extract"])
