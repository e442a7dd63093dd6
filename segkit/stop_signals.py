"""SIGINT and SIGTERM handled alike while a block runs: what training and inference do to stop cleanly."""

from __future__ import annotations

import signal
import threading
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


class StopRequest:
    """A stop signal noted, not raised: for a loop that waits on other threads (a cohort's futures). An
    exception raised from a handler lands at whatever bytecode runs then, and inside a garbage
    collector's callback (Dask installs one) Python prints "Exception ignored" and the run goes on."""

    def __init__(self) -> None:
        self.name = ""
        self._noted = threading.Event()

    def note(self, name: str) -> None:
        self.name = self.name or name
        self._noted.set()

    @property
    def requested(self) -> bool:
        return self._noted.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep ``seconds``, or less when a stop is noted meanwhile; whether one is."""
        return self._noted.wait(seconds)


@contextmanager
def stop_signals_noted() -> Iterator[StopRequest]:
    """SIGINT and SIGTERM noted in the request while the block runs (in the main thread; elsewhere, as
    in an embedding application's worker thread, the signals are left as they are and none is noted)."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    with stop_signals_handled(request.note):
        yield request
