"""Shared fixtures. Tests that need detectron2 skip with a reason when it is absent.

Markers: ``slow`` (end to end, or tools run in fresh interpreters: the demo, the
notebook, training, the benchmarks, predict, multi-process evaluation; see
pytest.ini). ``make test`` runs everything; ``make test-fast`` leaves the slow ones out.
"""
import os

import pytest

from tests.helpers import make_phantom_set

os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_terminal_summary(terminalreporter):
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "detectron2" in str(r.longrepr)]
    if skipped:
        terminalreporter.write_line(
            f"vertkp: {len(skipped)} test(s) that need detectron2 were SKIPPED because detectron2 is not "
            "installed; install it (README, Install) to run them.",
            yellow=True,
        )


@pytest.fixture
def run_tool():
    """``tests.helpers.run_tool``: run ``tools/<name>.py`` in a subprocess."""
    from tests.helpers import run_tool as run

    return run


@pytest.fixture(scope="session")
def phantom_root(tmp_path_factory):
    """The session's tiny phantom datasets root (``tests.helpers.make_phantom_set``), made once."""
    return make_phantom_set(tmp_path_factory.mktemp("vertkp_phantoms"))


@pytest.fixture
def registered_phantoms(phantom_root):
    """``phantoms_{train,val}`` registered from ``phantom_root`` for one test, then the
    default registration back."""
    from vertkp.data.loading.registration import register_all

    register_all(phantom_root)
    yield phantom_root
    register_all()


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a test module: with other processes on the cores, OpenMP threads
    waiting on each other make 2 threads several times slower than 1."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def no_network(monkeypatch):
    """A machine without network: every internet connection and name lookup raises OSError (local
    sockets, which data-loader workers pass tensors through, still work). Yields the list of
    attempts, so a test can check that none was made at all (code that swallows the error and
    falls back would otherwise pass)."""
    import socket

    attempts = []
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def refuse(what):
        attempts.append(what)
        raise OSError(f"network access blocked by the test (no network here): {what}")

    def guarded(original):
        def call(sock, address, *args):
            if sock.family == getattr(socket, "AF_UNIX", None):
                return original(sock, address, *args)
            return refuse(address)
        return call

    monkeypatch.setattr(socket.socket, "connect", guarded(connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(connect_ex))
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: refuse(host))
    monkeypatch.setattr(socket, "create_connection", lambda address, *a, **k: refuse(address))
    yield attempts
