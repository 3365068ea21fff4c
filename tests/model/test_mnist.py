from __future__ import annotations

import gzip
import hashlib
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from model.mnist import FILES, MnistError, MnistFile, download_file, load_mnist, verify
from ops.local_servers import free_port


def test_loads_the_canonical_files(data_dir: Path) -> None:
    data = load_mnist(data_dir, download=False)
    assert data.train.images.shape == (60000, 28, 28)
    assert data.test.labels.shape == (10000,)
    assert set(np.unique(data.test.labels)) == set(range(10))
    assert sorted(data.sha256) == sorted(f.gz_name for f in FILES.values())


def test_raw_files_are_accepted(data_dir: Path, tmp_path: Path) -> None:
    for file in FILES.values():
        (tmp_path / file.name).write_bytes(gzip.decompress((data_dir / file.gz_name).read_bytes()))
    data = load_mnist(tmp_path, download=False)
    assert data.test.images.shape == (10000, 28, 28)


def test_checksum_failure_says_what_to_do(data_dir: Path, tmp_path: Path) -> None:
    for file in FILES.values():
        shutil.copy(data_dir / file.gz_name, tmp_path / file.gz_name)
    target = tmp_path / FILES["test_labels"].gz_name
    target.write_bytes(target.read_bytes()[:-100])
    with pytest.raises(MnistError, match=r"MD5 checksum mismatch .*delete it"):
        load_mnist(tmp_path, download=False)


def test_missing_files_without_download(tmp_path: Path) -> None:
    with pytest.raises(MnistError, match="missing"):
        load_mnist(tmp_path, download=False)


class _Mirror(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def mirrors(data_dir: Path, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A good mirror, one that serves corrupted files, and one that is down, all on 127.0.0.1."""
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    for file in FILES.values():
        shutil.copy(data_dir / file.gz_name, good / file.gz_name)
        corrupted = bytearray((data_dir / file.gz_name).read_bytes())
        corrupted[100] ^= 0xFF
        (bad / file.gz_name).write_bytes(bytes(corrupted))
    servers = []
    urls = {}
    for name, root in (("good", good), ("bad", bad)):
        port = free_port()
        handler = lambda *a, root=root, **k: _Mirror(*a, directory=str(root), **k)  # noqa: E731
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        urls[name] = f"http://127.0.0.1:{port}/"
    urls["down"] = f"http://127.0.0.1:{free_port()}/"
    yield urls
    for server in servers:
        server.shutdown()
        server.server_close()


def test_download_skips_down_and_corrupt_mirrors(mirrors: dict[str, str], tmp_path: Path) -> None:
    target_dir = tmp_path / "mnist"
    data = load_mnist(target_dir, mirrors=[mirrors["down"], mirrors["bad"], mirrors["good"]])
    assert data.train.images.shape == (60000, 28, 28)
    for file in FILES.values():
        verify(target_dir / file.gz_name, file)
    assert [p.name for p in target_dir.iterdir() if p.name.endswith(".part")] == []


def test_download_failure_leaves_nothing_behind(mirrors: dict[str, str], tmp_path: Path) -> None:
    file = FILES["test_labels"]
    with pytest.raises(MnistError) as excinfo:
        download_file(file, tmp_path / "mnist", [mirrors["down"], mirrors["bad"]], timeout=5)
    message = str(excinfo.value)
    assert "MD5 checksum mismatch" in message
    assert "refused" in message.lower()
    assert list((tmp_path / "mnist").iterdir()) == []


def test_download_verifies_the_canonical_md5(mirrors: dict[str, str], tmp_path: Path) -> None:
    wrong = MnistFile("t10k-labels-idx1-ubyte", hashlib.md5(b"other").hexdigest(), "0" * 32)
    with pytest.raises(MnistError, match="checksum"):
        download_file(wrong, tmp_path / "mnist", [mirrors["good"]], timeout=5)
    assert list((tmp_path / "mnist").iterdir()) == []
