"""The one way the ``digits`` commands stop on SIGTERM or SIGINT: an orderly unwind of every context."""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

log = logging.getLogger(__name__)


class _StopSignal(BaseException):
    """Raised by our SIGTERM/SIGINT handler so that every context on the stack unwinds."""


@contextmanager
def stop_on_signals() -> Iterator[list[int]]:
    """Turn the first SIGTERM or SIGINT into an orderly unwind; later ones are ignored while we clean up.

    The block ends quietly; the list it yields holds the signal that ended it, if one did.
    """
    received: list[int] = []

    def on_signal(signum: int, _: FrameType | None) -> None:
        if not received:
            received.append(signum)
            raise _StopSignal

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    except _StopSignal:
        log.info("stopped by %s", signal.Signals(received[0]).name)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
