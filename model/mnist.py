"""The MNIST data set: its canonical files, their checksums, loading and downloading."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.card import file_sha256
from model.idx import IdxFormatError, parse_idx, read_idx_bytes

log = logging.getLogger(__name__)

DEFAULT_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)


@dataclass(frozen=True)
class MnistFile:
    """One of the four canonical files, with the MD5 of its gzip and raw forms."""

    name: str
    gz_md5: str
    raw_md5: str

    @property
    def gz_name(self) -> str:
        return f"{self.name}.gz"


FILES: dict[str, MnistFile] = {
    "train_images": MnistFile(
        "train-images-idx3-ubyte", "f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb"
    ),
    "train_labels": MnistFile(
        "train-labels-idx1-ubyte", "d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624"
    ),
    "test_images": MnistFile(
        "t10k-images-idx3-ubyte", "9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea"
    ),
    "test_labels": MnistFile(
        "t10k-labels-idx1-ubyte", "ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637"
    ),
}


class MnistError(RuntimeError):
    """MNIST could not be read or fetched; the message says why and what to do."""


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8 [N, 28, 28]
    labels: np.ndarray  # int64 [N]


@dataclass(frozen=True)
class Mnist:
    train: Split
    test: Split
    sha256: dict[str, str]  # file name -> sha256 of the file that was read


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def locate(data_dir: Path, file: MnistFile) -> Path | None:
    """The gzip or raw copy of ``file`` in ``data_dir``, if either exists."""
    for candidate in (data_dir / file.gz_name, data_dir / file.name):
        if candidate.is_file():
            return candidate
    return None


def verify(path: Path, file: MnistFile) -> None:
    """Refuse a file whose MD5 is not the canonical one for its form."""
    expected = file.gz_md5 if path.name.endswith(".gz") else file.raw_md5
    actual = md5_of(path)
    if actual != expected:
        raise MnistError(
            f"{path}: MD5 checksum mismatch (expected {expected}, got {actual}); "
            "the file is corrupt or truncated: delete it and run again to download a fresh copy"
        )


def _read_split(data_dir: Path, images: MnistFile, labels: MnistFile, sha256: dict[str, str]) -> Split:
    arrays = []
    for file in (images, labels):
        path = locate(data_dir, file)
        if path is None:
            raise MnistError(f"{data_dir}: {file.gz_name} is missing")
        verify(path, file)
        try:
            arrays.append(parse_idx(read_idx_bytes(path), source=str(path)))
        except IdxFormatError as exc:
            raise MnistError(str(exc)) from exc
        sha256[path.name] = file_sha256(path)
    image_array, label_array = arrays
    if image_array.ndim != 3 or image_array.shape[1:] != (28, 28) or label_array.ndim != 1:
        raise MnistError(f"{data_dir}: unexpected shapes {image_array.shape} / {label_array.shape}")
    if len(image_array) != len(label_array):
        raise MnistError(f"{data_dir}: {len(image_array)} images but {len(label_array)} labels")
    return Split(images=image_array, labels=label_array.astype(np.int64))


def load_mnist(data_dir: Path, *, download: bool = True, mirrors: Sequence[str] = DEFAULT_MIRRORS) -> Mnist:
    """Read the four files from ``data_dir``, downloading any that are missing."""
    missing = [f for f in FILES.values() if locate(data_dir, f) is None]
    if missing:
        if not download:
            raise MnistError(f"{data_dir}: missing {', '.join(f.gz_name for f in missing)}")
        for file in missing:
            download_file(file, data_dir, mirrors)
    sha256: dict[str, str] = {}
    train = _read_split(data_dir, FILES["train_images"], FILES["train_labels"], sha256)
    test = _read_split(data_dir, FILES["test_images"], FILES["test_labels"], sha256)
    return Mnist(train=train, test=test, sha256=sha256)


def load_test_split(data_dir: Path) -> Split:
    """Only the 10,000 test digits (no download): what evaluation needs."""
    return _read_split(data_dir, FILES["test_images"], FILES["test_labels"], {})


def download_file(file: MnistFile, data_dir: Path, mirrors: Sequence[str], timeout: float = 30.0) -> Path:
    """Fetch ``file`` from the first mirror that serves a copy with the right MD5.

    The bytes go to a temporary file in ``data_dir`` that is renamed into place only
    after its checksum matched, so no half-written or corrupt file is ever left behind.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / file.gz_name
    failures: list[str] = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + file.gz_name
        fd, tmp_name = tempfile.mkstemp(prefix=f".{file.gz_name}.", suffix=".part", dir=data_dir)
        tmp = Path(tmp_name)
        try:
            digest = hashlib.md5(usedforsecurity=False)
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                while chunk := response.read(1 << 16):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != file.gz_md5:
                failures.append(f"{url}: MD5 checksum mismatch (got {digest.hexdigest()})")
                continue
            os.replace(tmp, target)
            log.info("downloaded %s from %s", file.gz_name, mirror)
            return target
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            failures.append(f"{url}: {exc}")
        finally:
            tmp.unlink(missing_ok=True)
    raise MnistError(f"could not download {file.gz_name}: " + "; ".join(failures))
