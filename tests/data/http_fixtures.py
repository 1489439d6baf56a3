"""A tiny HTTP file server on 127.0.0.1 for the download tests, and file makers.

:class:`FileServer` serves byte strings at chosen paths from a background
thread on an ephemeral port of 127.0.0.1, and can misbehave on purpose:
answer with an HTTP error, announce more bytes than it sends, or send a
short body without announcing a length, or trickle the body a few bytes at
a time (bounded: it stops at the end of the body or when the client hangs
up).  It records every request path.
Nothing here ever contacts another address.

The makers write files in the *real* formats: :func:`idx_bytes` (the IDX
format of MNIST) and :func:`cifar_tarball` (the CIFAR-10 binary tarball);
:func:`fake_mnist` / :func:`serve_mnist` and :func:`fake_cifar` /
:func:`serve_cifar` make a small data set and serve it.

The pytest fixtures shared by the ``tests/data/test_<module>.py`` files of
``minilplr.data`` are here too (each file imports them by name):
``local_only`` (autouse: no request past 127.0.0.1, the default mirrors on a
closed port, the per-process caches emptied), ``server`` (a running
:class:`FileServer`) and ``cache`` (an empty cache folder).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import socket
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests

from minilplr.data import cache as CA
from minilplr.data import cifar as C
from minilplr.data import dataset as DS
from minilplr.data import download as DL
from minilplr.data import mnist as M

IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B,
             np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


class FileServer:
    """Serve ``routes[path] = (mode, body, status)`` on ``http://127.0.0.1:<port>``.

    Modes: ``"ok"`` (200 and the body), ``"status"`` (the given error status),
    ``"truncate"`` (Content-Length of the whole body, half of it sent, then the
    connection closed), ``"short"`` (no Content-Length, half the body, close),
    ``"trickle"`` (Content-Length of the whole body, then ``step`` bytes every
    ``interval`` seconds: the whole body takes ``len(body) / step * interval``
    seconds at most, and the handler stops as soon as the client hangs up).
    """

    def __init__(self):
        self.routes: dict = {}
        self.requests: list = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 5  # seconds a connection may idle: requests are bounded

            def do_GET(self):  # noqa: N802 (http.server's naming)
                server.requests.append(self.path)
                mode, body, status, step, interval = server.routes.get(self.path, ("status", b"", 404, 0, 0))
                if mode == "status":
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                if mode != "short":
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if mode == "ok":
                    self.wfile.write(body)
                elif mode == "trickle":
                    try:
                        for i in range(0, len(body), step):
                            self.wfile.write(body[i:i + step])
                            self.wfile.flush()
                            if i + step < len(body):
                                time.sleep(interval)
                    except OSError:  # the client hung up: stop
                        self.close_connection = True
                else:  # "truncate" / "short": half the body, then hang up
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.running = False

    def add(self, path: str, body: bytes = b"", mode: str = "ok", status: int = 200,
            step: int = 1, interval: float = 0.25) -> None:
        self.routes[path] = (mode, body, status, step, interval)

    def url(self, prefix: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{prefix}"

    def start(self) -> "FileServer":
        self.thread.start()
        self.running = True
        return self

    def stop(self) -> None:
        if self.running:
            self.httpd.shutdown()
            self.running = False
        self.httpd.server_close()
        self.thread.join(timeout=5)


def closed_port_url() -> str:
    """``http://127.0.0.1:<port>/`` where nothing listens (connection refused)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/"


def idx_bytes(a: np.ndarray) -> bytes:
    """The IDX encoding of ``a``: ``00 00 <type> <ndim>``, big-endian uint32 dims, big-endian data."""
    a = np.asarray(a)
    big = a.dtype.newbyteorder(">") if a.dtype.itemsize > 1 else a.dtype
    code = IDX_CODES[np.dtype(big)]
    header = bytes([0, 0, code, a.ndim]) + np.asarray(a.shape, dtype=">u4").tobytes()
    return header + a.astype(big).tobytes()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def cifar_records(images: np.ndarray, labels: np.ndarray) -> bytes:
    """CIFAR-10 binary records: label byte then 3,072 pixel bytes (R, G, B planes)."""
    rec = np.concatenate([labels.astype(np.uint8)[:, None], images.reshape(len(labels), -1)], axis=1)
    return rec.astype(np.uint8).tobytes()


def cifar_tarball(batches: dict, extra=()) -> bytes:
    """A ``.tar.gz`` with ``cifar-10-batches-bin/<name>`` for each ``name -> bytes`` of ``batches``.

    ``extra``: further ``TarInfo`` members (``(info, data or None)``), e.g. hostile ones.
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        folder = tarfile.TarInfo("cifar-10-batches-bin")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for name, data in [("readme.html", b"<html></html>"), ("batches.meta.txt", b"airplane\n")] + list(batches.items()):
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


# ---------------------------------------------------------------- shared by the data tests


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def remote(name: str, body: bytes, size=True, algorithm="sha256") -> DL.RemoteFile:
    return DL.RemoteFile(name, len(body) if size else None, (algorithm, hashlib.new(algorithm, body).hexdigest()))


def run_in_two_threads(task) -> list:
    """Call ``task()`` in two threads at once; their results (or exceptions) in finishing order."""
    results = []

    def worker():
        try:
            results.append(task())
        except Exception as exc:  # noqa: BLE001 (reported by the caller's assert)
            results.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


def listing(folder):
    """Every file and folder under ``folder`` (hidden ones included), as relative strings."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture(autouse=True)
def local_only(monkeypatch, tmp_path):
    """No test reaches past 127.0.0.1, and none writes outside its tmp folder."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv(CA.ENV_VAR, str(tmp_path / "default-cache"))
    dead = closed_port_url()
    monkeypatch.setattr(M, "MNIST_MIRRORS", (dead,))
    monkeypatch.setattr(C, "CIFAR_MIRRORS", (dead,))
    real_get = requests.get

    def guarded_get(url, *args, **kwargs):
        assert urlsplit(url).hostname == "127.0.0.1", f"test tried to reach {url}"
        return real_get(url, *args, **kwargs)

    monkeypatch.setattr(requests, "get", guarded_get)
    CA.forget_verified()
    DS.forget_unreachable()


@pytest.fixture
def server():
    s = FileServer().start()
    yield s
    s.stop()


@pytest.fixture
def cache(tmp_path):
    folder = tmp_path / "cache"
    folder.mkdir()
    return folder


def data_lines(caplog):
    """The messages logged on ``minilplr.data``, each checked to be a single line."""
    lines = [r.getMessage() for r in caplog.records if r.name == "minilplr.data"]
    assert all("\n" not in line for line in lines), lines
    return lines


def fake_mnist(per_digit=20, seed=0):
    """Images (10*per_digit, 28, 28) uint8 with labels 0-9: digit d has ink level ~ 20*d."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10, dtype=np.uint8), per_digit)
    rng.shuffle(labels)
    images = (rng.integers(0, 20, (labels.size, 28, 28)) + 20 * labels[:, None, None]).astype(np.uint8)
    return images, labels


def serve_mnist(server, images, labels, prefix="/mnist/"):
    files = {}
    bodies = {"train-images-idx3-ubyte.gz": gz(idx_bytes(images)), "train-labels-idx1-ubyte.gz": gz(idx_bytes(labels))}
    for name, body in bodies.items():
        server.add(prefix + name, body)
        files[name] = remote(name, body)
    return {"train": (files["train-images-idx3-ubyte.gz"], files["train-labels-idx1-ubyte.gz"])}


def fake_cifar(records_per_batch=20, seed=0):
    """Six batches; labels cycle 0-9; class c has red level ~ 20*c."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in C.CIFAR_MEMBERS["train"] + C.CIFAR_MEMBERS["test"]:
        labels = np.arange(records_per_batch, dtype=np.uint8) % 10
        images = rng.integers(0, 20, (records_per_batch, 3, 32, 32)).astype(np.uint8)
        images[:, 0] += (20 * labels)[:, None, None].astype(np.uint8)
        out[name] = (images, labels)
    return out


def serve_cifar(server, batches, extra=(), prefix="/kriz/"):
    body = cifar_tarball({name: cifar_records(*il) for name, il in batches.items()}, extra)
    server.add(prefix + "cifar-10-binary.tar.gz", body)
    return remote("cifar-10-binary.tar.gz", body)
