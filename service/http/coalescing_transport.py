"""A connection's transport that sends a response's head and body in one write."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


class CoalescingTransport(asyncio.Transport):
    """Wraps a connection's transport so that a write waits for the next one, or at the latest for the end of the
    event loop's current pass, and goes out together with it.

    uvicorn writes a response's head and its body apart, and each write to an idle socket is a ``send()`` of its
    own: a syscall and a TCP segment. Held back this way, a small response costs one of each instead of two
    (measured in docs/architecture.md). Every write and close of the connection goes through
    here, so bytes keep their order, and nothing held is lost on ``close()``; ``abort()`` drops it, as it drops
    the transport's own buffer."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._flush_scheduled = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if self._held is None:
            self._held = data if isinstance(data, bytes) else bytes(data)  # the caller may reuse its buffer
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self._flush_at_end_of_pass)
            return
        held, self._held = self._held, None
        self._transport.writelines((held, data))  # uvloop sends both buffers with one writev(), without a copy

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        held, self._held = self._held, None
        self._transport.writelines(list_of_data if held is None else (held, *list_of_data))

    def flush(self) -> None:
        """Send what is held now."""
        if self._held is not None:
            held, self._held = self._held, None
            if not self._transport.is_closing():
                self._transport.write(held)

    def _flush_at_end_of_pass(self) -> None:
        self._flush_scheduled = False
        self.flush()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + (len(self._held) if self._held is not None else 0)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)
