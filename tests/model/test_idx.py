from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from model.idx import IdxFormatError, parse_idx, read_idx


def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_reads_raw_and_gzip(tmp_path: Path) -> None:
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    (tmp_path / "raw").write_bytes(idx_bytes(images))
    (tmp_path / "packed.gz").write_bytes(gzip.compress(idx_bytes(images)))
    np.testing.assert_array_equal(read_idx(tmp_path / "raw"), images)
    np.testing.assert_array_equal(read_idx(tmp_path / "packed.gz"), images)


def test_reads_labels_shape() -> None:
    labels = np.array([7, 2, 1], dtype=np.uint8)
    assert parse_idx(idx_bytes(labels)).tolist() == [7, 2, 1]


def test_truncated_file_is_refused() -> None:
    data = idx_bytes(np.zeros((3, 28, 28), dtype=np.uint8))
    with pytest.raises(IdxFormatError, match="truncated"):
        parse_idx(data[:-10])


def test_truncated_gzip_is_refused(tmp_path: Path) -> None:
    packed = gzip.compress(idx_bytes(np.zeros((3, 28, 28), dtype=np.uint8)))
    (tmp_path / "cut.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(IdxFormatError, match="gzip"):
        read_idx(tmp_path / "cut.gz")


@pytest.mark.parametrize("magic", [b"\x01\x00\x08\x01", b"\x00\x00\x42\x01", b"\x00\x00\x08\x00", b"\x89PNG"])
def test_wrong_magic_is_refused(magic: bytes) -> None:
    with pytest.raises(IdxFormatError, match="magic"):
        parse_idx(magic + struct.pack(">I", 1) + b"\x00")


def test_real_mnist_test_images(data_dir: Path) -> None:
    images = read_idx(data_dir / "t10k-images-idx3-ubyte.gz")
    assert images.shape == (10000, 28, 28)
    assert images.dtype == np.uint8
