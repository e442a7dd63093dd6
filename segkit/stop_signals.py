"""SIGINT and SIGTERM handled alike while a block runs: what training and inference do to stop cleanly."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: a user's Ctrl-C and a scheduler's or ``kill``'s polite stop
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_signals_handled(handle: Callable[[str], None]) -> Iterator[None]:
    """``handle(name)`` (``"SIGINT"``, ``"SIGTERM"``) on either signal while the block runs; the handlers
    before it are put back afterwards. Call it in the main thread (Python's rule for signal handlers)."""
    def handler(number: int, frame: object) -> None:
        handle(signal.Signals(number).name)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, before in previous.items():
            signal.signal(sig, before)
