"""Reader for the IDX format that MNIST ships in (gzip-compressed or raw)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

# IDX type codes (third byte of the magic number) and the numpy dtype they denote.
_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IdxFormatError(ValueError):
    """The bytes are not a well-formed IDX file."""


def read_idx_bytes(path: Path) -> bytes:
    """Return the IDX payload of ``path``, decompressing it when it is gzip."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise IdxFormatError(f"{path}: corrupt or truncated gzip data ({exc})") from exc
    return raw


def parse_idx(data: bytes, *, source: str = "<bytes>") -> np.ndarray:
    """Parse an IDX payload into an array, checking magic number and length."""
    if len(data) < 4:
        raise IdxFormatError(f"{source}: too short for an IDX header ({len(data)} bytes)")
    zero1, zero2, type_code, ndim = data[0], data[1], data[2], data[3]
    if zero1 != 0 or zero2 != 0 or type_code not in _DTYPES or ndim == 0:
        raise IdxFormatError(f"{source}: wrong magic number {data[:4].hex()} (not an IDX file)")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise IdxFormatError(f"{source}: truncated header")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = _DTYPES[type_code]
    expected = header_len + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise IdxFormatError(
            f"{source}: truncated or oversized file: header declares shape {shape} "
            f"({expected} bytes), file has {len(data)} bytes"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) into a numpy array."""
    return parse_idx(read_idx_bytes(path), source=str(path))
