"""CoalescingTransport over a transport that records what reaches it, and over a real socket."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable

import pytest

from service.http.coalescing_transport import CoalescingTransport

Buffer = bytes | bytearray | memoryview


class RecordingTransport(asyncio.Transport):
    """The calls a connection's transport gets, in order: ("write", [data]), ("writelines", [data, ...]), ..."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, list[bytes]]] = []
        self.closing = False

    def write(self, data: Buffer) -> None:
        assert not self.closing, "written after close"
        self.calls.append(("write", [bytes(data)]))

    def writelines(self, list_of_data: Iterable[Buffer]) -> None:
        assert not self.closing, "written after close"
        self.calls.append(("writelines", [bytes(data) for data in list_of_data]))

    def close(self) -> None:
        self.calls.append(("close", []))
        self.closing = True

    def abort(self) -> None:
        self.calls.append(("abort", []))
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing


@pytest.fixture
def inner() -> RecordingTransport:
    return RecordingTransport()


@pytest.fixture
async def transport(inner: RecordingTransport) -> CoalescingTransport:
    return CoalescingTransport(inner, asyncio.get_running_loop())


async def test_a_head_and_its_body_go_out_in_one_call(
    inner: RecordingTransport, transport: CoalescingTransport
) -> None:
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert inner.calls == []
    transport.write(b"{}")
    assert inner.calls == [("writelines", [b"HTTP/1.1 200 OK\r\n\r\n", b"{}"])]
    await asyncio.sleep(0)
    assert len(inner.calls) == 1, "nothing was left to send at the end of the pass"


async def test_a_lone_write_goes_out_at_the_end_of_the_loop_pass(
    inner: RecordingTransport, transport: CoalescingTransport
) -> None:
    transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # the client waits for it before it sends the body
    await asyncio.sleep(0)
    assert inner.calls == [("write", [b"HTTP/1.1 100 Continue\r\n\r\n"])]
    transport.write(b"a")  # held again, and again sent at the end of that pass
    await asyncio.sleep(0)
    assert inner.calls[1:] == [("write", [b"a"])]


async def test_writes_keep_their_order(inner: RecordingTransport, transport: CoalescingTransport) -> None:
    transport.write(b"1")
    transport.write(b"2")
    transport.write(b"3")
    transport.writelines([b"4", b"5"])
    transport.write(b"")  # nothing to send: no change
    transport.write(b"6")
    transport.close()
    sent = b"".join(b"".join(data) for _, data in inner.calls)
    assert sent == b"123456"
    assert inner.calls[-1] == ("close", [])


async def test_a_buffer_reused_after_its_write_is_sent_as_it_was_written(
    inner: RecordingTransport, transport: CoalescingTransport
) -> None:
    buffer = bytearray(b"chunk 1")
    transport.write(buffer)
    buffer[:] = b"chunk 2"  # writers may reuse a buffer once write() returns
    await asyncio.sleep(0)
    assert inner.calls == [("write", [b"chunk 1"])]


async def test_close_sends_what_is_held_first(inner: RecordingTransport, transport: CoalescingTransport) -> None:
    transport.write(b"0\r\n\r\n")
    transport.close()
    assert inner.calls == [("write", [b"0\r\n\r\n"]), ("close", [])]
    await asyncio.sleep(0)
    assert len(inner.calls) == 2


async def test_abort_drops_what_is_held(inner: RecordingTransport, transport: CoalescingTransport) -> None:
    transport.write(b"partial")
    transport.abort()
    await asyncio.sleep(0)
    assert inner.calls == [("abort", [])]


async def test_nothing_is_written_to_a_connection_that_is_closing(
    inner: RecordingTransport, transport: CoalescingTransport
) -> None:
    transport.write(b"late")
    inner.closing = True  # the peer went away within the pass
    await asyncio.sleep(0)
    assert inner.calls == []


async def test_a_real_socket_receives_every_byte_in_order() -> None:
    loop = asyncio.get_running_loop()
    server_side, client_side = socket.socketpair()
    with client_side:
        raw, _ = await loop.connect_accepted_socket(asyncio.Protocol, server_side)
        transport = CoalescingTransport(raw, loop)
        assert transport.get_extra_info("socket") is not None
        chunks = [b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n", b"body", b"x" * 200_000]
        for chunk in chunks:
            transport.write(chunk)
        transport.close()
        client_side.setblocking(False)
        received = b""
        while len(received) < sum(map(len, chunks)):
            received += await loop.sock_recv(client_side, 65536)
        assert received == b"".join(chunks)
